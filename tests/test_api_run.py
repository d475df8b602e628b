"""run() / run_async(): the three input forms, results equal to onnxruntime's on the same model,
dynamic shapes, non-contiguous inputs, RunResult."""

from __future__ import annotations

import concurrent.futures
import pathlib
import pickle

import numpy as np
import pytest

import models
from hbm_runtime import HB_HBMRuntime, RuntimeClosedError
from models import LANENET_NAME, NV12_NAME, assert_outputs_match, ort_reference, random_feeds

ALL_STATIC = ["lanenet_path", "nv12_path", "qdq_path", "qdq_nozp_path", "mlp_path", "single_path",
              "tiny_path", "dtypes_path"]


@pytest.mark.parametrize("fixture", ALL_STATIC)
@pytest.mark.parametrize("seed", [0, 1])
def test_outputs_equal_onnxruntime(fixture, seed, request, open_runtime):
    path = request.getfixturevalue(fixture)
    rt = open_runtime(path)
    name = pathlib.Path(path).stem
    feeds = random_feeds(path, seed=seed)
    result = rt.run(feeds)
    assert list(result) == [name]
    ref = ort_reference(path, feeds)
    assert_outputs_match(result[name], ref, name)
    # The result's metadata agrees with the properties.
    for o, arr in result[name].items():
        assert list(arr.shape) == rt.output_shapes[name][o]
        assert list(arr.strides) == rt.output_strides[name][o]
        assert arr.dtype == models.DTYPES[rt.output_dtypes[name][o].name][1]
        # A plain writable ndarray over memory it does not own (the base keeps it alive).
        assert type(arr) is np.ndarray and arr.base is not None and not arr.flags.owndata
        assert arr.flags.writeable and arr.flags.aligned and arr.flags.c_contiguous


@pytest.mark.parametrize("form", ["array", "dict", "nested", "array+name", "dict+name", "nested+name"])
def test_three_input_forms_single_model(form, lanenet_rt, lanenet_path):
    x = np.random.default_rng(2).standard_normal(models.LANENET_SHAPE).astype(np.float32)
    arg = {"array": x, "dict": {"input": x}, "nested": {LANENET_NAME: {"input": x}}}[form.split("+")[0]]
    kwargs = {"model_name": LANENET_NAME} if form.endswith("+name") else {}
    result = lanenet_rt.run(arg, **kwargs)
    assert list(result) == [LANENET_NAME]
    assert_outputs_match(result[LANENET_NAME], ort_reference(lanenet_path, {"input": x}))


def test_model_name_is_a_keyword_argument(lanenet_rt, lanenet_path):
    x = np.random.default_rng(3).standard_normal(models.LANENET_SHAPE).astype(np.float32)
    result = lanenet_rt.run(x, LANENET_NAME)
    assert_outputs_match(result[LANENET_NAME], ort_reference(lanenet_path, {"input": x}))


@pytest.fixture
def three_models(open_runtime, lanenet_path, nv12_path, qdq_path):
    rt = open_runtime([lanenet_path, nv12_path, qdq_path])
    paths = {LANENET_NAME: lanenet_path, NV12_NAME: nv12_path, "qdq": qdq_path}
    feeds = {name: random_feeds(p, seed=i + 40) for i, (name, p) in enumerate(paths.items())}
    return rt, paths, feeds


def test_multi_model_run_all(three_models):
    rt, paths, feeds = three_models
    result = rt.run(feeds)
    assert sorted(result) == sorted(paths)
    for name, path in paths.items():
        assert_outputs_match(result[name], ort_reference(path, feeds[name]), name)


def test_multi_model_run_subset_without_model_name(three_models):
    """Omitting model_name runs exactly the models given in the dict."""
    rt, paths, feeds = three_models
    subset = {"qdq": feeds["qdq"], LANENET_NAME: feeds[LANENET_NAME]}
    result = rt.run(subset)
    assert sorted(result) == sorted(subset)
    for name in subset:
        assert_outputs_match(result[name], ort_reference(paths[name], feeds[name]), name)


