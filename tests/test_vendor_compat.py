"""Code written against the vendor's package runs unchanged: every signature its type stub
documents (constructor forms, the static version(), each property, set_scheduling_params'
keywords, the three run() overloads by position and by keyword with model_name, the
module path hbm_runtime.HB_HBMRuntime), exercised call by call, plus the help a user gets."""

from __future__ import annotations

import collections
import inspect
import os
import pydoc
import types
from typing import Any, Dict, Iterator

import numpy as np
import pytest

import hbm_runtime
from hbm_runtime import _hbm_ext
from hbm_runtime import HB_HBMRuntime

import models

# The vendor stub's properties and what each maps a model name to.
PER_MODEL_PROPERTIES = {
    "input_counts": int, "input_names": list, "input_descs": dict, "input_shapes": dict,
    "input_dtypes": dict, "input_quants": dict, "input_strides": dict,
    "output_counts": int, "output_names": list, "output_descs": dict, "output_shapes": dict,
    "output_dtypes": dict, "output_quants": dict, "output_strides": dict,
    "model_descs": str, "sched_params": hbm_runtime.SchedParam,
}


LANE = "lanenet256x512"  # the model name models.lanenet() writes


class FrozenInputs(collections.abc.Mapping):  # type: ignore[type-arg]
    """A mapping that is not a dict, as a user's own container might be."""

    def __init__(self, data: Dict[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@pytest.fixture
def two_models(open_runtime, lanenet_path, single_path):
    return open_runtime([lanenet_path, single_path])


def _feeds(rt: HB_HBMRuntime, model: str, seed: int = 0) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.random(rt.input_shapes[model][name]).astype(np.float32)
            for name in rt.input_names[model]}


# -- constructor ----------------------------------------------------------------------------

def test_constructor_positional_and_keyword_forms(lanenet_path, single_path):
    forms = [
        HB_HBMRuntime(lanenet_path),
        HB_HBMRuntime(model_file=lanenet_path),
        HB_HBMRuntime([lanenet_path]),
        HB_HBMRuntime(model_files=[lanenet_path]),
        HB_HBMRuntime(model_file=[lanenet_path]),
    ]
    try:
        assert {tuple(rt.model_names) for rt in forms} == {(LANE,)}
        with HB_HBMRuntime(model_files=[lanenet_path, single_path]) as both:
            assert both.model_count == 2 and set(both.model_names) == {LANE, "single"}
    finally:
        for rt in forms:
            rt.close()


def test_constructor_keyword_errors(lanenet_path):
    with pytest.raises(TypeError, match="not both"):
        HB_HBMRuntime(lanenet_path, model_files=[lanenet_path])
    with pytest.raises(TypeError, match="needs a model file"):
        HB_HBMRuntime()
    with pytest.raises(TypeError, match="model_flies"):
        HB_HBMRuntime(model_flies=[lanenet_path])  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["absent.hbm", "absent.onnx"])
def test_missing_file_is_reported_before_any_engine_loads(tmp_path, monkeypatch, name):
    # No BPU libraries can be found: the missing file must still be what is reported.
    monkeypatch.setenv("HBM_UCP_LIB_DIR", os.fspath(tmp_path / "no-libs-here"))
    missing = os.fspath(tmp_path / name)
    with pytest.raises(FileNotFoundError) as e:
        HB_HBMRuntime(missing)
    assert isinstance(e.value, ValueError)  # what earlier releases raised for it
    assert isinstance(e.value, hbm_runtime.ModelFileNotFoundError)
    assert e.value.filename == missing and missing in str(e.value)
    assert "libhbucp" not in str(e.value)


def test_missing_file_among_good_ones_names_the_missing_one(tmp_path, lanenet_path):
    missing = os.fspath(tmp_path / "absent.hbm")
    with pytest.raises(FileNotFoundError) as e:
        HB_HBMRuntime(model_files=[lanenet_path, missing])
    assert e.value.filename == missing


# -- version, properties ---------------------------------------------------------------------

