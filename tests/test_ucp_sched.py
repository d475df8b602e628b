"""Scheduling parameters of .hbm models as the double's hbUCPSubmitTask sees them: priority,
customId, deviceId and backend core bits, ordering on the emulated BPU cores, and
multi-model runs submitting every task before waiting on any."""

from __future__ import annotations

import concurrent.futures
import threading

import numpy as np
import pytest

import hbm_runtime
from hbm_runtime import HBMRuntimeError, SchedParam
from ucp_support import (UCP_INVALID_ARGUMENT, assert_outputs_equal, expected_outputs,  # noqa: F401
                         hbm_runtime_factory, model_file, more_host_cores, parse_model_file,
                         random_inputs, ucp, ucp_double, wait_until)

MULTI = parse_model_file(model_file("multi.hbm")).models
SECOND = parse_model_file(model_file("second.hbm")).models["m_second"]


def _x(v: int) -> np.ndarray:
    return (np.arange(8, dtype=np.uint8) + np.uint8(v))


@pytest.fixture
def second_rt(hbm_runtime_factory):
    return hbm_runtime_factory(model_file("second.hbm"))


def _check_second(result, v: int) -> None:
    assert_outputs_equal(result["m_second"], expected_outputs(SECOND, {"x": _x(v)}), f"input {v}")


@pytest.mark.parametrize("cores, backend", [
    (None, 0x80), ([-1], 0x80), ([], 0x80), ([0], 0x1), ([1], 0x2), ([3], 0x8), ([0, 1], 0x3), ([2, 3], 0xC),
    ((1, 2), 0x6), ([0, 1, 2, 3], 0xF), (2, 0x4),
])
def test_bpu_cores_become_backend_bits(second_rt, ucp, cores, backend):
    if cores is not None:
        second_rt.set_scheduling_params(bpu_cores={"m_second": cores})
    _check_second(second_rt.run(_x(3)), 3)
    (submit,) = ucp.events("submit")
    assert submit.int("backend") == backend
    (start,) = ucp.events("start")
    assert start.int("task") == submit.int("task")
    assert backend & 0x80 or backend & (1 << start.int("core")), "ran on a core outside the mask"


def test_priority_custom_id_and_device_reach_the_sched_param(second_rt, ucp):
    big_id = 2**40 + 12345  # customId is 64-bit
    second_rt.set_scheduling_params(priority={"m_second": 200}, custom_id={"m_second": big_id},
                                    device_id={"m_second": 0}, bpu_cores={"m_second": [1]})
    assert second_rt.sched_params["m_second"] == SchedParam(priority=200, customId=big_id, bpu_cores=[1], deviceId=0)
    _check_second(second_rt.run(_x(1)), 1)
    second_rt.set_scheduling_params(priority=255, custom_id=0)  # one value for every model
    _check_second(second_rt.run(_x(2)), 2)
    fut = second_rt.run_async(_x(4))  # async runs carry the same parameters
    _check_second(fut.result(timeout=60), 4)
    got = [(s.int("priority"), s.int("custom_id"), s.int("backend"), s.int("device")) for s in ucp.events("submit")]
    assert got == [(200, big_id, 0x2, 0), (255, 0, 0x2, 0), (255, 0, 0x2, 0)]


def test_other_device_id_reaches_the_library(second_rt, ucp):
    """The double has only device 0: device 1 is refused by the library, as an HBMRuntimeError."""
    _check_second(second_rt.run(_x(0)), 0)
    base = ucp.live()
    second_rt.set_scheduling_params(device_id={"m_second": 1})
    assert second_rt.sched_params["m_second"].deviceId == 1
    with pytest.raises(HBMRuntimeError) as info:
        second_rt.run(_x(1))
    assert info.value.code == UCP_INVALID_ARGUMENT
    assert "m_second" in str(info.value)
    assert ucp.live() == base
    second_rt.set_scheduling_params(device_id=0)
    _check_second(second_rt.run(_x(5)), 5)


@pytest.mark.parametrize("bad", [[4], [-1, 0], [0, 4], [-2]])
def test_out_of_range_cores_change_nothing(second_rt, ucp, bad):
    rt = second_rt
    rt.set_scheduling_params(priority={"m_second": 7}, bpu_cores={"m_second": [1]})
    before = rt.sched_params
    with pytest.raises(ValueError, match=r"bpu_cores"):
        rt.set_scheduling_params(priority={"m_second": 9}, bpu_cores={"m_second": bad})
    with pytest.raises(ValueError):
        rt.set_scheduling_params(bpu_cores=bad)
    assert rt.sched_params == before
    _check_second(rt.run(_x(2)), 2)
    (submit,) = ucp.events("submit")
    assert (submit.int("priority"), submit.int("backend")) == (7, 0x2)


@pytest.mark.parametrize("kwargs", [{"priority": 256}, {"priority": -1}, {"custom_id": 2**63}, {"device_id": -1}])
def test_out_of_range_values_change_nothing(second_rt, ucp, kwargs):
    before = second_rt.sched_params
    with pytest.raises(ValueError):
        second_rt.set_scheduling_params(bpu_cores=[0], **kwargs)
    assert second_rt.sched_params == before
    _check_second(second_rt.run(_x(1)), 1)
    assert ucp.events("submit")[0].int("backend") == 0x80


