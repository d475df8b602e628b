"""Host scheduler semantics: priority/customId order, core affinity, GIL release,
async runs, close/GC with queued work, timings, and a mixed stress run.

Queue-ordering tests hold a virtual core busy with ``_hbm_ext._CoreHold`` (returns once
the core is really held) instead of sleeping: tasks submitted meanwhile must queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import hbm_runtime
import models
from hbm_runtime import HB_HBMRuntime, HBMRuntimeError, RuntimeClosedError
from hbm_runtime import _hbm_ext


def _affine_model(path, n_in=16, n_out=8, seed=0):
    """y = relu(x @ W + b): small and exact enough to compare with onnxruntime."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_in, n_out)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["a"]),
         helper.make_node("Relu", ["a"], ["y"])],
        "affine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def _reference(path, x):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.fixture
def host_cores():
    """Sets the process-wide virtual core count for one test and restores it after."""
    before = hbm_runtime.host_cores()
    yield hbm_runtime.set_host_cores
    hbm_runtime.set_host_cores(before)


@pytest.fixture
def four_models(tmp_path):
    paths = [_affine_model(tmp_path / f"m{i}.onnx", seed=i) for i in range(4)]
    rt = HB_HBMRuntime(paths)
    yield rt, paths
    rt.close()


def _start_order(submitted):
    """Labels in the order their tasks started on the core.

    Futures may complete on different threads, so callback order proves nothing; the start
    timestamp does: tasks on one core run one after the other, so their starts are a whole
    inference apart.
    """
    starts = [(fut.result(timeout=60).timings[model]["started_at"], label) for label, model, fut in submitted]
    return [label for _, label in sorted(starts)]


def test_queued_tasks_run_by_priority_then_custom_id_then_arrival(four_models, host_cores):
    rt, _ = four_models
    host_cores(1)
    x = np.ones((1, 16), np.float32)
    names = rt.model_names
    # (label, model, priority, customId) in submission order.
    plan = [("a", names[0], 0, 0), ("b", names[1], 5, 9), ("c", names[2], 5, 1), ("d", names[3], 200, 0),
            ("e", names[2], 5, 1), ("f", names[0], 0, 0), ("g", names[1], 100, 3)]
    hold = _hbm_ext._CoreHold(0)
    try:
        submitted = []
        for label, model, priority, custom_id in plan:
            rt.set_scheduling_params(priority={model: priority}, custom_id={model: custom_id})
            submitted.append((label, model, rt.run_async({model: {"x": x}})))
        assert _hbm_ext._queued() == len(plan)
    finally:
        hold.release()
    assert _start_order(submitted) == ["d", "g", "c", "e", "b", "a", "f"]


def test_preemptive_priorities_do_not_wait_for_a_busy_core(four_models, host_cores):
    # On the BPU, priorities 254 and 255 preempt; on the host such a model runs at once
    # beside the task occupying its core, while priority 253 waits in the queue.
    rt, paths = four_models
    host_cores(1)
    names = rt.model_names
    rt.set_scheduling_params(priority={names[0]: 254, names[1]: 253, names[2]: 255})
    x = np.ones((1, 16), np.float32)
    hold = _hbm_ext._CoreHold(0)
    try:
        waiting = rt.run_async({names[1]: {"x": x}})
        assert _hbm_ext._queued() == 1
        # Would block until the hold is released if it were not preemptive.
        res = rt.run_async({names[0]: {"x": x}}).result(timeout=60)
        np.testing.assert_allclose(res[names[0]]["y"], _reference(paths[0], x), rtol=1e-5, atol=1e-5)
        assert res.timings[names[0]]["core"] == 0
        blocking = rt.run({names[2]: {"x": x}})  # the blocking form too
        assert blocking.timings[names[2]]["core"] == 0
        assert _hbm_ext._queued() == 1 and not waiting.done()
    finally:
        hold.release()
    np.testing.assert_allclose(waiting.result(timeout=60)[names[1]]["y"], _reference(paths[1], x), rtol=1e-5,
                               atol=1e-5)