def test_version_is_a_static_call_and_a_string(lanenet_rt):
    static = HB_HBMRuntime.version()
    # Ours with the engines' versions, or (BPU libraries loaded) libdnn's string unchanged.
    expected_start = _hbm_ext._device_library_version() or hbm_runtime.__version__
    assert isinstance(static, str) and static.startswith(expected_start)
    assert lanenet_rt.version() == static and str(lanenet_rt.version) == static


def test_every_stub_property_has_the_documented_shape(two_models):
    names = two_models.model_names
    assert isinstance(names, list) and two_models.model_count == len(names) == 2
    for prop, value_type in PER_MODEL_PROPERTIES.items():
        value = getattr(two_models, prop)
        # Models in load order, but sched_params in the vendor's dict order (as hbm_descs).
        want = models.vendor_order(names) if prop == "sched_params" else names
        assert isinstance(value, dict) and list(value) == want, prop
        for model in names:
            assert isinstance(value[model], value_type), (prop, model)
            if value_type is dict:
                # Keyed in the vendor's dict order, whatever order the model lists them in.
                assert list(value[model]) == models.vendor_order(two_models.input_names[model]) \
                    if prop.startswith("input") else \
                    list(value[model]) == models.vendor_order(two_models.output_names[model]), prop
    assert isinstance(two_models.hbm_descs, dict) and len(two_models.hbm_descs) == 2
    q = next(iter(two_models.output_quants[LANE].values()))
    assert {"quant_type", "axis", "scale", "zero_point"} <= set(dir(q))
    s = two_models.sched_params[LANE]
    assert {"priority", "customId", "bpu_cores", "deviceId"} <= set(dir(s))


def test_set_scheduling_params_takes_the_stub_keywords(two_models):
    two_models.set_scheduling_params(priority={LANE: 7}, bpu_cores={LANE: [0]},
                                     custom_id={"single": 3}, device_id={"single": 0})
    params = two_models.sched_params
    assert params[LANE].priority == 7 and params[LANE].bpu_cores == [0]
    assert params["single"].customId == 3 and params["single"].priority == 0


def test_empty_core_list_means_any_core(two_models):
    two_models.set_scheduling_params(bpu_cores={LANE: [0]})
    two_models.set_scheduling_params(bpu_cores={LANE: []})
    assert two_models.sched_params[LANE].bpu_cores == [-1]
    assert two_models.sched_params["single"].bpu_cores == [-1]


# -- run() -----------------------------------------------------------------------------------

def test_run_overloads_by_position_and_by_keyword_agree_with_onnxruntime(open_runtime, single_path):
    rt = open_runtime(single_path)
    feeds = _feeds(rt, "single")
    (name, x), = feeds.items()
    expected = models.ort_reference(single_path, feeds)
    results = [
        rt.run(x), rt.run(input_tensor=x), rt.run(x, model_name="single"),
        rt.run(input_tensor=x, model_name="single"),
        rt.run(feeds), rt.run(input_tensors=feeds), rt.run(input_tensors=feeds, model_name="single"),
        rt.run({"single": feeds}), rt.run(multi_input_tensors={"single": feeds}),
        rt.run(multi_input_tensors={"single": feeds}, model_name="single"),
        rt.run_async(input_tensor=x).result(timeout=60),
        rt.run_async(input_tensors=feeds, model_name="single").result(timeout=60),
        rt.run_async(multi_input_tensors={"single": feeds}).result(timeout=60),
    ]
    for result in results:
        assert list(result) == ["single"]
        models.assert_outputs_match(result["single"], expected)


def test_multi_input_tensors_with_model_name_runs_only_that_model(two_models):
    feeds = {m: _feeds(two_models, m) for m in two_models.model_names}
    everything = two_models.run(multi_input_tensors=feeds)
    assert set(everything) == {LANE, "single"}
    only = two_models.run(multi_input_tensors=feeds, model_name="single")
    assert list(only) == ["single"]
    for output, value in only["single"].items():
        np.testing.assert_array_equal(value, everything["single"][output])


