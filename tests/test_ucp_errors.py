"""Library failures injected into the double: each one is an HBMRuntimeError carrying the
library's code and description and naming the model; nothing leaks (tasks, sysmem, packed
handles) and the model runs correctly afterwards."""

from __future__ import annotations

import numpy as np
import pytest

from hbm_runtime import HB_HBMRuntime, HBMRuntimeError
from ucp_support import (DNN_INJECTED, DNN_INVALID_MODEL, UCP_INJECTED, UCP_OUT_OF_MEMORY,  # noqa: F401
                         UCP_TIMEOUT, assert_outputs_equal, expected_outputs, hbm_runtime_factory,
                         model_file, parse_model_file, random_inputs, settle, ucp, ucp_double, wait_until)

MULTI = parse_model_file(model_file("multi.hbm")).models
SECOND = parse_model_file(model_file("second.hbm")).models["m_second"]

# key -> (code to inject, the library's description of it, the call named in the message)
RUN_FAILURES = {
    "fail_infer": (DNN_INJECTED, "injected failure", "hbDNNInferV2"),
    "fail_submit": (UCP_INJECTED, "injected failure", "hbUCPSubmitTask"),
    "fail_wait": (UCP_INJECTED, "injected failure", "hbUCPWaitTaskDone"),
    "fail_flush": (UCP_INJECTED, "injected failure", "hbUCPMemFlush"),
    "fail_malloc": (UCP_OUT_OF_MEMORY, "out of memory", "hbUCPMallocCached"),
}


def _run(rt, how, feeds, model):
    if how == "run":
        return rt.run(feeds, model_name=model)
    if how == "run_async":
        return rt.run_async(feeds, model_name=model).result(timeout=60)
    if how == "multi":  # with a healthy second model in the same call
        return rt.run({model: feeds, "m_second": {"x": np.arange(8, dtype=np.uint8)}})
    raise AssertionError(how)


def _assert_error(err: HBMRuntimeError, code: int, description: str, call: str, model: str) -> None:
    assert isinstance(err, RuntimeError)
    assert err.code == code
    assert err.description == description
    msg = str(err)
    assert f"'{model}'" in msg, msg
    assert call in msg and str(code) in msg and description in msg, msg


@pytest.mark.parametrize("how", ["run", "run_async", "multi"])
@pytest.mark.parametrize("key", list(RUN_FAILURES))
def test_injected_run_failure(hbm_runtime_factory, ucp, key, how):
    code, description, call = RUN_FAILURES[key]
    model = MULTI["m_nv12"]
    rt = hbm_runtime_factory([model_file("multi.hbm"), model_file("second.hbm")])
    feeds = random_inputs(model, 1)
    want = expected_outputs(model, feeds)
    if key != "fail_malloc":  # malloc fails only for a new buffer set: start without any
        assert_outputs_equal(_run(rt, how, feeds, model.name)[model.name], want, "before")
    settle()
    mems = ucp.own_live_mems()
    ucp.configure(key, code)
    with pytest.raises(HBMRuntimeError) as info:
        _run(rt, how, feeds, model.name)
    _assert_error(info.value, code, description, call, model.name)
    assert any(line.startswith("error ") and str(code) in line for line in ucp.log())
    del info
    settle()
    if key == "fail_wait":
        # The task is set aside; the reaper's wait fails too, so the task and its set are
        # leaked (never freed nor reused) rather than risk the BPU writing reused memory.
        events = ucp.events()
        start = max(e.index for e in events if e.kind == "configure" and e.line == f"configure {key}={code}")
        hung = {e.int("task") for e in events[start:] if e.kind == "submit"}
        released = {e.int("task") for e in events[start:] if e.kind == "release"}
        hung -= released
        wait_until(lambda: sum(line.startswith("error hbUCPWaitTaskDone") for line in ucp.log()) >= 2 * len(hung),
                   "the reaper's wait to fail too")
        ucp.configure(key, 0)
        settle()
        ucp.leaked_tasks += len(hung)
        assert ucp.stat("live_tasks") == ucp.leaked_tasks
        assert set(ucp.own_live_mems()) >= set(mems), "sysmem of a lost task was freed"
    else:
        assert ucp.stat("live_tasks") == ucp.leaked_tasks
        assert ucp.own_live_mems() == mems  # the sets went back (or were never completed)
    ucp.configure(key, 0)
    for seed in (2, 3):
        again = random_inputs(model, seed)
        assert_outputs_equal(_run(rt, how, again, model.name)[model.name], expected_outputs(model, again), "after")
    settle()
    assert ucp.stat("live_tasks") == ucp.leaked_tasks