def test_model_bound_to_a_core_never_runs_elsewhere(four_models, host_cores):
    rt, paths = four_models
    host_cores(2)
    names = rt.model_names
    rt.set_scheduling_params(bpu_cores={names[0]: [1], names[1]: [0], names[2]: [0, 1], names[3]: [-1]})
    x = np.ones((1, 16), np.float32)
    seen = {n: set() for n in names}
    for _ in range(30):
        res = rt.run({n: {"x": x} for n in names})
        for n in names:
            seen[n].add(res.timings[n]["core"])
        single = rt.run(x, model_name=names[0])  # the inline latency path honours affinity too
        seen[names[0]].add(single.timings[names[0]]["core"])
    assert seen[names[0]] == {1}
    assert seen[names[1]] == {0}
    assert seen[names[2]] <= {0, 1} and seen[names[3]] <= {0, 1}


def test_core_ids_are_checked_against_the_board_range(four_models, host_cores):
    # Core ids 0..3 (the board's BPU cores) are valid on any host; more only with more
    # virtual cores.
    rt, _ = four_models
    host_cores(2)
    before = rt.sched_params
    with pytest.raises(ValueError, match=r"bpu_cores of model 'm0'.*\[4\].*0\.\.3"):
        rt.set_scheduling_params(bpu_cores={"m0": [4]}, priority={"m1": 7})
    with pytest.raises(ValueError, match=r"\[-1, 0\]"):
        rt.set_scheduling_params(bpu_cores=[-1, 0])
    assert rt.sched_params == before
    host_cores(6)
    rt.set_scheduling_params(bpu_cores={"m0": [5]})
    assert rt.sched_params["m0"].bpu_cores == [5]
    with pytest.raises(ValueError, match=r"\[6\].*0\.\.5"):
        rt.set_scheduling_params(bpu_cores={"m0": [6]})


def test_core_ids_beyond_the_host_cores_fold_onto_them(four_models, host_cores):
    # The seed's bpu_cores=[0, 1] works on a one-CPU PC; id n runs on virtual core n % cores.
    rt, paths = four_models
    host_cores(1)
    names = rt.model_names
    rt.set_scheduling_params(bpu_cores={names[0]: [0, 1], names[1]: [3]})
    x = np.ones((1, 16), np.float32)
    res = rt.run({names[0]: {"x": x}, names[1]: {"x": x}})
    single = rt.run(x, model_name=names[1])
    for n, p in zip(names[:2], paths):
        np.testing.assert_allclose(res[n]["y"], _reference(p, x), rtol=1e-5, atol=1e-5)
        assert res.timings[n]["core"] == 0
    assert single.timings[names[1]]["core"] == 0
    host_cores(2)
    seen = {rt.run(x, model_name=names[1]).timings[names[1]]["core"] for _ in range(10)}
    assert seen == {1}  # 3 % 2
    assert rt.sched_params[names[1]].bpu_cores == [3]  # what the user set, unchanged


def test_shrinking_host_cores_moves_queued_tasks_onto_remaining_cores(four_models, host_cores):
    rt, paths = four_models
    host_cores(2)
    rt.set_scheduling_params(bpu_cores={"m0": [1]})
    x = np.ones((1, 16), np.float32)
    hold0, hold1 = _hbm_ext._CoreHold(0), _hbm_ext._CoreHold(1)
    shrink = threading.Thread(target=host_cores, args=(1,))  # waits for core 1's worker
    try:
        fut = rt.run_async(x, model_name="m0")
        assert _hbm_ext._queued() == 1
        shrink.start()
        deadline = time.monotonic() + 60
        while hbm_runtime.host_cores() != 1:  # the resize is under way: queued masks folded
            assert time.monotonic() < deadline, "set_host_cores(1) did not start"
        hold1.release()  # core 1's worker ends without taking the task: it belongs to core 0 now
        shrink.join(timeout=60)
        assert not shrink.is_alive()
        assert not fut.done() and _hbm_ext._queued() == 1
    finally:
        hold0.release()
        hold1.release()
        if shrink.ident:
            shrink.join(timeout=60)
    res = fut.result(timeout=60)
    assert res.timings["m0"]["core"] == 0
    np.testing.assert_allclose(res["m0"]["y"], _reference(paths[0], x), rtol=1e-5, atol=1e-5)


