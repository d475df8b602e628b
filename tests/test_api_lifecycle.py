"""Async runs, cancellation, close(), Ctrl-C and fork() on the host engine.

Ordering is made deterministic by holding a virtual core busy (``_hbm_ext._CoreHold``) so that
work queues; nothing here sleeps to wait for a thread.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import hbm_runtime
from hbm_runtime import HB_HBMRuntime, RuntimeClosedError
from hbm_runtime import _hbm_ext

import models
from ucp_support import python_env


def _affine(path, seed=0, n=16):
    rng = np.random.default_rng(seed)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def _slow(path, n=768, layers=12):
    """A MatMul chain that takes a noticeable time on one thread (tens to hundreds of ms)."""
    rng = np.random.default_rng(1)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]))
        prev = f"h{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def _os_threads() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads line in /proc/self/status")


def _wait_for(predicate, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


@pytest.fixture
def one_core():
    before = hbm_runtime.host_cores()
    hbm_runtime.set_host_cores(1)
    yield
    hbm_runtime.set_host_cores(before)


def test_async_completions_use_a_fixed_set_of_threads(tmp_path):
    # Each round of completions that queued up used to start new threads that never ended:
    # 3 rounds of 5000 calls grew the process from 4 to 490 threads.
    with HB_HBMRuntime(_affine(tmp_path / "a.onnx")) as rt:
        x = np.ones((1, 16), np.float32)
        concurrent.futures.wait([rt.run_async(x) for _ in range(200)], timeout=120)
        baseline = _os_threads()
        for _ in range(3):
            futures = [rt.run_async(x) for _ in range(3000)]
            done, _ = concurrent.futures.wait(futures, timeout=300)
            assert len(done) == len(futures)
            assert all(f.exception() is None for f in futures)
        assert _os_threads() <= baseline + 2, (baseline, _os_threads())
        workers, completions, device_waits = _hbm_ext._pool_threads()
        assert completions <= 2 and device_waits <= 8


def test_cancel_takes_queued_work_out_of_the_queue(tmp_path, one_core):
    path = _affine(tmp_path / "c.onnx")
    x = np.ones((1, 16), np.float32)
    unraisable = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(u)
    try:
        with HB_HBMRuntime(path) as rt:
            hold = _hbm_ext._CoreHold(0)
            try:
                kept = rt.run_async(x)
                dropped = [rt.run_async(x) for _ in range(3)]
                assert _hbm_ext._queued() == 4
                assert not dropped[0].running()
                assert all(f.cancel() for f in dropped)
                assert _hbm_ext._queued() == 1  # only `kept` is still queued
                assert all(f.cancelled() for f in dropped)
                assert dropped[0].cancel()  # cancelling again still says True
            finally:
                hold.release()
            done, not_done = concurrent.futures.wait(dropped + [kept], timeout=60)
            assert not not_done  # cancelled futures count as done for wait()
            np.testing.assert_allclose(kept.result()["c"]["y"], models.ort_reference(path, {"x": x})["y"],
                                       rtol=1e-5, atol=1e-5)
            for f in dropped:
                with pytest.raises(concurrent.futures.CancelledError):
                    f.result()
            assert not kept.cancel()  # finished: too late
    finally:
        sys.unraisablehook = old_hook
    assert not unraisable, [str(u.exc_value) for u in unraisable]


def test_cancel_fails_once_work_started_and_the_result_arrives(tmp_path, one_core):
    x = np.ones((1, 16), np.float32)
    with HB_HBMRuntime(_affine(tmp_path / "s.onnx")) as rt:
        hold = _hbm_ext._CoreHold(0)
        fut = rt.run_async(x)
        assert not fut.running()
        hold.release()
        _wait_for(lambda: fut.done() or fut.running(), "the task to start")
        assert not fut.cancel()
        assert fut.result(timeout=60)["s"]["y"].shape == (1, 16)
        assert not fut.cancelled()


def test_close_waits_for_a_run_on_the_calling_thread(tmp_path):
    # The latency path (a single-model run() with nothing queued runs on the calling thread)
    # never entered the in-flight count, so close() returned while it was still running.
    rt = HB_HBMRuntime(_slow(tmp_path / "slow.onnx"))
    x = np.ones((768, 768), np.float32)
    rt.run(x)  # compile and warm up
    result = {}

    def worker():
        result["out"] = rt.run(x)

    t = threading.Thread(target=worker)
    t.start()
    _wait_for(lambda: rt._in_flight() == 1, "the run to start")
    rt.close()
    closed_at = time.monotonic()
    t.join(60)
    timing = result["out"].timings["slow"]
    assert timing["core"] >= 0  # it did run on the calling thread
    assert timing["started_at"] + timing["infer_us"] / 1e6 <= closed_at
    assert rt._in_flight() == 0


@pytest.mark.parametrize("index", [1, 99, 2**40])
def test_private_accessors_check_the_model_index(tmp_path, index):
    with HB_HBMRuntime(_affine(tmp_path / "p.onnx")) as rt:
        for call in (lambda: rt._sched(index), lambda: rt._tensor_infos(index, False),
                     lambda: rt._model_desc(index), lambda: rt._set_sched([(index, 1, 0, [-1], 0)])):
            with pytest.raises(ValueError, match=f"model index {index} is out of range: 1 model"):
                call()
        assert rt.sched_params["p"].priority == 0


class _Interrupt(Exception):
    pass


@pytest.fixture
def sigint_raises():
    """SIGINT raises _Interrupt in the main thread for the test (pytest's own handler would
    end the session); send_sigint_when(pred) sends it from a helper thread once pred holds."""
    old = signal.signal(signal.SIGINT, lambda *a: (_ for _ in ()).throw(_Interrupt()))
    threads = []

    def send_when(predicate):
        def go():
            _wait_for(predicate, "the condition to send SIGINT on")
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        t = threading.Thread(target=go, daemon=True)
        t.start()
        threads.append(t)

    yield send_when
    for t in threads:
        t.join(60)
    signal.signal(signal.SIGINT, old)


def test_ctrl_c_stops_a_run_waiting_in_the_queue(tmp_path, one_core, sigint_raises):
    # Ctrl-C during a run() queued behind other work was seen only when the run returned.
    paths = [_affine(tmp_path / f"q{i}.onnx", seed=i) for i in range(2)]
    x = np.ones((1, 16), np.float32)
    with HB_HBMRuntime(paths) as rt:
        hold = _hbm_ext._CoreHold(0)
        try:
            sigint_raises(lambda: _hbm_ext._queued() == 2)
            with pytest.raises(_Interrupt):
                rt.run({"q0": {"x": x}, "q1": {"x": x}})  # both models queue behind the hold
            assert _hbm_ext._queued() == 0  # the interrupted run's queued work was cancelled
            assert rt._in_flight() == 0
        finally:
            hold.release()
        out = rt.run({"q0": {"x": x}, "q1": {"x": x}})  # still usable
        assert set(out) == {"q0", "q1"}


def test_ctrl_c_keeps_running_work_alive_until_it_finishes(tmp_path, sigint_raises):
    # Work already running when Ctrl-C arrives finishes in the background; its inputs stay
    # alive until then, and close() waits for it.
    before = hbm_runtime.host_cores()
    hbm_runtime.set_host_cores(2)
    try:
        rt = HB_HBMRuntime([_slow(tmp_path / "slow.onnx", layers=40), _affine(tmp_path / "fast.onnx")])
        slow_x, fast_x = np.ones((768, 768), np.float32), np.ones((1, 16), np.float32)
        rt.run({"slow": {"x": slow_x}, "fast": {"x": fast_x}})
        rt.set_scheduling_params(bpu_cores={"slow": [1], "fast": [0]})
        hold = _hbm_ext._CoreHold(0)
        try:
            # A queued call keeps the calling thread from running a model itself.
            pending = rt.run_async(fast_x, model_name="fast")
            sigint_raises(lambda: _hbm_ext._queued() == 2 and rt._in_flight() == 2)
            with pytest.raises(_Interrupt):
                rt.run({"slow": {"x": slow_x}, "fast": {"x": fast_x}})
            alive = weakref.ref(slow_x)
            del slow_x
            assert alive() is not None  # the slow inference still reads it
            assert _hbm_ext._queued() == 1  # the interrupted call's queued part is gone
        finally:
            hold.release()
        assert pending.result(timeout=60)["fast"]["y"].shape == (1, 16)
        rt.close()  # waits for the slow inference
        assert rt._in_flight() == 0
        _wait_for(lambda: alive() is None, "the interrupted call to release its inputs")
    finally:
        hbm_runtime.set_host_cores(before)


_FORK_CHILD = textwrap.dedent("""
    import multiprocessing, os, sys
    import numpy as np
    from hbm_runtime import HB_HBMRuntime

    def use_parents(rt, paths, q):
        x = np.ones((1, 16), np.float32)
        errors = []
        for call in () if rt is None else (lambda: rt.run(x, model_name="m0"),
                     lambda: rt.run({"m0": {"x": x}, "m1": {"x": x}}),
                     lambda: rt.run_async(x, model_name="m0").result(timeout=30)):
            try:
                call()
                errors.append(None)
            except RuntimeError as e:
                errors.append(str(e))
        fresh = HB_HBMRuntime(paths)
        out = fresh.run({"m0": {"x": x}, "m1": {"x": x}})
        fut = fresh.run_async(x, model_name="m1").result(timeout=30)
        fresh.close()
        if rt is not None:
            rt.close()
        q.put((errors, sorted(out), sorted(fut)))

    if __name__ == "__main__":
        method, paths = sys.argv[1], sys.argv[2:]
        ctx = multiprocessing.get_context(method)
        rt = HB_HBMRuntime(paths)
        x = np.ones((1, 16), np.float32)
        rt.run({"m0": {"x": x}, "m1": {"x": x}})       # workers running in the parent
        rt.run_async(x, model_name="m0").result(30)    # completion threads too
        q = ctx.Queue()
        if method == "fork":
            p = ctx.Process(target=use_parents, args=(rt, paths, q))
        else:
            p = ctx.Process(target=use_parents, args=(None, paths, q))
        p.start()
        print(repr(q.get(timeout=120)))
        p.join(60)
        print("exit", p.exitcode)
        print("parent", sorted(rt.run({"m0": {"x": x}, "m1": {"x": x}})))
