"""sched_params and set_scheduling_params: defaults, dicts by model, scalars for all,
validation before any change."""

from __future__ import annotations

import numpy as np
import pytest

import models
from hbm_runtime import SchedParam, host_cores
from models import assert_outputs_match, ort_reference, random_feeds

DEFAULT = SchedParam(priority=0, customId=0, bpu_cores=[-1], deviceId=0)


@pytest.fixture
def trio(tmp_path, open_runtime):
    paths = {n: models.tiny(tmp_path / f"{n}.onnx", seed=i) for i, n in enumerate(["m1", "m2", "m3"])}
    return open_runtime(list(paths.values())), paths


def test_defaults(trio):
    rt, _ = trio
    params = rt.sched_params
    assert list(params) == models.vendor_order(["m1", "m2", "m3"])  # the vendor's dict order
    for p in params.values():
        assert isinstance(p, SchedParam)
        assert p == DEFAULT
        assert (p.priority, p.customId, p.bpu_cores, p.deviceId) == (0, 0, [-1], 0)


def test_dicts_by_model(trio, two_cores):
    rt, _ = trio
    rt.set_scheduling_params(priority={"m1": 255, "m3": 0}, bpu_cores={"m2": [1], "m3": [0, 1]},
                             custom_id={"m1": 12345}, device_id={"m2": 3})
    assert rt.sched_params == {
        "m1": SchedParam(priority=255, customId=12345, bpu_cores=[-1], deviceId=0),
        "m2": SchedParam(priority=0, customId=0, bpu_cores=[1], deviceId=3),
        "m3": SchedParam(priority=0, customId=0, bpu_cores=[0, 1], deviceId=0),
    }


def test_updates_are_partial(trio):
    rt, _ = trio
    rt.set_scheduling_params(priority={"m1": 9}, bpu_cores={"m1": [0]}, custom_id={"m1": 4})
    rt.set_scheduling_params(priority={"m1": 10})
    assert rt.sched_params["m1"] == SchedParam(priority=10, customId=4, bpu_cores=[0], deviceId=0)
    rt.set_scheduling_params()  # nothing given: nothing changes
    assert rt.sched_params["m1"] == SchedParam(priority=10, customId=4, bpu_cores=[0], deviceId=0)
    assert rt.sched_params["m2"] == DEFAULT


def test_scalars_apply_to_every_model(trio):
    rt, _ = trio
    rt.set_scheduling_params(priority=7, bpu_cores=[0], custom_id=3, device_id=1)
    for name, p in rt.sched_params.items():
        assert p == SchedParam(priority=7, customId=3, bpu_cores=[0], deviceId=1), name
    rt.set_scheduling_params(bpu_cores=[-1])
    assert all(p.bpu_cores == [-1] for p in rt.sched_params.values())


def _core_id_limit():
    """The first invalid core id: ids 0..3 (the board's) are valid on any host, more with
    more virtual cores."""
    return max(4, host_cores())


def test_all_valid_cores(trio):
    rt, _ = trio
    cores = list(range(_core_id_limit()))
    rt.set_scheduling_params(bpu_cores={"m1": cores})
    assert rt.sched_params["m1"].bpu_cores == cores


def test_boundary_priorities(trio):
    rt, _ = trio
    rt.set_scheduling_params(priority={"m1": 0, "m2": 255, "m3": 128})
    assert {m: p.priority for m, p in rt.sched_params.items()} == {"m1": 0, "m2": 255, "m3": 128}


def _expect_unchanged(rt, call, *mentions):
    before = rt.sched_params
    with pytest.raises(ValueError) as e:
        call()
    assert rt.sched_params == before
    for m in mentions:
        assert m in str(e.value), f"{m!r} not in {str(e.value)!r}"
    return e


@pytest.mark.parametrize("value", [256, -1, 1000])
def test_priority_out_of_range(trio, value):
    rt, _ = trio
    rt.set_scheduling_params(priority={"m1": 50})
    _expect_unchanged(rt, lambda: rt.set_scheduling_params(priority={"m1": value}), "m1", str(value), "255")
    _expect_unchanged(rt, lambda: rt.set_scheduling_params(priority=value), str(value), "255")


def test_unknown_model(trio):
    rt, _ = trio
    _expect_unchanged(rt, lambda: rt.set_scheduling_params(priority={"m1": 1, "nope": 2}), "nope", "m1")
    _expect_unchanged(rt, lambda: rt.set_scheduling_params(bpu_cores={"nope": [0]}), "nope")
    _expect_unchanged(rt, lambda: rt.set_scheduling_params(custom_id={"nope": 1}), "nope")
    _expect_unchanged(rt, lambda: rt.set_scheduling_params(device_id={"nope": 1}), "nope")


