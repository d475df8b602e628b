"""Cache discipline with cached sysmem, as the double's log shows it: every input buffer is
flushed CLEAN after the CPU wrote it and before the inference is created and submitted,
every output buffer INVALIDATEd after the task is done and before it is released. The
double keeps a separate device copy, so a missing flush gives stale data."""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import pytest

from ucp_support import (Event, assert_outputs_equal, expected_outputs, hbm_runtime_factory,  # noqa: F401
                         model_file, parse_model_file, random_inputs, ucp, ucp_double)

MULTI = parse_model_file(model_file("multi.hbm")).models
LANENET = parse_model_file(model_file("lanenet256x512.hbm")).models["lanenet256x512"]
SQUARE = parse_model_file(model_file("square_nv12.hbm")).models["m_square"]

CASES = {
    "m_add": (model_file("multi.hbm"), MULTI["m_add"], None),
    "m_nv12": (model_file("multi.hbm"), MULTI["m_nv12"], None),
    "m_rows": (model_file("multi.hbm"), MULTI["m_rows"], None),
    "m_types": (model_file("multi.hbm"), MULTI["m_types"], None),
    "m_dyn": (model_file("multi.hbm"), MULTI["m_dyn"], {"x": [1, 5]}),
    "m_square": (model_file("square_nv12.hbm"), SQUARE, None),
    "lanenet256x512": (model_file("lanenet256x512.hbm"), LANENET, None),
}


def _check_one_inference(events: List[Event], n_inputs: int, n_outputs: int) -> Dict[str, List[int]]:
    """Checks the flush order around the single task in ``events``; returns its mem ids."""
    (infer,) = [e for e in events if e.kind == "infer"]
    task = infer.int("task")
    ins, outs = infer.ids("inputs"), infer.ids("outputs")
    assert len(ins) == n_inputs and len(outs) == n_outputs
    (submit,) = [e for e in events if e.kind == "submit"]
    (done,) = [e for e in events if e.kind == "done"]
    (wait,) = [e for e in events if e.kind == "wait"]
    (release,) = [e for e in events if e.kind == "release"]
    assert submit.int("task") == done.int("task") == wait.int("task") == release.int("task") == task
    assert infer.index < submit.index < done.index and wait.index < release.index
    assert release.f["state"] == "done"
    flushes = [e for e in events if e.kind == "flush"]
    for mem in ins:
        mine = [e for e in flushes if e.int("mem") == mem]
        assert [e.f["flag"] for e in mine] == ["CLEAN"], f"input mem {mem}: {[e.line for e in mine]}"
        assert mine[0].index < infer.index, "input flushed after hbDNNInferV2"
    fresh = {e.int("mem") for e in events if e.kind == "malloc"}
    for mem in outs:
        mine = [e for e in flushes if e.int("mem") == mem]
        # A reused output buffer is also INVALIDATEd before the task (the user may have
        # dirtied its cache lines through the writable outputs of an earlier run).
        want = ["INVALIDATE"] if mem in fresh else ["INVALIDATE", "INVALIDATE"]
        assert [e.f["flag"] for e in mine] == want, f"output mem {mem}: {[e.line for e in mine]}"
        if mem not in fresh:
            assert mine[0].index < infer.index, "reused output invalidated after hbDNNInferV2"
        assert done.index < mine[-1].index and wait.index < mine[-1].index < release.index
    return {"inputs": ins, "outputs": outs}


@pytest.mark.parametrize("case", list(CASES))
def test_inputs_cleaned_before_submit_outputs_invalidated_before_release(hbm_runtime_factory, ucp, case):
    path, model, shapes = CASES[case]
    rt = hbm_runtime_factory(path)
    mems = []
    for seed in (1, 2, 3):  # later runs reuse the buffers: they must be flushed every time
        ucp.reset()
        feeds = random_inputs(model, seed, shapes)
        result = rt.run(feeds, model_name=model.name) if len(feeds) > 1 else rt.run(
            next(iter(feeds.values())), model_name=model.name)
        assert_outputs_equal(result[model.name], expected_outputs(model, feeds), f"{case} run {seed}")
        events = ucp.events()
        mems.append(_check_one_inference(events, len(model.inputs), len(model.outputs)))
        mallocs = {e.int("mem"): e.int("bytes") for e in events if e.kind == "malloc"}
        for e in events:
            if e.kind == "flush" and e.int("mem") in mallocs:
                assert e.int("bytes") == mallocs[e.int("mem")], "flushed part of a buffer only: " + e.line
        del result
    assert mems[0] == mems[1] == mems[2]  # the outputs died between runs: buffers reused


def test_each_model_of_a_multi_model_run_is_flushed(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory([model_file("multi.hbm"), model_file("lanenet256x512.hbm")])
    feeds = {"m_add": random_inputs(MULTI["m_add"], 5), "lanenet256x512": random_inputs(LANENET, 6),
             "m_nv12": random_inputs(MULTI["m_nv12"], 7)}
    result = rt.run(feeds)
    for name, inputs in feeds.items():
        model = LANENET if name == "lanenet256x512" else MULTI[name]
        assert_outputs_equal(result[name], expected_outputs(model, inputs), name)
    events = ucp.events()
    infers = [e for e in events if e.kind == "infer"]
    assert [e.f["model"] for e in infers] == list(feeds)
    for infer in infers:
        mems = infer.ids("inputs") + infer.ids("outputs")
        per_task = [e for e in events if e.f.get("task") == infer.f["task"]
                    or (e.kind in ("flush", "malloc") and e.int("mem") in mems)]
        model = LANENET if infer.f["model"] == "lanenet256x512" else MULTI[infer.f["model"]]
        _check_one_inference(per_task, len(model.inputs), len(model.outputs))


def test_no_other_flush_flags_are_used(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory(model_file("multi.hbm"))
    feeds = random_inputs(MULTI["m_add"], 3)
    for _ in range(3):
        assert_outputs_equal(rt.run(feeds, model_name="m_add")["m_add"], expected_outputs(MULTI["m_add"], feeds))
    stats = ucp.stats()
    assert stats.get("flush_both", 0) == 0
    n_in, n_out = len(MULTI["m_add"].inputs), len(MULTI["m_add"].outputs)
    # Outputs: after each task, and before the 2nd and 3rd (their set is reused).
    assert stats["flush_clean"] == 3 * n_in and stats["flush_invalidate"] == (3 + 2) * n_out
    assert stats.get("errors", 0) == 0