@pytest.mark.parametrize("only", [LANENET_NAME, NV12_NAME, "qdq"])
def test_multi_model_run_with_model_name(three_models, only):
    rt, paths, feeds = three_models
    result = rt.run(feeds, model_name=only)
    assert list(result) == [only]
    assert_outputs_match(result[only], ort_reference(paths[only], feeds[only]), only)


@pytest.mark.parametrize("only", [NV12_NAME, "qdq"])
def test_dict_form_with_model_name_among_several(three_models, only):
    rt, paths, feeds = three_models
    result = rt.run(feeds[only], model_name=only)
    assert list(result) == [only]
    assert_outputs_match(result[only], ort_reference(paths[only], feeds[only]), only)


def test_multi_model_results_do_not_mix_up_same_shaped_models(tmp_path, open_runtime):
    """Two models with identical signatures but different weights: each gets its own result."""
    p1 = models.tiny(tmp_path / "twin_a.onnx", seed=101)
    p2 = models.tiny(tmp_path / "twin_b.onnx", seed=202)
    rt = open_runtime([p1, p2])
    f1, f2 = random_feeds(p1, seed=1), random_feeds(p2, seed=2)
    result = rt.run({"twin_a": f1, "twin_b": f2})
    assert_outputs_match(result["twin_a"], ort_reference(p1, f1), "twin_a")
    assert_outputs_match(result["twin_b"], ort_reference(p2, f2), "twin_b")


def test_more_models_than_cores_load_at_once_in_file_order(tmp_path, open_runtime):
    """The host engine compiles several files side by side: every model is the one its file
    holds, in the order the files were given, whatever order the compiles finish in."""
    paths = [models.tiny(tmp_path / f"m{i}.onnx", seed=300 + i) if i % 2 else
             models.mlp(tmp_path / f"m{i}.onnx", seed=300 + i, layers=2 + i) for i in range(7)]
    rt = open_runtime(paths)
    assert list(rt.model_names) == [f"m{i}" for i in range(7)]
    feeds = {f"m{i}": random_feeds(p, seed=i) for i, p in enumerate(paths)}
    result = rt.run(feeds)
    for i, p in enumerate(paths):
        assert_outputs_match(result[f"m{i}"], ort_reference(p, feeds[f"m{i}"]), f"m{i}")


# ---- dynamic shapes -----------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3, 1, 7])
def test_dynamic_batch_runs(batch, open_runtime, dyn_path):
    rt = open_runtime(dyn_path)
    x = np.random.default_rng(batch).standard_normal((batch, 3, 4, 5)).astype(np.float32)
    result = rt.run(x)
    assert result["dyn"]["y"].shape == (batch, 3, 4, 6)
    assert_outputs_match(result["dyn"], ort_reference(dyn_path, {"x": x}))


def test_dynamic_batch_alternating_sizes_on_one_runtime(open_runtime, dyn_path):
    rt = open_runtime(dyn_path)
    rng = np.random.default_rng(5)
    held = []
    for batch in (1, 3, 1, 3, 2):
        x = rng.standard_normal((batch, 3, 4, 5)).astype(np.float32)
        out = rt.run({"x": x})["dyn"]
        assert out["y"].shape == (batch, 3, 4, 6)
        assert_outputs_match(out, ort_reference(dyn_path, {"x": x}))
        held.append((x, out))
    for x, out in held:  # earlier dynamic outputs are not overwritten by later runs
        assert_outputs_match(out, ort_reference(dyn_path, {"x": x}))


