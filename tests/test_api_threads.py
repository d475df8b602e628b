"""Several Python threads calling run() (and run_async()) on one runtime at the same time."""

from __future__ import annotations

import numpy as np
import pytest

import models
from models import LANENET_NAME, assert_outputs_match, ort_reference, random_feeds
from threads_support import in_threads


@pytest.mark.parametrize("n_threads", [2, 4, 8])
def test_threads_share_one_runtime(n_threads, open_runtime, mlp_path):
    rt = open_runtime(mlp_path)
    iters = 15
    rng = np.random.default_rng(n_threads)
    xs = [[rng.standard_normal(models.MLP_SHAPE).astype(np.float32) for _ in range(iters)] for _ in range(n_threads)]
    refs = [[ort_reference(mlp_path, {"x": x}) for x in row] for row in xs]

    def work(t):
        out = []
        for i, x in enumerate(xs[t]):
            arg = (x, {"x": x}, {"mlp": {"x": x}})[(t + i) % 3]
            out.append(rt.run(arg)["mlp"])
        return out

    results = in_threads(n_threads, work)
    for t in range(n_threads):
        for i in range(iters):
            assert_outputs_match(results[t][i], refs[t][i], f"thread {t} call {i}")


def test_threads_different_models_and_forms(open_runtime, mlp_path, lanenet_path, dyn_path, nv12_path):
    rt = open_runtime([mlp_path, lanenet_path, dyn_path, nv12_path])
    paths = {"mlp": mlp_path, LANENET_NAME: lanenet_path, "dyn": dyn_path, models.NV12_NAME: nv12_path}
    iters = 6
    jobs = []  # per thread: list of (arg, model_name kwarg, {model: ref})
    for t in range(6):
        row = []
        for i in range(iters):
            seed = 1000 * t + i
            kind = (t + i) % 4
            if kind == 0:
                feeds = random_feeds(mlp_path, seed)
                row.append((feeds["x"], "mlp", {"mlp": ort_reference(mlp_path, feeds)}))
            elif kind == 1:
                feeds = random_feeds(dyn_path, seed, dims={"N": 1 + (seed % 4)})
                row.append((feeds, "dyn", {"dyn": ort_reference(dyn_path, feeds)}))
            elif kind == 2:
                feeds = {n: random_feeds(p, seed) for n, p in paths.items() if n != "dyn"}
                row.append((feeds, None, {n: ort_reference(paths[n], f) for n, f in feeds.items()}))
            else:
                feeds = random_feeds(lanenet_path, seed)
                row.append(({LANENET_NAME: feeds, "mlp": random_feeds(mlp_path, seed)}, LANENET_NAME,
                            {LANENET_NAME: ort_reference(lanenet_path, feeds)}))
        jobs.append(row)

    def work(t):
        return [rt.run(arg, model_name=name) for arg, name, _ in jobs[t]]

    results = in_threads(len(jobs), work)
    for t, row in enumerate(jobs):
        for i, (_, _, refs) in enumerate(row):
            got = results[t][i]
            assert sorted(got) == sorted(refs), f"thread {t} call {i}"
            for name, ref in refs.items():
                assert_outputs_match(got[name], ref, f"thread {t} call {i} {name}")


def test_threads_with_errors_do_not_disturb_others(open_runtime, mlp_path):
    rt = open_runtime(mlp_path)
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal(models.MLP_SHAPE).astype(np.float32) for _ in range(20)]
    refs = [ort_reference(mlp_path, {"x": x}) for x in xs]

    def work(t):
        out = []
        for i, x in enumerate(xs):
            if t % 2:
                with pytest.raises(ValueError):
                    rt.run(x.astype(np.float64))
                with pytest.raises(ValueError):
                    rt.run(x[:, :64])
            else:
                out.append(rt.run(x)["mlp"])
        return out

    results = in_threads(4, work)
    for t in (0, 2):
        for i, ref in enumerate(refs):
            assert_outputs_match(results[t][i], ref, f"thread {t} call {i}")


def test_threads_and_run_async_together(open_runtime, mlp_path):
    rt = open_runtime(mlp_path)
    rng = np.random.default_rng(8)
    xs = [[rng.standard_normal(models.MLP_SHAPE).astype(np.float32) for _ in range(8)] for _ in range(4)]
    refs = [[ort_reference(mlp_path, {"x": x}) for x in row] for row in xs]

    def work(t):
        if t % 2:
            futures = [rt.run_async({"mlp": {"x": x}}, model_name="mlp") for x in xs[t]]
            return [f.result(timeout=60)["mlp"] for f in futures]
        return [rt.run(x)["mlp"] for x in xs[t]]

    results = in_threads(4, work)
    for t in range(4):
        for i in range(8):
            assert_outputs_match(results[t][i], refs[t][i], f"thread {t} call {i}")


def test_threads_share_one_input_array(open_runtime, mlp_path):
    """Many threads passing the very same array at once."""
    rt = open_runtime(mlp_path)
    x = np.random.default_rng(9).standard_normal(models.MLP_SHAPE).astype(np.float32)
    ref = ort_reference(mlp_path, {"x": x})
    results = in_threads(6, lambda t: [rt.run(x)["mlp"] for _ in range(10)])
    for t, row in enumerate(results):
        for i, got in enumerate(row):
            assert_outputs_match(got, ref, f"thread {t} call {i}")


def test_scheduling_changes_while_threads_run(open_runtime, mlp_path, two_cores):
    rt = open_runtime(mlp_path)
    rng = np.random.default_rng(10)
    xs = [rng.standard_normal(models.MLP_SHAPE).astype(np.float32) for _ in range(12)]
    refs = [ort_reference(mlp_path, {"x": x}) for x in xs]
    settings = [dict(priority=255, bpu_cores=[0]), dict(priority=0, bpu_cores=[1], custom_id=7),
                dict(bpu_cores=[-1], custom_id=0), dict(priority={"mlp": 9}, bpu_cores={"mlp": [0, 1]})]

    def work(t):
        if t == 0:
            for i in range(40):
                rt.set_scheduling_params(**settings[i % len(settings)])
            return None
        return [rt.run(x)["mlp"] for x in xs]

    results = in_threads(4, work)
    for t in (1, 2, 3):
        for i, ref in enumerate(refs):
            assert_outputs_match(results[t][i], ref, f"thread {t} call {i}")
    assert rt.sched_params["mlp"].bpu_cores == [0, 1] and rt.sched_params["mlp"].priority == 9


def test_close_with_work_in_flight(mlp_path):
    """Closing while async runs are pending: each future ends (result correct, or cancelled /
    RuntimeClosedError), nothing hangs, and later runs are refused."""
    import concurrent.futures

    from hbm_runtime import HB_HBMRuntime, RuntimeClosedError

    rt = HB_HBMRuntime(mlp_path)
    rng = np.random.default_rng(11)
    xs = [rng.standard_normal(models.MLP_SHAPE).astype(np.float32) for _ in range(40)]
    futures = [rt.run_async(x) for x in xs]
    rt.close()
    assert rt.closed
    done, not_done = concurrent.futures.wait(futures, timeout=60)
    assert not not_done
    for x, f in zip(xs, futures):
        if f.cancelled():
            continue
        err = f.exception()
        if err is not None:
            assert isinstance(err, RuntimeClosedError), repr(err)
            continue
        assert_outputs_match(f.result()["mlp"], ort_reference(mlp_path, {"x": x}))
    with pytest.raises(RuntimeClosedError):
        rt.run(xs[0])
