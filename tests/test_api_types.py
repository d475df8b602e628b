"""The API's value types: hbDNNDataType, hbDNNQuantiType, QuantParams, SchedParam."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from hbm_runtime import QuantParams, SchedParam, hbDNNDataType, hbDNNQuantiType

DATA_TYPES = ["S4", "U4", "S8", "U8", "F16", "S16", "U16", "F32", "S32", "U32", "F64", "S64", "U64", "BOOL8", "MAX"]


# ---- enums ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value,name", list(enumerate(DATA_TYPES)))
def test_data_type_values(value, name):
    member = getattr(hbDNNDataType, name)
    assert member.name == name
    assert member.value == value
    assert member == value and int(member) == value
    assert hbDNNDataType(value) == member
    assert str(member) == f"hbDNNDataType.{name}"
    assert repr(member) == f"<hbDNNDataType.{name}: {value}>"
    assert f"{member}" == f"hbDNNDataType.{name}"


@pytest.mark.parametrize("value,name", [(0, "NONE"), (1, "SCALE")])
def test_quant_type_values(value, name):
    member = getattr(hbDNNQuantiType, name)
    assert member.name == name and member.value == value
    assert member == value and int(member) == value
    assert hbDNNQuantiType(value) == member
    assert str(member) == f"hbDNNQuantiType.{name}"
    assert repr(member) == f"<hbDNNQuantiType.{name}: {value}>"


def test_enum_comparisons():
    assert hbDNNQuantiType.SCALE != 0
    assert hbDNNQuantiType.NONE != 1
    assert hbDNNDataType.F32 != hbDNNDataType.S32
    assert hbDNNDataType.U8 != 7
    assert {hbDNNDataType.U8: "x"}[hbDNNDataType.U8] == "x"


def test_enums_pickle():
    for member in (hbDNNDataType.F32, hbDNNDataType.BOOL8, hbDNNQuantiType.SCALE):
        assert pickle.loads(pickle.dumps(member)) == member


# ---- QuantParams ---------------------------------------------------------------------------------


def test_quant_params_default():
    q = QuantParams()
    assert q.quant_type == hbDNNQuantiType.NONE
    assert isinstance(q.scale, np.ndarray) and q.scale.dtype == np.float32 and q.scale.size == 0
    assert isinstance(q.zero_point, np.ndarray) and q.zero_point.dtype == np.int32 and q.zero_point.size == 0
    assert isinstance(q.axis, int)


def test_quant_params_keywords_and_types():
    q = QuantParams(scale=[0.5, 0.25], zero_point=[1, -2], quant_type=hbDNNQuantiType.SCALE, axis=3)
    assert q.scale.dtype == np.float32 and q.scale.tolist() == [0.5, 0.25]
    assert q.zero_point.dtype == np.int32 and q.zero_point.tolist() == [1, -2]
    assert q.quant_type == hbDNNQuantiType.SCALE and isinstance(q.quant_type, hbDNNQuantiType)
    assert q.axis == 3


def test_quant_params_settable():
    q = QuantParams()
    q.scale = np.array([2.0], np.float32)
    q.zero_point = np.array([7], np.int32)
    q.quant_type = hbDNNQuantiType.SCALE
    q.axis = 1
    assert q == QuantParams(scale=[2.0], zero_point=[7], quant_type=hbDNNQuantiType.SCALE, axis=1)


def test_quant_params_assignments_convert_like_the_constructor():
    q = QuantParams()
    q.scale = [0.5, 0.25]
    q.zero_point = np.array([[1], [2]], np.int64)
    q.quant_type = 1
    q.axis = np.int64(2)
    assert q.scale.dtype == np.float32 and q.scale.tolist() == [0.5, 0.25]  # the seed calls .tolist()
    assert q.zero_point.dtype == np.int32 and q.zero_point.tolist() == [1, 2]
    assert q.quant_type is hbDNNQuantiType.SCALE and type(q.axis) is int and q.axis == 2
    q.scale = np.array([1.5])  # float64 in, float32 kept
    assert q.scale.dtype == np.float32
    with pytest.raises(TypeError):
        q.axis = 1.5
    with pytest.raises(ValueError):
        q.quant_type = 7
    with pytest.raises(AttributeError):
        q.other = 1  # slots: a typo is an error, not a silent new attribute


def test_quant_params_equality():
    a = QuantParams(scale=[0.5], zero_point=[3], quant_type=hbDNNQuantiType.SCALE, axis=1)
    b = QuantParams(scale=np.array([0.5], np.float32), zero_point=np.array([3], np.int32),
                    quant_type=hbDNNQuantiType.SCALE, axis=1)
    assert a == b and not (a != b)
    assert a != QuantParams(scale=[0.5], zero_point=[4], quant_type=hbDNNQuantiType.SCALE, axis=1)
    assert a != QuantParams(scale=[0.25], zero_point=[3], quant_type=hbDNNQuantiType.SCALE, axis=1)
    assert a != QuantParams(scale=[0.5], zero_point=[3], quant_type=hbDNNQuantiType.NONE, axis=1)
    assert a != QuantParams(scale=[0.5], zero_point=[3], quant_type=hbDNNQuantiType.SCALE, axis=0)
    assert a != QuantParams(scale=[0.5, 0.5], zero_point=[3], quant_type=hbDNNQuantiType.SCALE, axis=1)
    assert a != QuantParams(scale=[0.5], zero_point=[], quant_type=hbDNNQuantiType.SCALE, axis=1)


def test_quant_params_repr():
    q = QuantParams(scale=[0.5, 0.75], zero_point=[-3, 9], quant_type=hbDNNQuantiType.SCALE, axis=2)
    r = repr(q)
    assert r.startswith("QuantParams(")
    for part in ("0.5", "0.75", "-3", "9", "SCALE", "axis=2"):
        assert part in r, (part, r)


def test_quant_params_pickle_and_copy():
    q = QuantParams(scale=[0.5, 0.75], zero_point=[-3, 9], quant_type=hbDNNQuantiType.SCALE, axis=2)
    for restored in (pickle.loads(pickle.dumps(q)), copy.deepcopy(q)):
        assert isinstance(restored, QuantParams)
        assert restored == q
        assert restored.scale.dtype == np.float32 and restored.zero_point.dtype == np.int32
        assert restored.quant_type is hbDNNQuantiType.SCALE or restored.quant_type == hbDNNQuantiType.SCALE
        assert not np.shares_memory(restored.scale, q.scale)


# ---- SchedParam ----------------------------------------------------------------------------------


def test_sched_param_defaults():
    s = SchedParam()
    assert (s.priority, s.customId, s.bpu_cores, s.deviceId) == (0, 0, [-1], 0)
    assert s == SchedParam(priority=0, customId=0, bpu_cores=[-1], deviceId=0)


def test_sched_param_default_cores_not_shared():
    a, b = SchedParam(), SchedParam()
    a.bpu_cores.append(3)
    assert b.bpu_cores == [-1]
    assert SchedParam().bpu_cores == [-1]


def test_sched_param_keywords_and_settable():
    s = SchedParam(priority=8, customId=1001, bpu_cores=[0, 1], deviceId=2)
    assert (s.priority, s.customId, s.bpu_cores, s.deviceId) == (8, 1001, [0, 1], 2)
    s.priority = {"modelA": 8}
    s.customId = {"modelA": 1001}
    s.bpu_cores = {"modelA": [0, 1]}
    s.deviceId = {"modelA": 0}
    assert s.priority == {"modelA": 8} and s.bpu_cores == {"modelA": [0, 1]}


def test_sched_param_equality():
    a = SchedParam(priority=8, customId=1, bpu_cores=[0, 1], deviceId=0)
    assert a == SchedParam(priority=8, customId=1, bpu_cores=[0, 1], deviceId=0)
    assert a != SchedParam(priority=9, customId=1, bpu_cores=[0, 1], deviceId=0)
    assert a != SchedParam(priority=8, customId=2, bpu_cores=[0, 1], deviceId=0)
    assert a != SchedParam(priority=8, customId=1, bpu_cores=[0], deviceId=0)
    assert a != SchedParam(priority=8, customId=1, bpu_cores=[0, 1], deviceId=1)


def test_sched_param_repr():
    r = repr(SchedParam(priority=8, customId=1001, bpu_cores=[0, 1], deviceId=2))
    assert r.startswith("SchedParam(")
    for part in ("priority=8", "customId=1001", "bpu_cores=[0, 1]", "deviceId=2"):
        assert part in r, (part, r)


@pytest.mark.parametrize("s", [SchedParam(), SchedParam(priority=8, customId=1001, bpu_cores=[0, 1], deviceId=2),
                               SchedParam(priority={"a": 1}, customId={"a": 2}, bpu_cores={"a": [0]},
                                          deviceId={"a": 0})])
def test_sched_param_pickle_and_copy(s):
    for restored in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        assert isinstance(restored, SchedParam)
        assert restored == s