def test_queued_tasks_start_by_priority_then_custom_id_then_submission(second_rt, ucp, more_host_cores):
    """One emulated core, held: every task queues; once released they start in priority
    order (higher first), then customId (smaller first), then submission order."""
    rt = second_rt
    plan = [("a", 0, 0), ("b", 5, 9), ("c", 5, 1), ("d", 200, 0), ("e", 5, 1), ("f", 0, 0), ("g", 100, 3)]
    more_host_cores(len(plan))  # async BPU runs wait on host workers
    ucp.configure("cores", 1)
    ucp.configure("hold", 1)
    futures = {}
    try:
        for i, (label, priority, custom_id) in enumerate(plan):
            rt.set_scheduling_params(priority=priority, custom_id=custom_id)
            futures[label] = rt.run_async(_x(10 * i))
            # One at a time, so that ties keep their submission order.
            wait_until(lambda: ucp.stat("tasks_submitted") == i + 1, f"task {label} submitted")
        assert ucp.events("start") == []
    finally:
        ucp.configure("hold", 0)
    concurrent.futures.wait(list(futures.values()), timeout=60)
    for i, (label, _, _) in enumerate(plan):
        _check_second(futures[label].result(), 10 * i)
    submits = ucp.events("submit")
    label_of = {s.int("task"): plan[i][0] for i, s in enumerate(submits)}
    assert [(s.int("priority"), s.int("custom_id")) for s in submits] == [(p, c) for _, p, c in plan]
    started = [label_of[e.int("task")] for e in ucp.events("start")]
    assert started == ["d", "g", "c", "e", "b", "a", "f"]
    assert {e.int("core") for e in ucp.events("start")} == {0}


def test_async_runs_all_reach_the_bpu_queue_with_one_host_core(second_rt, ucp):
    """The BPU orders .hbm tasks, not the host scheduler: run_async calls waiting on the BPU
    must not each hold a host core (which would cap the calls in flight at the host core
    count, hold back host models, and order the rest on the host, ignoring customId)."""
    rt = second_rt
    plan = [("a", 0, 0), ("b", 5, 9), ("c", 5, 1), ("d", 200, 0), ("g", 100, 3), ("f", 0, 4)]
    before = hbm_runtime.host_cores()
    hbm_runtime.set_host_cores(1)
    ucp.configure("cores", 1)
    ucp.configure("hold", 1)
    futures = {}
    try:
        for i, (label, priority, custom_id) in enumerate(plan):
            rt.set_scheduling_params(priority=priority, custom_id=custom_id)
            futures[label] = rt.run_async(_x(10 * i))
        wait_until(lambda: ucp.stat("tasks_submitted") == len(plan), "every async call queued on the BPU",
                   timeout=5, detail=lambda: f"{ucp.stat('tasks_submitted')} of {len(plan)} submitted")
    finally:
        ucp.configure("hold", 0)
        concurrent.futures.wait(list(futures.values()), timeout=60)
        hbm_runtime.set_host_cores(before)
    for i, (label, _, _) in enumerate(plan):
        _check_second(futures[label].result(), 10 * i)
    label_of = {s.int("task"): next(lab for lab, p, c in plan if (p, c) == (s.int("priority"), s.int("custom_id")))
                for s in ucp.events("submit")}
    assert [label_of[e.int("task")] for e in ucp.events("start")] == ["d", "g", "c", "b", "a", "f"]


def _multi_feeds(seed: int):
    return {name: random_inputs(MULTI[name], seed + i) for i, name in enumerate(("m_add", "m_rows", "m_nv12"))} | {
        "m_second": {"x": _x(seed % 200)}}


def _check_multi(result, feeds):
    assert list(result) == list(feeds)
    for name, inputs in feeds.items():
        model = SECOND if name == "m_second" else MULTI[name]
        assert_outputs_equal(result[name], expected_outputs(model, inputs), name)


def _assert_all_submitted_before_any_wait(ucp, n):
    log = ucp.log()
    submits = [i for i, line in enumerate(log) if line.startswith("submit ")]
    waits = [i for i, line in enumerate(log) if line.startswith("wait ")]
    assert len(submits) == n and len(waits) == n
    assert max(submits) < min(waits), "\n".join(log)


def test_multi_model_run_submits_every_task_before_waiting(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory([model_file("multi.hbm"), model_file("second.hbm")])
    feeds = _multi_feeds(1)
    ucp.configure("hold", 1)  # nothing can finish: a run that waited first would stall here
    box = {}

    def call():
        try:
            box["result"] = rt.run(feeds)
        except BaseException as e:  # re-raised below
            box["error"] = e

    worker = threading.Thread(target=call)
    worker.start()
    try:
        wait_until(lambda: ucp.stat("tasks_submitted") == len(feeds), "every model submitted while held",
                   timeout=10, detail=lambda: f"{ucp.stat('tasks_submitted')} of {len(feeds)} submitted")
    finally:
        ucp.configure("hold", 0)
        worker.join(60)
    assert not worker.is_alive()
    if "error" in box:
        raise box["error"]
    _check_multi(box["result"], feeds)
    _assert_all_submitted_before_any_wait(ucp, len(feeds))


def test_multi_model_run_async_submits_every_task_before_waiting(hbm_runtime_factory, ucp):
    """Also for run_async, and whatever the number of host cores: BPU tasks are scheduled by
    the BPU, not one host worker per waiting model."""
    rt = hbm_runtime_factory([model_file("multi.hbm"), model_file("second.hbm")])
    feeds = _multi_feeds(2)
    before = hbm_runtime.host_cores()
    hbm_runtime.set_host_cores(1)
    ucp.configure("hold", 1)
    fut = None
    try:
        fut = rt.run_async(feeds)
        wait_until(lambda: ucp.stat("tasks_submitted") == len(feeds), "every model submitted while held",
                   timeout=10, detail=lambda: f"{ucp.stat('tasks_submitted')} of {len(feeds)} submitted")
    finally:
        ucp.configure("hold", 0)
        result = fut.result(timeout=60) if fut is not None else None
        hbm_runtime.set_host_cores(before)
    _check_multi(result, feeds)
    _assert_all_submitted_before_any_wait(ucp, len(feeds))
