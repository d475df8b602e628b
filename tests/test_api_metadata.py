"""Metadata properties: names, descriptions, shapes, dtypes, strides, quantization parameters,
versions; read-only and returning fresh objects."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import onnx
import pytest

import hbm_runtime
import models
from hbm_runtime import HB_HBMRuntime, QuantParams, SchedParam, hbDNNDataType, hbDNNQuantiType
from models import LANENET_NAME, NV12_NAME

PROPERTIES = [
    "version", "model_names", "model_count", "model_descs", "hbm_descs",
    "input_counts", "input_names", "input_descs", "input_shapes", "input_dtypes", "input_quants",
    "input_strides",
    "output_counts", "output_names", "output_descs", "output_shapes", "output_dtypes", "output_quants",
    "output_strides",
    "sched_params",
]

ONNX_TO_HB = {
    onnx.TensorProto.FLOAT: hbDNNDataType.F32, onnx.TensorProto.UINT8: hbDNNDataType.U8,
    onnx.TensorProto.INT8: hbDNNDataType.S8, onnx.TensorProto.INT32: hbDNNDataType.S32,
}


def _dense_strides(shape, itemsize):
    out, step, dynamic = [], itemsize, False
    for d in reversed(shape):
        out.append(-1 if dynamic else step)
        if d < 0:
            dynamic = True
        else:
            step *= d
    return out[::-1]


def _onnx_io(path):
    """[(name, elem_type, shape with -1 for symbolic dims, doc)] for inputs and outputs."""
    g = onnx.load(os.fspath(path)).graph
    init = {i.name for i in g.initializer}

    def info(vi):
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
        return vi.name, vi.type.tensor_type.elem_type, dims, vi.doc_string

    return [info(v) for v in g.input if v.name not in init], [info(v) for v in g.output]


# ---- names, counts, descriptions ---------------------------------------------------------------


def test_model_names_follow_file_stems_in_load_order(open_runtime, lanenet_path, nv12_path, tiny_path):
    rt = open_runtime([nv12_path, tiny_path, lanenet_path])
    assert rt.model_names == [NV12_NAME, "tiny", LANENET_NAME]
    assert rt.model_count == 3
    rt2 = open_runtime([lanenet_path, nv12_path])
    assert rt2.model_names == [LANENET_NAME, NV12_NAME]
    assert rt2.model_count == 2


def test_pathlike_and_str_paths(open_runtime, lanenet_path):
    rt = open_runtime(pathlib.Path(lanenet_path))
    assert rt.model_names == [LANENET_NAME]
    assert list(rt.hbm_descs) == [os.fspath(lanenet_path)]
    rt2 = open_runtime([pathlib.Path(lanenet_path)])
    assert rt2.model_names == [LANENET_NAME]


@pytest.mark.parametrize("fixture", ["lanenet_path", "nv12_path", "qdq_path", "dyn_seq_path", "dtypes_path"])
def test_tensor_metadata_matches_the_file(fixture, request, open_runtime):
    path = request.getfixturevalue(fixture)
    rt = open_runtime(path)
    name = pathlib.Path(path).stem
    inputs, outputs = _onnx_io(path)
    assert rt.input_counts == {name: len(inputs)}
    assert rt.output_counts == {name: len(outputs)}
    assert rt.input_names == {name: [i[0] for i in inputs]}
    assert rt.output_names == {name: [o[0] for o in outputs]}
    assert rt.input_descs == {name: {i[0]: i[3] for i in inputs}}
    assert rt.output_descs == {name: {o[0]: o[3] for o in outputs}}
    assert rt.input_shapes == {name: {i[0]: i[2] for i in inputs}}
    assert rt.output_shapes == {name: {o[0]: o[2] for o in outputs}}
    for kind, infos in (("input", inputs), ("output", outputs)):
        dtypes = getattr(rt, f"{kind}_dtypes")[name]
        strides = getattr(rt, f"{kind}_strides")[name]
        for tname, elem_type, shape, _ in infos:
            np_dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
            assert isinstance(dtypes[tname], hbDNNDataType)
            assert np.dtype(models.DTYPES[dtypes[tname].name][1]) == np_dtype, tname
            assert strides[tname] == _dense_strides(shape, np.dtype(np_dtype).itemsize), tname


def test_nv12_metadata_values(nv12_rt):
    rt = nv12_rt
    assert rt.input_dtypes == {NV12_NAME: {"data_y": hbDNNDataType.U8, "data_uv": hbDNNDataType.U8}}
    assert rt.output_dtypes == {NV12_NAME: {n: hbDNNDataType.S32 for n in models.NV12_OUTPUTS}}
    assert rt.input_shapes == {NV12_NAME: models.NV12_INPUT_SHAPES}
    assert rt.input_strides == {NV12_NAME: {"data_y": [451584, 672, 1, 1], "data_uv": [225792, 672, 2, 1]}}
    assert rt.output_strides[NV12_NAME]["output"] == [84 * 84 * 2 * 4, 84 * 2 * 4, 2 * 4, 4]
    for kind in ("input", "output"):
        for q in getattr(rt, f"{kind}_quants")[NV12_NAME].values():
            assert q.quant_type == hbDNNQuantiType.NONE
            assert q.scale.size == 0 and q.zero_point.size == 0


def test_model_descs(open_runtime, lanenet_path, nv12_path, tiny_path, single_path):
    rt = open_runtime([lanenet_path, nv12_path, tiny_path, single_path])
    assert rt.model_descs == {
        LANENET_NAME: models.LANENET_DOC,  # ModelProto.doc_string wins over the graph's
        NV12_NAME: models.NV12_DOC,
        "tiny": models.TINY_GRAPH_DOC,  # no model doc: the graph's
        "single": "",
    }


def test_hbm_descs_are_metadata_props_as_json(open_runtime, lanenet_path, nv12_path):
    rt = open_runtime([lanenet_path, nv12_path])
    descs = rt.hbm_descs
    assert list(descs) == models.vendor_order([lanenet_path, nv12_path])  # the vendor's dict order
    assert json.loads(descs[lanenet_path]) == models.LANENET_PROPS
    assert descs[nv12_path] == ""


def test_hbm_descs_keyed_by_path_as_given(tmp_path, monkeypatch, open_runtime):
    models.lanenet(tmp_path / "rel_model.onnx")
    monkeypatch.chdir(tmp_path)
    rt = open_runtime("rel_model.onnx")
    assert list(rt.hbm_descs) == ["rel_model.onnx"]
    assert json.loads(rt.hbm_descs["rel_model.onnx"]) == models.LANENET_PROPS
    rt2 = open_runtime(["./rel_model.onnx"])
    assert list(rt2.hbm_descs) == ["./rel_model.onnx"]


def test_version():
    v = HB_HBMRuntime.version
    assert isinstance(v, str)
    # Ours, or libdnn's own string once BPU libraries are loaded (the test double may be,
    # when the BPU tests ran first in this process; tests/test_ucp_seed.py checks that case).
    assert v.startswith(hbm_runtime._hbm_ext._device_library_version() or hbm_runtime.__version__)
    assert HB_HBMRuntime.version() == v  # the vendor's stub declares it a method
    assert str(HB_HBMRuntime.version) == v


def test_version_on_instances(lanenet_rt):
    assert isinstance(lanenet_rt.version, str)
    assert lanenet_rt.version == HB_HBMRuntime.version
    assert lanenet_rt.version() == HB_HBMRuntime.version()


# ---- quantization parameters (QDQ) ----------------------------------------------------------------


def test_qdq_input_quants(open_runtime, qdq_path):
    rt = open_runtime(qdq_path)
    q = rt.input_quants["qdq"]
    assert list(q) == models.vendor_order(models.QDQ_INPUTS)  # per-tensor dicts: the vendor's order
    assert rt.input_names["qdq"] == models.QDQ_INPUTS  # name lists: model order
    x = q["x"]
    assert isinstance(x, QuantParams)
    assert x.quant_type == hbDNNQuantiType.SCALE
    assert x.scale.dtype == np.float32 and x.zero_point.dtype == np.int32
    np.testing.assert_array_equal(x.scale, [models.QDQ_X_SCALE])
    np.testing.assert_array_equal(x.zero_point, [int(models.QDQ_X_ZP)])
    assert x.axis == 1  # no axis attribute: the ONNX default
    assert x == QuantParams(scale=[0.25], zero_point=[128], quant_type=hbDNNQuantiType.SCALE, axis=1)
    # A float input is not quantized.
    assert q["offset"].quant_type == hbDNNQuantiType.NONE
    assert q["offset"].scale.size == 0 and q["offset"].zero_point.size == 0


def test_qdq_output_quants_per_channel(open_runtime, qdq_path):
    rt = open_runtime(qdq_path)
    q = rt.output_quants["qdq"]
    assert list(q) == models.vendor_order(models.QDQ_OUTPUTS)
    y = q["y"]
    assert y.quant_type == hbDNNQuantiType.SCALE
    assert y.axis == models.QDQ_Y_AXIS
    assert y.scale.dtype == np.float32 and y.zero_point.dtype == np.int32
    np.testing.assert_array_equal(y.scale, models.QDQ_Y_SCALE)
    np.testing.assert_array_equal(y.zero_point, models.QDQ_Y_ZP.astype(np.int32))
    assert y == QuantParams(scale=models.QDQ_Y_SCALE, zero_point=[-3, 0, 5, 17],
                            quant_type=hbDNNQuantiType.SCALE, axis=1)
    # No zero point in the file -> empty zero_point, still SCALE.
    yu8 = q["y_u8"]
    assert yu8.quant_type == hbDNNQuantiType.SCALE
    np.testing.assert_array_equal(yu8.scale, [models.QDQ_YU8_SCALE])
    assert yu8.zero_point.dtype == np.int32 and yu8.zero_point.shape == (0,)
    assert yu8.axis == 1
    assert q["yf"].quant_type == hbDNNQuantiType.NONE
    assert rt.output_dtypes["qdq"] == {"y": hbDNNDataType.S8, "y_u8": hbDNNDataType.U8, "yf": hbDNNDataType.F32}


def test_qdq_without_zero_point_per_channel_axis(open_runtime, qdq_nozp_path):
    rt = open_runtime(qdq_nozp_path)
    q = rt.input_quants["qdq_nozp"]["q"]
    assert q.quant_type == hbDNNQuantiType.SCALE
    np.testing.assert_array_equal(q.scale, models.QDQ_NOZP_SCALE)
    assert q.zero_point.dtype == np.int32 and q.zero_point.size == 0
    assert q.axis == models.QDQ_NOZP_AXIS
    assert rt.output_quants["qdq_nozp"]["out"].quant_type == hbDNNQuantiType.NONE


def test_quant_type_compares_with_ints(open_runtime, qdq_path):
    rt = open_runtime(qdq_path)
    q = rt.input_quants["qdq"]
    assert q["x"].quant_type == 1 and q["x"].quant_type != 0
    assert q["offset"].quant_type == 0 and not (q["offset"].quant_type != 0)


# ---- dynamic dims ------------------------------------------------------------------------------


def test_dynamic_batch_metadata(open_runtime, dyn_path):
    rt = open_runtime(dyn_path)
    assert rt.input_shapes == {"dyn": {"x": [-1, 3, 4, 5]}}
    assert rt.output_shapes == {"dyn": {"y": [-1, 3, 4, 6]}}
    # Only the outermost dim is dynamic: every stride is known.
    assert rt.input_strides == {"dyn": {"x": [240, 80, 20, 4]}}
    assert rt.output_strides == {"dyn": {"y": [288, 96, 24, 4]}}


def test_dynamic_inner_dim_strides(open_runtime, dyn_seq_path):
    rt = open_runtime(dyn_seq_path)
    assert rt.input_shapes == {"dyn_seq": {"tokens": [-1, -1, 8]}}
    assert rt.output_shapes == {"dyn_seq": {"h": [-1, -1, 4], "pooled": [-1, 4]}}
    assert rt.input_strides == {"dyn_seq": {"tokens": [-1, 32, 4]}}
    assert rt.output_strides == {"dyn_seq": {"h": [-1, 16, 4], "pooled": [16, 4]}}


def test_metadata_unchanged_by_runs(open_runtime, dyn_seq_path):
    rt = open_runtime(dyn_seq_path)
    before = (rt.input_shapes, rt.output_shapes, rt.input_strides, rt.output_strides)
    rt.run(np.zeros((3, 5, 8), np.float32))
    assert (rt.input_shapes, rt.output_shapes, rt.input_strides, rt.output_strides) == before


# ---- read-only, fresh copies ------------------------------------------------------------------


@pytest.mark.parametrize("prop", PROPERTIES)
def test_properties_are_read_only(prop, open_runtime, qdq_path):
    rt = open_runtime(qdq_path)
    before = getattr(rt, prop)
    with pytest.raises(AttributeError):
        setattr(rt, prop, before)
    with pytest.raises(AttributeError):
        setattr(rt, prop, None)
    with pytest.raises(AttributeError):
        delattr(rt, prop)
    assert getattr(rt, prop) == before


def test_properties_return_fresh_containers(open_runtime, qdq_path, lanenet_path):
    rt = open_runtime([qdq_path, lanenet_path])
    m = "qdq"

    def mutate_and_check(prop, mutate):
        snapshot = repr(getattr(rt, prop))
        value = getattr(rt, prop)
        mutate(value)
        assert repr(getattr(rt, prop)) == snapshot, prop

    mutate_and_check("model_names", lambda v: (v.append("zzz"), v.reverse()))
    mutate_and_check("model_descs", lambda v: v.update({m: "changed"}))
    mutate_and_check("hbm_descs", lambda v: v.clear())
    for kind in ("input", "output"):
        mutate_and_check(f"{kind}_counts", lambda v: v.update({m: 99}))
        mutate_and_check(f"{kind}_names", lambda v: (v[m].append("zzz"), v[m].reverse()))
        mutate_and_check(f"{kind}_descs", lambda v: v[m].clear())
        mutate_and_check(f"{kind}_shapes", lambda v: [s.__setitem__(0, 99) for s in v[m].values()])
        mutate_and_check(f"{kind}_strides", lambda v: [s.__setitem__(0, 99) for s in v[m].values()])
        mutate_and_check(f"{kind}_dtypes", lambda v: v[m].update({k: hbDNNDataType.MAX for k in v[m]}))
        mutate_and_check(f"{kind}_quants", lambda v: v.pop(m))

    def mutate_quants(v):
        for q in v[m].values():
            q.axis = 77
            q.quant_type = hbDNNQuantiType.NONE
            if q.scale.size:
                q.scale[0] = 123.0
            if q.zero_point.size:
                q.zero_point[0] = 42

    mutate_and_check("input_quants", mutate_quants)
    mutate_and_check("output_quants", mutate_quants)
    np.testing.assert_array_equal(rt.output_quants[m]["y"].scale, models.QDQ_Y_SCALE)
    np.testing.assert_array_equal(rt.output_quants[m]["y"].zero_point, models.QDQ_Y_ZP)
    assert rt.input_quants[m]["x"].axis == 1

    def mutate_sched(v):
        for p in v.values():
            p.priority = 200
            p.customId = 5
            p.bpu_cores.append(7)
            p.deviceId = 3
        v.clear()

    mutate_and_check("sched_params", mutate_sched)
    assert rt.sched_params[m] == SchedParam()


def test_quant_arrays_are_not_shared_between_reads(open_runtime, qdq_path):
    rt = open_runtime(qdq_path)
    a = rt.output_quants["qdq"]["y"]
    b = rt.output_quants["qdq"]["y"]
    assert a == b and a is not b
    assert not np.shares_memory(a.scale, b.scale)
    assert not np.shares_memory(a.zero_point, b.zero_point)


def test_closed_and_context_manager(lanenet_path):
    with HB_HBMRuntime(lanenet_path) as rt:
        assert rt.closed is False
        assert rt.model_names == [LANENET_NAME]
    assert rt.closed is True
    rt.close()  # closing twice is harmless