@pytest.mark.parametrize("b,t", [(1, 1), (1, 5), (3, 2), (2, 9)])
def test_dynamic_inner_dims_runs(b, t, open_runtime, dyn_seq_path):
    rt = open_runtime(dyn_seq_path)
    tokens = np.random.default_rng(b * 10 + t).standard_normal((b, t, 8)).astype(np.float32)
    out = rt.run(tokens)["dyn_seq"]
    assert out["h"].shape == (b, t, 4) and out["pooled"].shape == (b, 4)
    assert out["h"].strides == (t * 16, 16, 4)
    assert_outputs_match(out, ort_reference(dyn_seq_path, {"tokens": tokens}))


def test_dynamic_model_in_multi_model_run(open_runtime, dyn_path, lanenet_path):
    rt = open_runtime([dyn_path, lanenet_path])
    x = np.random.default_rng(6).standard_normal((3, 3, 4, 5)).astype(np.float32)
    img = np.random.default_rng(7).standard_normal(models.LANENET_SHAPE).astype(np.float32)
    result = rt.run({"dyn": {"x": x}, LANENET_NAME: {"input": img}})
    assert_outputs_match(result["dyn"], ort_reference(dyn_path, {"x": x}))
    assert_outputs_match(result[LANENET_NAME], ort_reference(lanenet_path, {"input": img}))


# ---- non-contiguous inputs ---------------------------------------------------------------------


def _non_contiguous_variants(dense: np.ndarray):
    """Arrays equal to dense but laid out differently in memory."""
    yield "transposed", np.ascontiguousarray(dense.T).T
    yield "fortran", np.asfortranarray(dense)
    big = np.zeros(dense.shape[:-1] + (dense.shape[-1] * 2,), dense.dtype)
    big[..., ::2] = dense
    yield "sliced_last_axis", big[..., ::2]
    big0 = np.zeros((dense.shape[0] * 3,) + dense.shape[1:], dense.dtype)
    big0[1::3] = dense
    yield "sliced_first_axis", big0[1::3]
    rev = np.ascontiguousarray(dense[..., ::-1])
    yield "negative_stride", rev[..., ::-1]
    padded = np.zeros(dense.shape[:-1] + (dense.shape[-1] + 3,), dense.dtype)
    padded[..., 1:-2] = dense
    yield "offset_view", padded[..., 1:-2]
    if dense.itemsize > 1:  # C-contiguous but not aligned to the element size
        raw = np.zeros(dense.nbytes + 1, np.uint8)
        unaligned = raw[1:].view(dense.dtype).reshape(dense.shape)
        unaligned[...] = dense
        assert not unaligned.flags.aligned
        yield "unaligned", unaligned
    class Subclass(np.ndarray):
        pass
    yield "subclass", dense.copy().view(Subclass)


def test_non_contiguous_single_input(lanenet_rt, lanenet_path):
    dense = np.random.default_rng(8).standard_normal(models.LANENET_SHAPE).astype(np.float32)
    ref = ort_reference(lanenet_path, {"input": dense})
    variants = dict(_non_contiguous_variants(dense))
    assert sum(not x.flags.c_contiguous for x in variants.values()) >= 5
    for kind, x in variants.items():
        np.testing.assert_array_equal(x, dense)
        before = x.copy()
        out = lanenet_rt.run(x)[LANENET_NAME]
        assert_outputs_match(out, ref, kind)
        np.testing.assert_array_equal(x, before, err_msg=f"{kind}: input modified")


def test_non_contiguous_uint8_inputs(nv12_rt, nv12_path):
    rng = np.random.default_rng(9)
    dense = {n: rng.integers(0, 256, size=s).astype(np.uint8) for n, s in models.NV12_INPUT_SHAPES.items()}
    ref = ort_reference(nv12_path, dense)
    variants = {n: dict(_non_contiguous_variants(a)) for n, a in dense.items()}
    for kind in variants["data_y"]:
        feeds = {"data_y": variants["data_y"][kind], "data_uv": variants["data_uv"][kind]}
        assert_outputs_match(nv12_rt.run(feeds)[NV12_NAME], ref, kind)
    # One contiguous and one strided input in the same call.
    feeds = {"data_y": dense["data_y"], "data_uv": variants["data_uv"]["transposed"]}
    assert_outputs_match(nv12_rt.run(feeds)[NV12_NAME], ref, "mixed")