""")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_runtime_after_fork_raises_at_once_and_new_ones_work(tmp_path, method):
    # A runtime loaded in the parent and used in a fork()ed child hung forever on a
    # multi-model run() or a run_async(): its worker threads do not exist in the child.
    paths = [_affine(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    script = tmp_path / "child.py"
    script.write_text(_FORK_CHILD)
    proc = subprocess.run([sys.executable, str(script), method, *paths], env=python_env(),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    errors, fresh_models, async_models = eval(lines[0])
    assert lines[1] == "exit 0"
    assert lines[2] == "parent ['m0', 'm1']"
    assert fresh_models == ["m0", "m1"] and async_models == ["m1"]
    if method == "fork":
        assert len(errors) == 3
        assert all(e is not None and "created in process" in e and "before the fork()" in e
                   for e in errors), errors
    else:
        assert errors == []  # a spawned child has no runtime of the parent's


def test_thread_creation_failure_becomes_an_error_not_an_abort(tmp_path):
    # With a memory limit, starting a thread failed inside a task that must not throw and the
    # process aborted (std::terminate); a blocking run whose submit failed waited forever.
    paths = [_affine(tmp_path / f"t{i}.onnx", seed=i) for i in range(3)]
    code = textwrap.dedent(f"""
        import resource, sys
        import numpy as np
        import hbm_runtime
        from hbm_runtime import HB_HBMRuntime
        paths = {paths!r}
        rt = HB_HBMRuntime(paths)
        x = np.ones((1, 16), np.float32)
        feeds = {{n: {{"x": x}} for n in rt.model_names}}
        hbm_runtime._hbm_ext._shutdown()   # no worker or completion thread exists now
        hbm_runtime.set_host_cores(16)  # more workers than glibc keeps cached stacks for
        with open("/proc/self/status") as f:
            vm = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:")][0]
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (vm + (6 << 20), hard))
        outcomes = []
        for _ in range(20):
            for call in (lambda: rt.run(feeds), lambda: rt.run_async(x, model_name="t0").result(60)):
                try:
                    call()
                    outcomes.append("ok")
                except (RuntimeError, MemoryError) as e:
                    outcomes.append(type(e).__name__)
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        out = rt.run(feeds)    # usable again once memory is there
        print(sorted(set(outcomes)), sorted(out))
        sys.stdout.flush()
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=python_env(), capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "['t0', 't1', 't2']" in proc.stdout, proc.stdout


