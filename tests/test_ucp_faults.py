"""The BPU engine against a hostile library (tests/ucp_double fault modes): a task that
outlives its timeout or its release, dirty cache lines evicted over BPU results, buffer
sets that pile up, absurd strides/dims, a grown properties struct, versioned symbols."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from hbm_runtime import EngineUnavailableError, HB_HBMRuntime, HBMRuntimeError
from ucp_support import (UCP_TIMEOUT, assert_outputs_equal, build_double, expected_outputs,  # noqa: F401
                         hbm_runtime_factory, model_file, parse_model_file, python_env, random_inputs,
                         run_python, settle, ucp, ucp_double, wait_until)

SECOND = parse_model_file(model_file("second.hbm")).models["m_second"]
SQUARE = parse_model_file(model_file("square_nv12.hbm")).models["m_square"]


def _hang_one_task(rt, ucp, monkeypatch_env=None):
    """Runs m_second once so that its task stays running past the wait's timeout; returns
    the log's infer event of that task and the ids of its sysmem."""
    ucp.configure("release_returns_early", 1)  # as hardware may: release does not stop it
    ucp.configure("stall", 1)  # the next task to start keeps running until stall=0
    with pytest.raises(HBMRuntimeError) as info:
        rt.run(np.arange(8, dtype=np.uint8))
    assert info.value.code == UCP_TIMEOUT and "HBM_UCP_TIMEOUT_MS" in str(info.value)
    del info
    settle()
    hung = ucp.events("infer")[-1]
    return hung, set(hung.ids("inputs") + hung.ids("outputs"))


def _index(ucp, kind, **fields):
    for e in ucp.events(kind):
        if all(e.f.get(k) == str(v) for k, v in fields.items()):
            return e.index
    return None


def test_timed_out_task_keeps_its_buffers_until_it_is_done(hbm_runtime_factory, ucp, monkeypatch):
    monkeypatch.setenv("HBM_UCP_TIMEOUT_MS", "50")
    rt = hbm_runtime_factory(model_file("second.hbm"))
    hung, busy = _hang_one_task(rt, ucp)
    task = hung.int("task")
    assert _index(ucp, "done", task=task) is None  # still running
    # The next runs must not get the memory the running task may still write.
    for seed in (1, 2):
        x = np.arange(8, dtype=np.uint8) * seed + 5
        assert_outputs_equal(rt.run(x)["m_second"], expected_outputs(SECOND, {"x": x}), f"seed {seed}")
    settle()
    later = ucp.events("infer")[-2:]
    for e in later:
        assert not busy & set(e.ids("inputs") + e.ids("outputs")), (busy, e.line)
    freed = {e.int("mem") for e in ucp.events("free")}
    assert not busy & freed
    ucp.configure("stall", 0)
    wait_until(lambda: ucp.stat("live_tasks") == ucp.leaked_tasks, "the reaper to release the hung task")
    done = _index(ucp, "done", task=task)
    assert done is not None
    for e in ucp.events():  # nothing of it was released or freed before it was done
        if (e.kind == "release" and e.int("task") == task) or (e.kind == "free" and e.int("mem") in busy):
            assert e.index > done, e.line
    # Its set went back to the pool: the model still runs, with no new allocation.
    mallocs = ucp.stat("mallocs")
    x = np.arange(8, dtype=np.uint8)
    assert_outputs_equal(rt.run(x)["m_second"], expected_outputs(SECOND, {"x": x}), "after")
    assert ucp.stat("mallocs") == mallocs


