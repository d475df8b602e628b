"""Output arrays own their memory: they stay valid after later runs and after the runtime is
closed or deleted; a later run never writes into an array the caller still holds."""

from __future__ import annotations

import gc

import numpy as np

import models
from hbm_runtime import HB_HBMRuntime
from models import LANENET_NAME, NV12_NAME, assert_outputs_match, ort_reference


def _inputs(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def test_later_runs_do_not_overwrite_held_results(open_runtime, mlp_path):
    rt = open_runtime(mlp_path)
    xs = _inputs(6, models.MLP_SHAPE, seed=1)
    held = [rt.run(x) for x in xs]
    for x, res in zip(xs, held):
        assert_outputs_match(res["mlp"], ort_reference(mlp_path, {"x": x}))
    # Distinct memory for every result still alive.
    ptrs = {r["mlp"]["y"].__array_interface__["data"][0] for r in held}
    assert len(ptrs) == len(held)


def test_partially_held_results_over_many_runs(open_runtime, lanenet_path):
    """Keep one output of some runs, the other output of others, nothing of the rest, over more
    runs than the runtime keeps requests for: every array kept still holds its own run's data."""
    rt = open_runtime(lanenet_path)
    xs = _inputs(14, models.LANENET_SHAPE, seed=21)
    kept = []  # (input index, output name, array)
    for i, x in enumerate(xs):
        out = rt.run(x)[LANENET_NAME]
        if i % 3 == 0:
            kept.append((i, "seg", out["seg"]))
        elif i % 3 == 1:
            kept.append((i, "output", out["output"]))
        del out
    for _ in range(4):
        rt.run(xs[0])
    for i, name, arr in kept:
        ref = ort_reference(lanenet_path, {"input": xs[i]})[name]
        np.testing.assert_allclose(arr, ref, rtol=1e-5, atol=1e-5, err_msg=f"run {i} {name}")


def test_held_output_array_alone_survives_later_runs(open_runtime, lanenet_path):
    rt = open_runtime(lanenet_path)
    x1, x2, x3 = _inputs(3, models.LANENET_SHAPE, seed=2)
    out = rt.run(x1)[LANENET_NAME]["output"]  # the dict holding it is dropped at once
    view = rt.run(x2)[LANENET_NAME]["seg"][0, 1:3, ::2]  # only a view of it is kept
    gc.collect()
    for _ in range(5):
        rt.run(x3)
    ref1 = ort_reference(lanenet_path, {"input": x1})
    ref2 = ort_reference(lanenet_path, {"input": x2})
    np.testing.assert_allclose(out, ref1["output"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(view, ref2["seg"][0, 1:3, ::2], rtol=1e-5, atol=1e-5)


def test_modifying_a_result_does_not_affect_later_runs(open_runtime, single_path):
    rt = open_runtime(single_path)
    x = _inputs(1, (1, 16), seed=3)[0]
    ref = ort_reference(single_path, {"x": x})
    first = rt.run(x)["single"]["y"]
    first[...] = 12345.0  # outputs are ordinary writable arrays
    del first
    gc.collect()
    assert_outputs_match(rt.run(x)["single"], ref)
    kept = rt.run(x)["single"]["y"]
    kept += 1.0
    second = rt.run(x)["single"]
    assert_outputs_match(second, ref)
    np.testing.assert_allclose(kept, ref["y"] + 1.0, rtol=1e-5, atol=1e-5)


def test_results_survive_close_and_delete(lanenet_path, nv12_path, dyn_path):
    rt = HB_HBMRuntime([lanenet_path, nv12_path, dyn_path])
    x = _inputs(1, models.LANENET_SHAPE, seed=4)[0]
    rng = np.random.default_rng(4)
    feeds = {n: rng.integers(0, 256, size=s).astype(np.uint8) for n, s in models.NV12_INPUT_SHAPES.items()}
    d = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    result = rt.run({LANENET_NAME: {"input": x}, NV12_NAME: feeds, "dyn": {"x": d}})
    lone = rt.run(d, model_name="dyn")["dyn"]["y"]
    rt.close()
    del rt
    gc.collect()
    # Allocate and touch a lot of memory, so freed buffers would be reused and overwritten.
    junk = [np.full(1 << 18, 0x7F, np.uint8) for _ in range(64)]
    assert_outputs_match(result[LANENET_NAME], ort_reference(lanenet_path, {"input": x}))
    assert_outputs_match(result[NV12_NAME], ort_reference(nv12_path, feeds))
    assert_outputs_match(result["dyn"], ort_reference(dyn_path, {"x": d}))
    np.testing.assert_allclose(lone, ort_reference(dyn_path, {"x": d})["y"], rtol=1e-5, atol=1e-5)
    del junk


def test_results_survive_runtime_garbage_collection(single_path):
    def make():
        rt = HB_HBMRuntime(single_path)
        x = _inputs(1, (1, 16), seed=5)[0]
        return x, rt.run(x)  # the runtime is unreachable after this returns

    x, result = make()
    gc.collect()
    for _ in range(3):  # more runtimes come and go
        other = HB_HBMRuntime(single_path)
        other.run(np.ones((1, 16), np.float32))
        del other
        gc.collect()
    assert_outputs_match(result["single"], ort_reference(single_path, {"x": x}))


def test_async_results_own_their_memory(open_runtime, mlp_path):
    rt = open_runtime(mlp_path)
    xs = _inputs(10, models.MLP_SHAPE, seed=6)
    futures = [rt.run_async({"mlp": {"x": x}}, model_name="mlp") for x in xs]
    results = [f.result(timeout=60) for f in futures]
    for _ in range(5):
        rt.run(xs[0])
    rt.close()
    gc.collect()
    for x, r in zip(xs, results):
        assert_outputs_match(r["mlp"], ort_reference(mlp_path, {"x": x}))


def test_output_arrays_have_owners(open_runtime, nv12_path):
    rt = open_runtime(nv12_path)
    rng = np.random.default_rng(7)
    feeds = {n: rng.integers(0, 256, size=s).astype(np.uint8) for n, s in models.NV12_INPUT_SHAPES.items()}
    for name, arr in rt.run(feeds)[NV12_NAME].items():
        assert arr.base is not None or arr.flags.owndata, name
        inputs_ptrs = [a.__array_interface__["data"][0] for a in feeds.values()]
        assert arr.__array_interface__["data"][0] not in inputs_ptrs, name