def test_malloc_failure_in_input_buffers(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory(model_file("multi.hbm"))
    ucp.configure("fail_malloc", UCP_OUT_OF_MEMORY)
    with pytest.raises(HBMRuntimeError) as info:
        rt.input_buffers("m_add")
    _assert_error(info.value, UCP_OUT_OF_MEMORY, "out of memory", "hbUCPMallocCached", "m_add")
    del info
    settle()
    assert ucp.own_live_mems() == {}
    ucp.configure("fail_malloc", 0)
    bufs = rt.input_buffers("m_add")
    feeds = random_inputs(MULTI["m_add"], 4)
    bufs["a"][...], bufs["b"][...] = feeds["a"], feeds["b"]
    assert_outputs_equal(rt.run(bufs, model_name="m_add")["m_add"], expected_outputs(MULTI["m_add"], feeds))


def test_wait_timeout_from_env(hbm_runtime_factory, ucp, monkeypatch):
    monkeypatch.setenv("HBM_UCP_TIMEOUT_MS", "400")
    rt = hbm_runtime_factory(model_file("second.hbm"))
    x = np.arange(8, dtype=np.uint8)
    assert_outputs_equal(rt.run(x)["m_second"], expected_outputs(SECOND, {"x": x}))
    settle()
    mems = ucp.own_live_mems()
    ucp.configure("hold", 1)  # the task stays queued: the wait runs out
    with pytest.raises(HBMRuntimeError) as info:
        rt.run(x)
    _assert_error(info.value, UCP_TIMEOUT, "wait task timeout", "hbUCPWaitTaskDone", "m_second")
    assert "HBM_UCP_TIMEOUT_MS" in str(info.value) and "400 ms" in str(info.value)
    del info
    settle()
    # The timed-out task is set aside, not released: the BPU may still run it. Once it ran,
    # the engine's reaper releases it and gives its set back.
    assert ucp.stat("live_tasks") == ucp.leaked_tasks + 1
    assert ucp.stat("tasks_cancelled") == 0
    ucp.configure("hold", 0)
    wait_until(lambda: ucp.stat("live_tasks") == ucp.leaked_tasks, "the reaper to release the task")
    assert [e.f["state"] for e in ucp.events("release")][-1] == "done"
    settle()
    assert ucp.own_live_mems() == mems
    y = np.arange(8, dtype=np.uint8) * 3
    assert_outputs_equal(rt.run(y)["m_second"], expected_outputs(SECOND, {"x": y}))
    assert_outputs_equal(rt.run_async(x).result(timeout=60)["m_second"], expected_outputs(SECOND, {"x": x}))


def test_bad_timeout_env_is_a_value_error(ucp, monkeypatch):
    monkeypatch.setenv("HBM_UCP_TIMEOUT_MS", "soon")
    with pytest.raises(ValueError, match="HBM_UCP_TIMEOUT_MS"):
        HB_HBMRuntime(model_file("second.hbm"))
    assert ucp.own_live_packed() == 0


@pytest.mark.parametrize("files", [["second.hbm"], ["multi.hbm", "second.hbm"]])
def test_injected_init_failure_leaves_nothing_loaded(ucp, files):
    paths = [model_file(f) for f in files]
    live_packed = ucp.stat("live_packed")
    ucp.configure("fail_init", DNN_INJECTED)
    with pytest.raises(HBMRuntimeError) as info:
        HB_HBMRuntime(paths)
    err = info.value
    assert err.code == DNN_INJECTED and err.description == "injected failure"
    assert "hbDNNInitializeFromFiles" in str(err) and paths[0] in str(err)
    del info, err
    settle()
    assert ucp.stat("live_packed") == live_packed and ucp.own_live_packed() == 0
    assert ucp.own_live_mems() == {}
    ucp.configure("fail_init", 0)
    rt = HB_HBMRuntime(paths)
    x = np.arange(8, dtype=np.uint8)
    assert_outputs_equal(rt.run(x, model_name="m_second")["m_second"], expected_outputs(SECOND, {"x": x}))
    rt.close()
    del rt
    settle()
    assert ucp.stat("live_packed") == live_packed


@pytest.mark.parametrize("files, error, match", [
    (["invalid.hbm"], HBMRuntimeError, "invalid.hbm"),
    # A failed packed load is retried file by file, so the message names the file at fault
    # alone, and the files that share a model name.
    (["second.hbm", "invalid.hbm"], HBMRuntimeError, r"^loading '[^']*/invalid\.hbm'"),
    (["multi.hbm", "dup_name.hbm"], ValueError, r"model name 'm_add' appears in both '[^']*/multi\.hbm' and '[^']*/dup_name\.hbm'"),
])
def test_bad_model_files_leave_nothing_loaded(ucp, files, error, match):
    live_packed = ucp.stat("live_packed")
    with pytest.raises(error, match=match) as info:
        HB_HBMRuntime([model_file(f) for f in files])
    if error is HBMRuntimeError:
        assert info.value.code == DNN_INVALID_MODEL and info.value.description == "invalid model"
    del info
    settle()
    assert ucp.stat("live_packed") == live_packed and ucp.own_live_packed() == 0


def test_failing_onnx_file_releases_the_hbm_models_of_the_same_load(ucp, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not an onnx model")
    live_packed = ucp.stat("live_packed")
    with pytest.raises(Exception):
        HB_HBMRuntime([model_file("second.hbm"), str(bad)])
    settle()
    assert ucp.stat("live_packed") == live_packed and ucp.own_live_packed() == 0
    assert ucp.own_live_mems() == {}


def test_several_files_load_once_packed(ucp):
    # One hbDNNInitializeFromFiles call for all files, as the vendor's package makes: loading
    # each file alone first would double the load time and memory on a board.
    files = [model_file("multi.hbm"), model_file("second.hbm")]
    rt = HB_HBMRuntime(files)
    inits = ucp.events("init")
    assert [(e.int("files"), e.int("models")) for e in inits] == [(2, len(MULTI) + 1)]
    assert rt.model_names == [*MULTI, "m_second"]
    assert rt.hbm_descs == {files[0]: "multi-model test file\nsecond line", files[1]: "second test file"}
    x = np.arange(8, dtype=np.uint8)
    assert_outputs_equal(rt.run(x, model_name="m_second")["m_second"], expected_outputs(SECOND, {"x": x}))
    rt.close()


def test_hbm_files_listed_around_an_onnx_file_keep_the_given_model_order(ucp, tmp_path):
    import models
    onnx_path = models.single(tmp_path / "host_model.onnx")
    files = [onnx_path, model_file("second.hbm"), model_file("multi.hbm")]
    rt = HB_HBMRuntime(files)
    assert rt.model_names == ["host_model", "m_second", *MULTI]
    assert [e.int("files") for e in ucp.events("init")] == [2]
    assert list(rt.hbm_descs) == models.vendor_order(files)
    rt.close()