def test_close_with_a_hung_task_frees_nothing_before_it_is_done(ucp, monkeypatch):
    monkeypatch.setenv("HBM_UCP_TIMEOUT_MS", "50")
    rt = HB_HBMRuntime(model_file("second.hbm"))
    hung, busy = _hang_one_task(rt, ucp)
    task = hung.int("task")
    rt.close()
    del rt
    settle()
    assert _index(ucp, "done", task=task) is None
    assert not busy & {e.int("mem") for e in ucp.events("free")}, "sysmem of a running task freed"
    assert not ucp.events("release_packed"), "model released under a running task"
    ucp.configure("stall", 0)
    wait_until(lambda: ucp.own_live_mems() == {} and ucp.own_live_packed() == 0,
               "the reaper to free the hung task's memory and model", detail=lambda: str(ucp.log()[-5:]))
    done = _index(ucp, "done", task=task)
    assert done is not None
    for e in ucp.events():
        if e.kind in ("free", "release_packed") or (e.kind == "release" and e.int("task") == task):
            assert e.index > done, e.line


def test_dropped_result_written_in_place_is_not_evicted_over_the_next_run(hbm_runtime_factory, ucp):
    ucp.configure("evict_dirty", 1)
    rt = hbm_runtime_factory(model_file("square_nv12.hbm"))
    first = random_inputs(SQUARE, 1)
    out = rt.run(first)["m_square"]
    for a in out.values():
        assert a.flags.writeable  # vendor code may modify outputs in place
        a[...] = 99
    del out, a
    settle()
    second = random_inputs(SQUARE, 2)
    res = rt.run(second)["m_square"]
    infers = ucp.events("infer")
    assert infers[0].ids("outputs") == infers[1].ids("outputs")  # the same set, reused
    assert_outputs_equal(res, expected_outputs(SQUARE, second), "run on a reused set")


def _sets_of(ucp, per_set):
    return len(ucp.own_live_mems()) / per_set


