"""Several Python threads (and run_async) running .hbm models of one runtime at once on the
emulated BPU: every output correct, nothing left behind afterwards."""

from __future__ import annotations

import concurrent.futures
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from hbm_runtime import HB_HBMRuntime
from threads_support import in_threads
from ucp_support import (assert_outputs_equal, expected_outputs, hbm_runtime_factory,  # noqa: F401
                         model_file, parse_model_file, random_inputs, settle, ucp, ucp_double)

MULTI = parse_model_file(model_file("multi.hbm")).models
SECOND = parse_model_file(model_file("second.hbm")).models["m_second"]
SQUARE = parse_model_file(model_file("square_nv12.hbm")).models["m_square"]
MODELS = {"m_add": MULTI["m_add"], "m_nv12": MULTI["m_nv12"], "m_rows": MULTI["m_rows"],
          "m_types": MULTI["m_types"], "m_second": SECOND, "m_square": SQUARE}
FILES = [model_file("multi.hbm"), model_file("second.hbm"), model_file("square_nv12.hbm")]


def _assert_released(ucp, base):
    """No task, sysmem or packed handle of ours is left, nor more of anything than at `base`."""
    settle()
    assert ucp.stat("live_tasks") == ucp.leaked_tasks
    assert ucp.own_live_mems() == {} and ucp.own_live_packed() == 0
    # Globally too (earlier tests' leftovers may only have been freed meanwhile).
    live = ucp.live()
    assert all(live[k] <= base[k] for k in live), (live, base)


def _job(t: int, i: int):
    """(run argument, model_name kwarg, {model: feeds}) of call i of thread t."""
    names = list(MODELS)
    seed = 1000 * t + i
    kind = (t + i) % 3
    if kind == 0:  # one model, dict of inputs
        name = names[(t + 2 * i) % len(names)]
        feeds = random_inputs(MODELS[name], seed)
        return feeds, name, {name: feeds}
    if kind == 1:  # several models in one call
        picked = [names[(t + i + k) % len(names)] for k in range(3)]
        feeds = {n: random_inputs(MODELS[n], seed + k) for k, n in enumerate(picked)}
        return feeds, None, feeds
    feeds = random_inputs(SECOND, seed)  # one array
    return feeds["x"], "m_second", {"m_second": feeds}


def _check(result, expect, what):
    assert sorted(result) == sorted(expect), what
    for name, feeds in expect.items():
        assert_outputs_equal(result[name], expected_outputs(MODELS[name], feeds), f"{what} {name}")


@pytest.mark.parametrize("n_threads", [2, 8])
def test_threads_share_one_runtime(ucp, n_threads):
    ucp.configure("latency_us", 200)  # tasks overlap on the 4 emulated cores
    settle()
    base = ucp.live()
    rt = HB_HBMRuntime(FILES)
    iters = 12

    def work(t):
        out = []
        for i in range(iters):
            arg, name, expect = _job(t, i)
            result = rt.run(arg, model_name=name) if name else rt.run(arg)
            _check(result, expect, f"thread {t} call {i}")
            out.append(result)
        return out

    results = in_threads(n_threads, work)
    assert ucp.stat("tasks_run") >= n_threads * iters
    cores = {e.int("core") for e in ucp.events("start")}
    assert len(cores) > 1, "tasks never ran side by side"
    # Every kept output is still intact once all threads are done.
    for t in range(n_threads):
        for i in range(iters):
            _check(results[t][i], _job(t, i)[2], f"kept: thread {t} call {i}")
    del results
    rt.close()
    del rt
    _assert_released(ucp, base)


def test_run_async_from_several_threads(ucp):
    ucp.configure("latency_us", 100)
    settle()
    base = ucp.live()
    rt = HB_HBMRuntime(FILES)
    n_threads, iters = 4, 10

    def work(t):
        futures = []
        for i in range(iters):
            arg, name, expect = _job(t, i)
            futures.append((rt.run_async(arg, model_name=name), expect, f"thread {t} call {i}"))
        return futures

    all_futures = [f for row in in_threads(n_threads, work) for f in row]
    done, not_done = concurrent.futures.wait([f for f, _, _ in all_futures], timeout=120)
    assert not not_done
    for fut, expect, what in all_futures:
        _check(fut.result(), expect, what)
    del all_futures, done, fut
    rt.close()
    del rt
    _assert_released(ucp, base)


def test_many_runs_of_one_model_in_flight(hbm_runtime_factory, ucp):
    """The same model in many concurrent calls: each gets its own buffer set."""
    ucp.configure("latency_us", 300)
    rt = hbm_runtime_factory(model_file("square_nv12.hbm"))
    feeds = [random_inputs(SQUARE, s) for s in range(16)]
    futures = [rt.run_async(f) for f in feeds]
    with ThreadPoolExecutor(4) as pool:
        blocking = list(pool.map(lambda f: rt.run(f), feeds))
    for f, fut, res in zip(feeds, futures, blocking):
        want = expected_outputs(SQUARE, f)
        assert_outputs_equal(fut.result(timeout=60)["m_square"], want, "async")
        assert_outputs_equal(res["m_square"], want, "threads")
    infers = ucp.events("infer")
    assert len(infers) == 32
    del futures, blocking, fut, res
    settle()
    assert ucp.stat("live_tasks") == ucp.leaked_tasks