def test_run_releases_the_gil_while_waiting():
    # In a subprocess so that a GIL-holding run() fails by timeout instead of hanging pytest.
    script = textwrap.dedent(
        """
        import sys, threading, numpy as np, tempfile, os
        sys.path[:0] = [%r]
        from test_scheduling import _affine_model
        import hbm_runtime
        from hbm_runtime import HB_HBMRuntime, _hbm_ext
        hbm_runtime.set_host_cores(1)
        rt = HB_HBMRuntime(_affine_model(os.path.join(tempfile.mkdtemp(), "g.onnx")))
        hold = _hbm_ext._CoreHold(0)
        done = []
        t = threading.Thread(target=lambda: done.append(rt.run(np.ones((1, 16), np.float32))))
        t.start()
        # This thread keeps running Python while run() waits for the held core.
        spins = 0
        while _hbm_ext._queued() == 0:
            spins += 1
        counted = sum(i for i in range(100000))
        assert not done, "run() finished while its core was held"
        hold.release()
        t.join()
        assert done and counted == 4999950000
        print("ok", spins)
        """ % (str(__import__("pathlib").Path(__file__).parent),))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_run_async_results_errors_and_asyncio(tmp_path):
    path = _affine_model(tmp_path / "a.onnx")
    dyn = models.dynamic_matmul(tmp_path / "dyn.onnx")
    x = np.random.default_rng(1).standard_normal((1, 16)).astype(np.float32)
    with HB_HBMRuntime([path, dyn]) as rt:
        fut = rt.run_async({"x": x}, model_name="a")
        assert isinstance(fut, concurrent.futures.Future)
        np.testing.assert_allclose(fut.result(timeout=60)["a"]["y"], _reference(path, x), rtol=1e-5, atol=1e-5)
        # An engine failure surfaces from .result(), not as a crash in a worker.
        bad = rt.run_async({"a": np.ones((2, 3), np.float32), "b": np.ones((4, 2), np.float32)}, model_name="dyn")
        with pytest.raises(HBMRuntimeError) as info:
            bad.result(timeout=60)
        assert info.value.code != 0 and "dyn" in str(info.value)
        # Caller errors are raised at once, before anything is queued.
        with pytest.raises(ValueError, match="shape"):
            rt.run_async(np.ones((2, 16), np.float32), model_name="a")

        async def main():
            return await asyncio.gather(*(asyncio.wrap_future(rt.run_async(x, model_name="a")) for _ in range(8)))

        for res in asyncio.run(main()):
            np.testing.assert_allclose(res["a"]["y"], _reference(path, x), rtol=1e-5, atol=1e-5)


def test_close_cancels_queued_work_and_rejects_new_runs(tmp_path, host_cores):
    host_cores(1)
    rt = HB_HBMRuntime(_affine_model(tmp_path / "c.onnx"))
    x = np.ones((1, 16), np.float32)
    hold = _hbm_ext._CoreHold(0)
    try:
        futures = [rt.run_async(x) for _ in range(5)]
        assert _hbm_ext._queued() == 5
        rt.close()  # nothing of this runtime is running: returns at once
        assert _hbm_ext._queued() == 0
    finally:
        hold.release()
    # Cancellation reaches the futures on a completion thread, right after close().
    concurrent.futures.wait(futures, timeout=60)
    for f in futures:
        assert f.cancelled()
        with pytest.raises(concurrent.futures.CancelledError):
            f.result()
    assert rt.closed
    with pytest.raises(RuntimeClosedError):
        rt.run(x)
    rt.close()  # idempotent


def test_runtime_dropped_with_queued_work_finishes_it(tmp_path, host_cores):
    host_cores(1)
    path = _affine_model(tmp_path / "gc.onnx", seed=3)
    x = np.random.default_rng(2).standard_normal((1, 16)).astype(np.float32)
    rt = HB_HBMRuntime(path)
    ref = weakref.ref(rt)
    hold = _hbm_ext._CoreHold(0)
    try:
        futures = [rt.run_async(x) for _ in range(4)]
        del rt
        gc.collect()
        assert ref() is not None  # queued work keeps it alive
    finally:
        hold.release()
    expected = _reference(path, x)
    for f in futures:
        np.testing.assert_allclose(f.result(timeout=60)["gc"]["y"], expected, rtol=1e-5, atol=1e-5)
    del f, futures
    gc.collect()
    assert ref() is None  # and nothing keeps it alive afterwards


def test_context_manager_closes(tmp_path):
    with HB_HBMRuntime(_affine_model(tmp_path / "cm.onnx")) as rt:
        assert not rt.closed
    assert rt.closed