def test_held_async_results_keep_at_most_the_pool_cap(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory(model_file("square_nv12.hbm"))  # 2 inputs + 2 outputs per set
    ucp.configure("hold", 1)  # every call is in flight at once
    feeds = [random_inputs(SQUARE, i) for i in range(64)]
    futures = [rt.run_async(f) for f in feeds]
    wait_until(lambda: ucp.stat("tasks_submitted") == 64, "64 submitted tasks",
               detail=lambda: str(ucp.stat("tasks_submitted")))
    ucp.configure("hold", 0)
    results = [f.result(timeout=60)["m_square"] for f in futures]
    settle()
    assert _sets_of(ucp, 4) <= 4, f"{len(ucp.own_live_mems())} sysmem buffers live while 64 results are held"
    for i, r in enumerate(results):
        assert_outputs_equal(r, expected_outputs(SQUARE, feeds[i]), f"call {i}")
    del results, futures, r
    settle()
    assert _sets_of(ucp, 4) <= 4


def test_input_buffers_beyond_the_cap_are_temporary(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory(model_file("square_nv12.hbm"))
    held = [rt.input_buffers() for _ in range(6)]
    assert len({h["y"].ctypes.data for h in held}) == 6
    for i, h in enumerate(held):  # all usable without a copy
        f = random_inputs(SQUARE, 10 + i)
        h["y"][...], h["uv"][...] = f["y"], f["uv"]
        assert_outputs_equal(rt.run(h)["m_square"], expected_outputs(SQUARE, f), f"held set {i}")
    del held, h
    settle()
    assert _sets_of(ucp, 4) <= 4


def test_pool_sets_env(hbm_runtime_factory, ucp, monkeypatch):
    monkeypatch.setenv("HBM_UCP_POOL_SETS", "many")
    with pytest.raises(ValueError, match="HBM_UCP_POOL_SETS"):
        HB_HBMRuntime(model_file("second.hbm"))
    monkeypatch.setenv("HBM_UCP_POOL_SETS", "1")
    rt = hbm_runtime_factory(model_file("second.hbm"))
    x = np.arange(8, dtype=np.uint8)
    outs = [rt.run(x * i)["m_second"] for i in range(3)]
    settle()
    assert len(ucp.own_live_mems()) == 2  # one pooled set (1 in + 1 out), the others copied out
    for i, o in enumerate(outs):
        assert_outputs_equal(o, expected_outputs(SECOND, {"x": x * i}), f"run {i}")


# ---- absurd properties from the library ---------------------------------------------------------

ABSURD = {
    "negative-stride": ("output", "y U8 shape=2,8 strides=-16,1 aligned=64", "-16"),
    "zero-stride": ("output", "y U8 shape=2,8 strides=0,1 aligned=64", "0"),
    "overlapping": ("output", "y U8 shape=2,8 strides=4,1 aligned=64", "[4, 1]"),
    "inner-below-item": ("output", "y F32 shape=8 strides=2 aligned=64", "[2]"),
    "overflowing": ("output", "y U8 shape=2147483647,2147483647,4 strides=4611686018427387904,2147483648,1 aligned=4096",
                    "4611686018427387904"),
    "huge": ("output", "y U8 shape=2000000,1000000 strides=1000000,1", "2000000"),
    "beyond-aligned": ("output", "y U8 shape=4,64 strides=64,1 aligned=128", "128"),
    "negative-dim": ("input", "x U8 shape=-5,8 strides=8,1", "-5"),
    "zero-dim": ("input", "x U8 shape=0,8 strides=8,1", "[0, 8]"),
    "input-overlap": ("input", "x U8 shape=4,8 strides=2,1", "[2, 1]"),
}


@pytest.mark.parametrize("case", list(ABSURD))
def test_absurd_strides_and_dims_fail_the_load_clearly(ucp, tmp_path, case):
    kind, decl, value = ABSURD[case]
    other = "output y U8 shape=8" if kind == "input" else "input x U8 shape=8"
    path = tmp_path / "absurd.hbm"
    path.write_text(textwrap.dedent(f"""\
        HBM-TEST-DOUBLE 1
        model m_absurd
        {kind} {decl}
        {other}
        """))
    with pytest.raises((ValueError, HBMRuntimeError)) as info:
        HB_HBMRuntime(str(path))
    msg = str(info.value)
    name = decl.split()[0]
    assert "m_absurd" in msg and f"'{name}'" in msg and value in msg, msg
    settle()
    assert ucp.own_live_packed() == 0 and ucp.own_live_mems() == {}


def test_grown_properties_struct_is_unavailable(ucp):
    ucp.configure("grow_props", 8)
    with pytest.raises(EngineUnavailableError, match="past"):
        HB_HBMRuntime(model_file("second.hbm"))
    settle()
    assert ucp.own_live_packed() == 0


def test_symbols_are_bound_with_version_config(ucp_double):
    build = build_double(10)
    proc = run_python(textwrap.dedent(f"""
        import numpy as np
        from hbm_runtime import HB_HBMRuntime
        rt = HB_HBMRuntime({model_file("second.hbm")!r})
        print(rt.engine_versions["ucp"])
        print(rt.run(np.arange(8, dtype=np.uint8))["m_second"]["y"].tolist())
        """), python_env(build.versioned_dir))
    version, values = proc.stdout.strip().splitlines()[-2:]
    assert "WRONG" not in version and "3.13.6" in version, version
    assert values == str(list(range(1, 9)))


def test_one_reaper_thread_for_all_hung_tasks(hbm_runtime_factory, ucp, monkeypatch):
    import os
    monkeypatch.setenv("HBM_UCP_TIMEOUT_MS", "50")
    rt = hbm_runtime_factory(model_file("second.hbm"))
    x = np.arange(8, dtype=np.uint8)
    rt.run(x)  # the double's cores and the runtime's own threads exist from here on
    threads = lambda: len(os.listdir("/proc/self/task"))  # noqa: E731
    before = threads()
    ucp.configure("stall", 3)
    counts = []
    for _ in range(3):
        with pytest.raises(HBMRuntimeError):
            rt.run(x)
        counts.append(threads())
    assert counts[0] <= before + 1 and counts[2] == counts[0], (before, counts)
    ucp.configure("stall", 0)
    wait_until(lambda: ucp.stat("live_tasks") == ucp.leaked_tasks, "the reaper to release 3 tasks")
    assert [e.f["state"] for e in ucp.events("release")][-3:] == ["done"] * 3