def test_run_keyword_errors(open_runtime, single_path):
    rt = open_runtime(single_path)
    feeds = _feeds(rt, "single")
    x = next(iter(feeds.values()))
    with pytest.raises(TypeError, match="exactly one of"):
        rt.run(x, input_tensor=x)
    with pytest.raises(TypeError, match="exactly one of"):
        rt.run(input_tensor=x, input_tensors=feeds)
    with pytest.raises(TypeError, match="got none"):
        rt.run()
    with pytest.raises(TypeError, match="got none"):
        rt.run_async(model_name="single")
    with pytest.raises(TypeError, match="inputs_tensors"):
        rt.run(inputs_tensors=feeds)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="nope"):
        rt.run(input_tensor=x, model_name="nope")


@pytest.mark.parametrize("mapping", [types.MappingProxyType, FrozenInputs, collections.OrderedDict])
def test_any_mapping_is_accepted_where_a_dict_is(two_models, mapping):
    feeds = {m: _feeds(two_models, m, seed=5) for m in two_models.model_names}
    expected = two_models.run(feeds)
    by_input = two_models.run(mapping(feeds[LANE]), model_name=LANE)
    nested = two_models.run(mapping({m: mapping(f) for m, f in feeds.items()}))
    outer_only = two_models.run(mapping(feeds))
    for got in (nested, outer_only):
        assert set(got) == set(expected)
    for result in (by_input, nested, outer_only):
        for model, outputs in result.items():
            for output, value in outputs.items():
                np.testing.assert_array_equal(value, expected[model][output])
    asynchronous = two_models.run_async(mapping(feeds["single"]), model_name="single").result(timeout=60)
    np.testing.assert_array_equal(next(iter(asynchronous["single"].values())),
                                  next(iter(expected["single"].values())))


def test_a_mapping_whose_keys_fail_reports_the_error(open_runtime, single_path):
    class Broken(FrozenInputs):
        def keys(self):  # type: ignore[override]
            raise KeyError("broken mapping")

    rt = open_runtime(single_path)
    with pytest.raises(KeyError, match="broken mapping"):
        rt.run(Broken(_feeds(rt, "single")))


def test_arrays_are_not_taken_for_mappings(open_runtime, single_path):
    rt = open_runtime(single_path)
    x = next(iter(_feeds(rt, "single").values()))
    with pytest.raises(ValueError, match="shape"):
        rt.run(x[:, :1])  # an array, wrong shape: reported as such, not as a bad mapping


# -- the vendor's module path ----------------------------------------------------------------

def test_vendor_module_path_imports():
    from hbm_runtime.HB_HBMRuntime import (HB_HBMRuntime as Cls, QuantParams, SchedParam, hbDNNDataType,
                                           hbDNNQuantiType)

    assert Cls is HB_HBMRuntime and QuantParams is hbm_runtime.QuantParams
    assert SchedParam is hbm_runtime.SchedParam and hbDNNDataType is hbm_runtime.hbDNNDataType
    assert hbDNNQuantiType is hbm_runtime.hbDNNQuantiType
    assert hbm_runtime.HB_HBMRuntime is HB_HBMRuntime  # the package attribute stays the class
    import hbm_runtime.HB_HBMRuntime as again  # noqa: F401

    assert hbm_runtime.HB_HBMRuntime is HB_HBMRuntime


# -- help(), docstrings, signatures -----------------------------------------------------------

PUBLIC_METHODS = ["run", "run_async", "set_scheduling_params", "input_buffers", "close", "__init__"]


def test_every_public_member_is_documented():
    props = list(PER_MODEL_PROPERTIES) + ["model_names", "model_count", "hbm_descs", "engine_versions",
                                          "closed"]
    for name in props + PUBLIC_METHODS:
        doc = inspect.getdoc(getattr(HB_HBMRuntime, name))
        assert doc and len(doc) > 20, name
    for name in props:
        if name != "closed":
            assert "e.g." in inspect.getdoc(getattr(HB_HBMRuntime, name)), f"{name} has no example value"
    for obj in (hbm_runtime.hbDNNDataType, hbm_runtime.hbDNNQuantiType, hbm_runtime.QuantParams,
                hbm_runtime.SchedParam, hbm_runtime.RunResult, hbm_runtime.set_host_cores,
                hbm_runtime.host_cores):
        assert inspect.getdoc(obj), obj