def test_timings_describe_each_model(four_models, host_cores):
    rt, _ = four_models
    host_cores(2)
    x = np.ones((1, 16), np.float32)
    before = time.monotonic()
    res = rt.run({n: {"x": x} for n in rt.model_names})
    after = time.monotonic()
    assert isinstance(res, dict) and set(res.timings) == set(rt.model_names)
    for n, t in res.timings.items():
        assert set(t) == {"started_at", "queued_us", "prepare_us", "infer_us", "finish_us", "core"}
        assert t["infer_us"] > 0 and t["queued_us"] >= 0 and t["core"] in (0, 1)
        assert before <= t["started_at"] and t["started_at"] + t["infer_us"] / 1e6 <= after
    assert dict(res) == {n: res[n] for n in rt.model_names}  # plain dict behaviour is intact


def test_host_cores_api_and_env(host_cores, tmp_path):
    host_cores(3)
    assert hbm_runtime.host_cores() == 3
    with pytest.raises(ValueError):
        hbm_runtime.set_host_cores(0)
    assert hbm_runtime.host_cores() == 3
    out = subprocess.run([sys.executable, "-c", "import hbm_runtime; print(hbm_runtime.host_cores())"],
                         capture_output=True, text=True, env={**__import__("os").environ, "HBM_RUNTIME_HOST_CORES": "5"})
    assert out.stdout.strip() == "5", out.stderr


@pytest.mark.parametrize("spin_us", ["0", "20000"])
def test_spin_setting_keeps_results_and_order(tmp_path, spin_us):
    """HBM_RUNTIME_SPIN_US=0 (block at once) and a long poll both give correct multi-model
    results; with one core, queued work still starts in priority order."""
    paths = [_affine_model(tmp_path / f"p{i}.onnx", seed=i) for i in range(2)]
    script = f"""
import numpy as np, onnxruntime as ort, hbm_runtime
from hbm_runtime import HB_HBMRuntime, _hbm_ext
paths = {[str(p) for p in paths]!r}
x = np.arange(16, dtype=np.float32).reshape(1, 16) / 16
refs = [ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {{"x": x}})[0] for p in paths]
with HB_HBMRuntime(paths) as rt:
    for _ in range(50):
        res = rt.run({{n: {{"x": x}} for n in rt.model_names}})
        for n, ref in zip(rt.model_names, refs):
            np.testing.assert_allclose(res[n]["y"], ref, rtol=1e-5, atol=1e-5)
    hbm_runtime.set_host_cores(1)
    rt.set_scheduling_params(priority={{"p0": 0, "p1": 9}})
    hold = _hbm_ext._CoreHold(0)
    futs = [rt.run_async({{"p0": {{"x": x}}}}), rt.run_async({{"p1": {{"x": x}}}})]
    hold.release()
    starts = [f.result(timeout=60).timings[n]["started_at"] for f, n in zip(futs, ["p0", "p1"])]
    assert starts[1] < starts[0], starts
print("ok")
"""
    env = {**os.environ, "HBM_RUNTIME_SPIN_US": spin_us}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_stress_many_threads_many_models(tmp_path, host_cores):
    host_cores(2)
    paths = [_affine_model(tmp_path / f"s{i}.onnx", n_in=16, n_out=8, seed=10 + i) for i in range(3)]
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((1, 16)).astype(np.float32) for _ in range(6)]
    refs = {(p, i): _reference(p, x) for p in paths for i, x in enumerate(xs)}
    names = [f"s{i}" for i in range(3)]
    errors = []
    with HB_HBMRuntime(paths) as rt:
        rt.set_scheduling_params(priority={"s0": 10, "s1": 200, "s2": 0}, bpu_cores={"s0": [0], "s1": [-1], "s2": [1]})

        def worker(seed):
            r = np.random.default_rng(seed)
            for k in range(60):
                i = int(r.integers(len(xs)))
                try:
                    if k % 3 == 0:
                        res = rt.run({n: {"x": xs[i]} for n in names})
                        got = {n: res[n]["y"] for n in names}
                    elif k % 3 == 1:
                        m = int(r.integers(3))
                        got = {names[m]: rt.run(xs[i], model_name=names[m])[names[m]]["y"]}
                    else:
                        m = int(r.integers(3))
                        got = {names[m]: rt.run_async(xs[i], model_name=names[m]).result(60)[names[m]]["y"]}
                    for n, y in got.items():
                        if not np.allclose(y, refs[(paths[names.index(n)], i)], rtol=1e-5, atol=1e-5):
                            errors.append((n, i))
                except Exception as e:  # pragma: no cover - reported below
                    errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