def test_negative_device_id_is_refused_negative_custom_id_accepted(trio):
    rt, _ = trio
    _expect_unchanged(rt, lambda: rt.set_scheduling_params(device_id={"m3": -2}), "m3", "-2")
    # custom_id is a signed int64, as the vendor's package takes it: negatives order first.
    rt.set_scheduling_params(custom_id={"m2": -1})
    assert rt.sched_params["m2"].customId == -1 and rt.sched_params["m1"].customId == 0
    rt.set_scheduling_params(custom_id=-(2**63))
    assert all(p.customId == -(2**63) for p in rt.sched_params.values())
    _expect_unchanged(rt, lambda: rt.set_scheduling_params(custom_id=2**63), str(2**63))


@pytest.mark.parametrize("cores", ["too_big", [-1, 0], [0, -1], [-2], "neg_and_big"])
def test_bad_cores(trio, cores):
    rt, _ = trio
    n = _core_id_limit()
    cores = {"too_big": [n], "neg_and_big": [0, n + 5]}.get(cores, cores) if isinstance(cores, str) else cores
    e = _expect_unchanged(rt, lambda: rt.set_scheduling_params(bpu_cores={"m1": cores}), "m1")
    assert str(cores) in str(e.value) or str(tuple(cores)) in str(e.value), str(e.value)
    _expect_unchanged(rt, lambda: rt.set_scheduling_params(bpu_cores=cores))


def test_nothing_changes_when_a_later_argument_is_invalid(trio):
    """Validation of every argument and model happens before anything is applied."""
    rt, _ = trio
    rt.set_scheduling_params(priority={"m1": 20}, custom_id={"m2": 6})
    calls = [
        lambda: rt.set_scheduling_params(priority={"m1": 100, "m2": 100}, device_id={"m3": -1}),
        lambda: rt.set_scheduling_params(priority=100, bpu_cores={"m3": [_core_id_limit()]}),
        lambda: rt.set_scheduling_params(priority={"m1": 1, "m2": 2, "m3": 300}),
        lambda: rt.set_scheduling_params(custom_id=1, device_id={"m1": 0, "m2": -1}),
        lambda: rt.set_scheduling_params(bpu_cores={"m1": [0], "m2": [-1, 0]}),
        lambda: rt.set_scheduling_params(priority={"m1": 30}, bpu_cores={"zzz": [0]}),
    ]
    for call in calls:
        _expect_unchanged(rt, call)
    assert rt.sched_params["m1"].priority == 20 and rt.sched_params["m2"].customId == 6


@pytest.mark.parametrize("kwargs", [{"priority": 2**63}, {"custom_id": {"m2": 2**70}}, {"bpu_cores": [2**64]},
                                    {"device_id": -(2**63) - 1}, {"bpu_cores": {"m1": [0, 2**40]}}])
def test_values_beyond_64_bits_are_value_errors_naming_them(trio, kwargs):
    rt, _ = trio
    (what, value), = kwargs.items()
    shown = value if not isinstance(value, dict) else next(iter(value.values()))
    number = shown[-1] if isinstance(shown, list) else shown
    _expect_unchanged(rt, lambda: rt.set_scheduling_params(**kwargs), what, str(number))


@pytest.mark.parametrize("kwargs", [{"priority": 1.5}, {"priority": "5"}, {"custom_id": {"m1": 2.0}},
                                    {"bpu_cores": {"m1": ["0"]}}])
def test_wrong_types_rejected_without_change(trio, kwargs):
    rt, _ = trio
    before = rt.sched_params
    with pytest.raises((TypeError, ValueError)):
        rt.set_scheduling_params(**kwargs)
    assert rt.sched_params == before


def test_runs_correct_under_any_parameters(trio, two_cores):
    rt, paths = trio
    rt.set_scheduling_params(priority={"m1": 255, "m2": 0, "m3": 100}, bpu_cores={"m1": [0], "m2": [1], "m3": [0, 1]},
                             custom_id={"m2": 99})
    feeds = {n: random_feeds(p, seed=i) for i, (n, p) in enumerate(paths.items())}
    for _ in range(3):
        result = rt.run(feeds)
        for n, p in paths.items():
            assert_outputs_match(result[n], ort_reference(p, feeds[n]), n)
        for n, p in paths.items():
            single = rt.run(feeds[n], model_name=n)
            assert_outputs_match(single[n], ort_reference(p, feeds[n]), n)
    # Numpy integer types are accepted as ints.
    rt.set_scheduling_params(priority={"m1": np.int64(3)}, bpu_cores={"m1": [np.int32(0)]})
    assert rt.sched_params["m1"].priority == 3 and rt.sched_params["m1"].bpu_cores == [0]