def test_bpu_engine_of_the_parent_is_refused_in_a_forked_child(tmp_path):
    # The BPU libraries hold the parent's driver state: a forked child gets a clear error at
    # once, for the parent's runtime and for a new one, instead of sharing it.
    from ucp_support import YOLO_FILE, build_double

    lib_dir = build_double(10).lib_dir
    code = textwrap.dedent(f"""
        import os, sys
        import numpy as np
        from hbm_runtime import HB_HBMRuntime, EngineUnavailableError
        rt = HB_HBMRuntime({str(YOLO_FILE)!r})
        pid = os.fork()
        if pid == 0:
            msgs = []
            try:
                rt.run({{n: np.zeros(s, np.uint8) for n, s in rt.input_shapes[rt.model_names[0]].items()}})
            except RuntimeError as e:
                msgs.append("old: " + str(e))
            try:
                HB_HBMRuntime({str(YOLO_FILE)!r})
            except EngineUnavailableError as e:
                msgs.append("new: " + str(e))
            print("\\n".join(msgs), flush=True)
            os._exit(0 if len(msgs) == 2 else 3)
        _, status = os.waitpid(pid, 0)
        rt.close()
        print("child", os.waitstatus_to_exitcode(status))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=python_env(lib_dir), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "child 0" in out, out
    assert "old: " in out and "before the fork()" in out, out
    assert "new: the ucp engine (.hbm models) was initialised in a parent process before fork()" in out, out


def test_concurrent_engine_failures_keep_their_own_messages(tmp_path):
    # OpenVINO keeps one last-error message per process: two threads failing at once could
    # each report the other's message.
    rt = HB_HBMRuntime([models.dynamic_matmul(tmp_path / "ma.onnx"), models.dynamic_matmul(tmp_path / "mb.onnx")])
    shapes = {"ma": ((2, 3), (5, 7)), "mb": ((11, 13), (17, 19))}
    mixed = []

    def fail_often(name):
        (a, b), (c, d) = shapes[name]
        feeds = {"a": np.ones((a, b), np.float32), "b": np.ones((c, d), np.float32)}
        for _ in range(300):
            with pytest.raises(hbm_runtime.HBMRuntimeError) as info:
                rt.run(feeds, model_name=name)
            detail = info.value.description
            if f"shape A: ({a}.{b}) shape B: ({c}.{d})" not in detail:  # OpenVINO 2026.4's text
                mixed.append((name, detail[-200:]))

    from threads_support import in_threads
    in_threads(2, lambda i: fail_often(["ma", "mb"][i]))
    rt.close()
    assert not mixed, mixed[:2]


@pytest.mark.parametrize("calls", ["run", "run_async", "load_and_close"])
def test_daemon_threads_inside_calls_at_interpreter_exit(tmp_path, calls):
    # Python ends a daemon thread that takes the GIL back during finalization; ended inside
    # the GIL guard's destructor, the process aborted ("terminate called without an active
    # exception"). Such threads now wait for the process to end.
    path = _affine(tmp_path / "a.onnx", n=256)
    code = textwrap.dedent(f"""
        import threading
        import numpy as np
        from hbm_runtime import HB_HBMRuntime
        path = {path!r}
        rt = HB_HBMRuntime(path)
        x = np.ones((1, 256), np.float32)
        started = threading.Barrier(4)

        def loop(i):
            started.wait()
            while True:
                if {calls!r} == "run":
                    rt.run(x)
                elif {calls!r} == "run_async":
                    futures = [rt.run_async(x) for _ in range(8)]
                    futures[-1].result()
                else:
                    HB_HBMRuntime(path).close()

        for i in range(3):
            threading.Thread(target=loop, args=(i,), daemon=True).start()
        started.wait()
        for _ in range(20):
            rt.run(x)
        print("main done", flush=True)
    """)
    for attempt in range(3):
        proc = subprocess.run([sys.executable, "-c", code], env=python_env(), capture_output=True,
                              text=True, timeout=240)
        assert proc.returncode == 0 and "main done" in proc.stdout, (attempt, proc.returncode, proc.stderr[-3000:])
        assert "terminate" not in proc.stderr, proc.stderr[-3000:]