def test_help_shows_run_forms_and_properties():
    text = pydoc.render_doc(HB_HBMRuntime, renderer=pydoc.plaintext)
    for needle in ("input_tensor", "input_tensors", "multi_input_tensors", "model_name",
                   "input_shapes", "[1, 224, 224, 3]", "sched_params", "model_files"):
        assert needle in text, needle


def test_run_signatures_are_introspectable():
    for method in (HB_HBMRuntime.run, HB_HBMRuntime.run_async):
        params = inspect.signature(method).parameters
        assert list(params)[:3] == ["self", "input_tensors", "model_name"]
        assert params["input_tensor"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["multi_input_tensors"].kind is inspect.Parameter.KEYWORD_ONLY
    init = inspect.signature(HB_HBMRuntime).parameters
    assert "model_file" in init and init["model_files"].kind is inspect.Parameter.KEYWORD_ONLY


# -- errors ------------------------------------------------------------------------------------

def test_input_errors_are_value_errors_and_runtime_errors(two_models, tmp_path):
    """ValueError as the API documents; RuntimeError as the vendor's package raises."""
    feeds = _feeds(two_models, "single")
    x = next(iter(feeds.values()))
    attempts = [
        lambda: two_models.run(x[:, :1], model_name="single"),  # wrong shape
        lambda: two_models.run(x.astype(np.float64), model_name="single"),  # wrong dtype
        lambda: two_models.run({"nope": x}, model_name="single"),  # unknown input
        lambda: two_models.run(x),  # two models loaded, none chosen
        lambda: two_models.set_scheduling_params(priority={"nope": 1}),
        lambda: two_models.set_scheduling_params(priority=2**70),
        lambda: HB_HBMRuntime(os.fspath(tmp_path / "absent.onnx")),
    ]
    for attempt in attempts:
        with pytest.raises(hbm_runtime.InvalidArgumentError) as e:
            attempt()
        assert isinstance(e.value, ValueError) and isinstance(e.value, RuntimeError)
    with pytest.raises(RuntimeError):  # the vendor-style handler
        two_models.run_async(x[:, :1], model_name="single").result(timeout=60)


# Key orders the vendor's own binary (hbm-runtime 0.1.0.post1, run under qemu-user against the
# BPU test double) produced for these names, given in model order: the iteration order of its
# std::unordered_map. Per-tensor dicts, run() results, sched_params and hbm_descs follow it.
VENDOR_OBSERVED_ORDERS = [
    (["a", "b"], ["b", "a"]),
    (["h", "d", "b"], ["d", "b", "h"]),
    (["y", "z"], ["z", "y"]),
    (["r", "t"], ["t", "r"]),
    (["output", "1310", "1312"], ["1310", "1312", "output"]),
    (["data_y", "data_uv"], ["data_uv", "data_y"]),
    (["m_add", "m_nv12", "m_rows", "m_dyn", "m_types"], ["m_types", "m_dyn", "m_rows", "m_nv12", "m_add"]),
]


@pytest.mark.parametrize("given, vendor", VENDOR_OBSERVED_ORDERS)
def test_dict_key_order_is_the_vendors(given, vendor):
    assert models.vendor_order(given) == vendor


def test_dicts_and_results_share_one_key_order(tmp_path):
    # Inputs a, b and outputs y, z: the vendor keys them b, a and z, y.
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"]), helper.make_node("Sub", ["a", "b"], ["z"])], "ab",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("a", "b")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("y", "z")])
    path = models._save(graph, tmp_path / "ab.onnx")
    with HB_HBMRuntime(path) as rt:
        assert rt.input_names["ab"] == ["a", "b"] and rt.output_names["ab"] == ["y", "z"]
        for prop in ("input_shapes", "input_dtypes", "input_descs", "input_quants", "input_strides"):
            assert list(getattr(rt, prop)["ab"]) == ["b", "a"], prop
        for prop in ("output_shapes", "output_dtypes", "output_descs", "output_quants", "output_strides"):
            assert list(getattr(rt, prop)["ab"]) == ["z", "y"], prop
        out = rt.run({"a": np.ones(2, np.float32), "b": np.ones(2, np.float32)})["ab"]
        assert list(out) == ["z", "y"] and out["y"].tolist() == [2, 2] and out["z"].tolist() == [0, 0]