def test_non_contiguous_dynamic_and_multi_model(open_runtime, dyn_path, tiny_path):
    rt = open_runtime([dyn_path, tiny_path])
    x = np.random.default_rng(10).standard_normal((3, 3, 4, 5)).astype(np.float32)
    a = np.random.default_rng(11).standard_normal((8, 2)).astype(np.float32).T  # (2, 8), F-order
    b = np.random.default_rng(12).standard_normal((2, 16)).astype(np.float32)[:, ::2]
    xt = np.ascontiguousarray(np.transpose(x, (3, 2, 1, 0))).transpose(3, 2, 1, 0)
    result = rt.run({"dyn": {"x": xt}, "tiny": {"a": a, "b": b}})
    assert_outputs_match(result["dyn"], ort_reference(dyn_path, {"x": x}))
    assert_outputs_match(result["tiny"], ort_reference(tiny_path, {"a": a, "b": b}))


@pytest.mark.parametrize("kind", ["setflags", "frombuffer", "broadcast_to"])
def test_read_only_inputs(kind, open_runtime, single_path):
    """Read-only arrays (bytes buffers, memory maps, broadcasts) are valid inputs: the runtime
    only reads them."""
    rt = open_runtime(single_path)
    x = np.random.default_rng(17).standard_normal((1, 16)).astype(np.float32)
    if kind == "setflags":
        arg = x.copy()
        arg.setflags(write=False)
    elif kind == "frombuffer":
        arg = np.frombuffer(x.tobytes(), dtype=np.float32).reshape(1, 16)
    else:
        x = np.broadcast_to(np.float32(0.5), (1, 16))
        arg = x
    assert not arg.flags.writeable
    assert_outputs_match(rt.run(arg)["single"], ort_reference(single_path, {"x": np.array(x)}), kind)


class _ArrayInterfaceOnly:
    """Exports its data only through __array_interface__ (like many image/camera libraries)."""

    def __init__(self, a: np.ndarray) -> None:
        self._a = a
        self.__array_interface__ = a.__array_interface__


class _DLPackOnly:
    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


