"""One HB_HBMRuntime holding a BPU model (.hbm, through the double) and a host model (.onnx,
made here with onnx.helper): metadata of both, and multi-model runs returning both."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hbm_runtime import SchedParam, hbDNNDataType
from ucp_support import (assert_outputs_equal, expected_outputs, hbm_runtime_factory, model_file,  # noqa: F401
                         parse_model_file, random_inputs, settle, ucp, ucp_double)

MULTI = parse_model_file(model_file("multi.hbm")).models
SECOND = parse_model_file(model_file("second.hbm")).models["m_second"]
W = np.arange(12, dtype=np.float32).reshape(3, 4) / 8


@pytest.fixture
def onnx_path(tmp_path):
    """affine: y = x @ W + 1, x float32 [2, 3] (exact in float32 for the inputs used here)."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "one"], ["y"])],
        "affine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(W, "w"), numpy_helper.from_array(np.array(1, np.float32), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path / "affine.onnx"
    onnx.save(model, str(path))
    return str(path)


def _x(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-8, 8, (2, 3)).astype(np.float32)


def _affine(x: np.ndarray) -> np.ndarray:
    return x @ W + np.float32(1)


def test_metadata_of_both_engines(hbm_runtime_factory, onnx_path):
    rt = hbm_runtime_factory([model_file("second.hbm"), onnx_path])
    assert rt.model_names == ["m_second", "affine"]
    assert rt.input_shapes == {"m_second": {"x": [8]}, "affine": {"x": [2, 3]}}
    assert rt.output_shapes == {"m_second": {"y": [8]}, "affine": {"y": [2, 4]}}
    assert rt.input_dtypes["m_second"]["x"] == hbDNNDataType.U8
    assert rt.input_dtypes["affine"]["x"] == hbDNNDataType.F32
    assert rt.hbm_descs[model_file("second.hbm")] == "second test file"
    assert set(rt.engine_versions) >= {"ucp", "openvino"}


@pytest.mark.parametrize("how", ["run", "run_async"])
def test_multi_model_run_returns_both(hbm_runtime_factory, ucp, onnx_path, how):
    rt = hbm_runtime_factory([model_file("multi.hbm"), onnx_path, model_file("second.hbm")])
    for seed in range(3):
        feeds = {"affine": {"x": _x(seed)}, "m_nv12": random_inputs(MULTI["m_nv12"], seed),
                 "m_second": random_inputs(SECOND, seed)}
        result = rt.run(feeds) if how == "run" else rt.run_async(feeds).result(timeout=60)
        assert list(result) == list(feeds)
        np.testing.assert_array_equal(result["affine"]["y"], _affine(feeds["affine"]["x"]))
        assert_outputs_equal(result["m_nv12"], expected_outputs(MULTI["m_nv12"], feeds["m_nv12"]), "m_nv12")
        assert_outputs_equal(result["m_second"], expected_outputs(SECOND, feeds["m_second"]), "m_second")
        assert result["m_nv12"]["out"].strides == (1536, 384, 64, 4)
        assert result.timings["affine"]["core"] >= 0 and result.timings["m_nv12"]["core"] == -1
    # Only the .hbm models went to the BPU.
    assert sorted(e.f["model"] for e in ucp.events("infer")) == ["m_nv12"] * 3 + ["m_second"] * 3
    del result
    settle()
    assert ucp.stat("live_tasks") == ucp.leaked_tasks


def test_bpu_core_ids_are_checked_per_engine(hbm_runtime_factory, ucp, onnx_path):
    rt = hbm_runtime_factory([model_file("second.hbm"), onnx_path])
    # BPU cores 0..3 whatever the host has; the host model's cores follow the host scheduler.
    rt.set_scheduling_params(bpu_cores={"m_second": [2, 3]}, priority={"m_second": 9, "affine": 3})
    assert rt.sched_params["m_second"] == SchedParam(priority=9, customId=0, bpu_cores=[2, 3], deviceId=0)
    with pytest.raises(ValueError):
        rt.set_scheduling_params(bpu_cores={"m_second": [4]})
    x8 = np.arange(8, dtype=np.uint8)
    result = rt.run({"m_second": {"x": x8}, "affine": {"x": _x(9)}})
    assert_outputs_equal(result["m_second"], expected_outputs(SECOND, {"x": x8}))
    np.testing.assert_array_equal(result["affine"]["y"], _affine(_x(9)))
    (submit,) = ucp.events("submit")
    assert (submit.int("priority"), submit.int("backend")) == (9, 0xC)


def test_single_model_calls_pick_the_right_engine(hbm_runtime_factory, ucp, onnx_path):
    rt = hbm_runtime_factory([onnx_path, model_file("second.hbm")])
    x8 = np.arange(8, dtype=np.uint8) * 2
    assert_outputs_equal(rt.run(x8, model_name="m_second")["m_second"], expected_outputs(SECOND, {"x": x8}))
    np.testing.assert_array_equal(rt.run(_x(4), model_name="affine")["affine"]["y"], _affine(_x(4)))
    with pytest.raises(ValueError):
        rt.input_buffers("affine")  # host models have no device memory
    bufs = rt.input_buffers("m_second")
    bufs["x"][...] = x8
    assert_outputs_equal(rt.run(bufs, model_name="m_second")["m_second"], expected_outputs(SECOND, {"x": x8}))
    assert len(ucp.events("infer")) == 2