@pytest.mark.parametrize("wrapper", [_ArrayInterfaceOnly, _DLPackOnly], ids=["array_interface", "dlpack"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_array_like_inputs(wrapper, layout, open_runtime, tiny_path):
    """DESIGN: arrays are numpy or anything exporting DLPack / __array_interface__."""
    rt = open_runtime(tiny_path)
    feeds = random_feeds(tiny_path, seed=18)
    a = feeds["a"] if layout == "contiguous" else np.ascontiguousarray(feeds["a"].T).T
    result = rt.run({"a": wrapper(a), "b": wrapper(feeds["b"])})
    assert_outputs_match(result["tiny"], ort_reference(tiny_path, feeds))


def test_input_modified_in_place_between_runs(single_path, open_runtime):
    """The runtime may cache what it bound last time; new data in the same buffer must be seen."""
    rt = open_runtime(single_path)
    x = np.random.default_rng(13).standard_normal((1, 16)).astype(np.float32)
    for i in range(4):
        out = rt.run(x)["single"]
        assert_outputs_match(out, ort_reference(single_path, {"x": x}), f"round {i}")
        x *= -1.5
        x += 0.25


def test_new_arrays_each_call(single_path, open_runtime):
    rt = open_runtime(single_path)
    rng = np.random.default_rng(14)
    for i in range(20):
        x = rng.standard_normal((1, 16)).astype(np.float32)
        assert_outputs_match(rt.run(x)["single"], ort_reference(single_path, {"x": x}), f"call {i}")


# ---- RunResult -----------------------------------------------------------------------------------


def test_run_result_is_a_dict_with_timings(three_models):
    rt, paths, feeds = three_models
    result = rt.run(feeds)
    assert isinstance(result, dict)
    assert all(type(v) is dict for v in result.values())
    assert sorted(result.timings) == sorted(paths)
    for t in result.timings.values():
        assert t["infer_us"] >= 0


def test_run_result_pickles_as_a_plain_dict(three_models):
    rt, paths, feeds = three_models
    result = rt.run(feeds)
    restored = pickle.loads(pickle.dumps(result))
    assert type(restored) is dict
    assert sorted(restored) == sorted(result)
    for name in result:
        assert list(restored[name]) == list(result[name])
        for o in result[name]:
            np.testing.assert_array_equal(restored[name][o], result[name][o])
            assert restored[name][o].dtype == result[name][o].dtype


# ---- run_async ---------------------------------------------------------------------------------------


def test_run_async_returns_future_with_correct_result(three_models):
    rt, paths, feeds = three_models
    fut = rt.run_async(feeds)
    assert isinstance(fut, concurrent.futures.Future)
    result = fut.result(timeout=60)
    assert sorted(result) == sorted(paths)
    for name, path in paths.items():
        assert_outputs_match(result[name], ort_reference(path, feeds[name]), name)


@pytest.mark.parametrize("form", ["array", "dict", "nested+name"])
def test_run_async_forms(form, open_runtime, lanenet_path, single_path):
    rt = open_runtime([single_path, lanenet_path])
    x = np.random.default_rng(15).standard_normal((1, 16)).astype(np.float32)
    arg = {"array": x, "dict": {"x": x}, "nested+name": {"single": {"x": x}}}[form]
    result = rt.run_async(arg, model_name="single").result(timeout=60)
    assert list(result) == ["single"]
    assert_outputs_match(result["single"], ort_reference(single_path, {"x": x}))


def test_many_run_async_in_flight(open_runtime, mlp_path):
    rt = open_runtime(mlp_path)
    rng = np.random.default_rng(16)
    xs = [rng.standard_normal(models.MLP_SHAPE).astype(np.float32) for _ in range(24)]
    futures = [rt.run_async(x) for x in xs]
    for x, fut in zip(xs, futures):
        assert_outputs_match(fut.result(timeout=60)["mlp"], ort_reference(mlp_path, {"x": x}))


def test_run_async_bad_input_reports_value_error(lanenet_rt):
    bad = np.zeros((1, 3, 256, 511), np.float32)
    try:
        fut = lanenet_rt.run_async(bad)
    except ValueError:
        return
    with pytest.raises(ValueError):
        fut.result(timeout=60)


def test_run_after_close_raises(lanenet_path):
    rt = HB_HBMRuntime(lanenet_path)
    x = np.zeros(models.LANENET_SHAPE, np.float32)
    rt.run(x)
    rt.close()
    with pytest.raises(RuntimeClosedError):
        rt.run(x)


@pytest.mark.parametrize("preset", [None, "1"])
def test_openvino_load_leaves_the_environment_as_it_was(tiny_path, preset):
    """The first compile disables TBB's per-inference thread binding through
    HWLOC_THISSYSTEM=0 for that compile only; a value the user set is left alone."""
    import os
    import subprocess
    import sys

    script = f"""
import ctypes, numpy as np
from hbm_runtime import HB_HBMRuntime
getenv = ctypes.CDLL(None).getenv
getenv.restype = ctypes.c_char_p
rt = HB_HBMRuntime({tiny_path!r})
name = rt.model_names[0]
rt.run({{i: np.zeros(s, np.float32) for i, s in rt.input_shapes[name].items()}})
print(getenv(b"HWLOC_THISSYSTEM"))
"""
    env = {k: v for k, v in os.environ.items() if k != "HWLOC_THISSYSTEM"}
    if preset is not None:
        env["HWLOC_THISSYSTEM"] = preset
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("None" if preset is None else repr(preset.encode()))
