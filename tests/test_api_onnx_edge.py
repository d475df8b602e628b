"""Corners of the ONNX format on the host engine: 0-d tensors, outputs whose file declares no
shape, and quantization parameters stored outside the model file, in 16-bit or double floats,
or with a negative axis. Outputs are compared with onnxruntime, metadata with what onnx's own
numpy_helper reads from the same file."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from onnx.external_data_helper import uses_external_data

import models
from hbm_runtime import QuantParams, hbDNNQuantiType

# ---- helpers ------------------------------------------------------------------------------------


def _stem(path) -> str:
    return pathlib.Path(path).stem


def _run(rt, path, feeds):
    """rt.run(feeds) for the only model of rt, as {output: array}."""
    return rt.run(feeds)[_stem(path)]


def _file_quant(path, tensor: str, output: bool) -> QuantParams:
    """What the file says about tensor's quantization, read with onnx (external data included):
    the DequantizeLinear consuming an input or the QuantizeLinear producing an output; scale as
    float32, zero point as int32 (empty without one), a negative axis counted from the end of
    the quantized tensor's dims."""
    g = onnx.load(os.fspath(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    if output:
        node = next(n for n in g.node if n.op_type == "QuantizeLinear" and n.output[0] == tensor)
        vi = next(v for v in g.output if v.name == tensor)
    else:
        node = next(n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] == tensor)
        vi = next(v for v in g.input if v.name == tensor)
    zp = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else np.empty(0)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if axis < 0:
        axis += len(vi.type.tensor_type.shape.dim)
    return QuantParams(scale=inits[node.input[1]].astype(np.float32), zero_point=zp.astype(np.int32),
                       quant_type=hbDNNQuantiType.SCALE, axis=axis)


def _assert_quant(got: QuantParams, want: QuantParams, what: str) -> None:
    assert got.quant_type == hbDNNQuantiType.SCALE, f"{what}: {got.quant_type!r}"
    assert got.scale.dtype == np.float32 and got.zero_point.dtype == np.int32, what
    np.testing.assert_array_equal(got.scale, want.scale, err_msg=what)
    np.testing.assert_array_equal(got.zero_point, want.zero_point, err_msg=what)
    assert got.axis == want.axis, what
    assert got == want, what


# ---- 0-d tensors ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scalar_io_path(model_dir) -> str:
    return models.scalar_io(model_dir / "scalar_io.onnx")


def test_scalar_input_and_output_metadata(open_runtime, scalar_io_path):
    rt = open_runtime(scalar_io_path)
    assert rt.input_shapes == {"scalar_io": models.SCALAR_IO_SHAPES}
    assert rt.output_shapes == {"scalar_io": models.SCALAR_IO_OUTPUT_SHAPES}
    assert rt.input_strides == {"scalar_io": {"a": [12, 4], "b": []}}
    assert rt.output_strides == {"scalar_io": {"prod": [12, 4], "total": []}}


def test_scalar_input_and_output_match_onnxruntime(open_runtime, scalar_io_path):
    rt = open_runtime(scalar_io_path)
    a = np.arange(6, dtype=np.float32).reshape(2, 3) + 0.5  # sums and products exact in float32
    kept = []
    for b in (2.0, -0.5, 3.25):  # a new 0-d input and a new 0-d output buffer every run
        feeds = {"a": a, "b": np.array(b, np.float32)}
        got = _run(rt, scalar_io_path, feeds)
        models.assert_outputs_match(got, models.ort_reference(scalar_io_path, feeds), f"b={b}")
        assert got["total"].shape == () and got["total"].strides == ()
        kept.append((b, got))
    for b, got in kept:  # results held across runs keep their values
        np.testing.assert_array_equal(got["prod"], a * np.float32(b))
        assert got["total"] == np.float32(a.sum() * b)


def test_scalar_input_must_be_0d(open_runtime, scalar_io_path):
    rt = open_runtime(scalar_io_path)
    with pytest.raises(ValueError, match=r"input 'b'.*shape \(1,\), expected \(\)"):
        rt.run({"a": np.ones((2, 3), np.float32), "b": np.ones(1, np.float32)})


# ---- outputs whose shape the file does not declare ------------------------------------------------


@pytest.fixture(scope="module")
def undeclared_path(model_dir) -> str:
    return models.undeclared_output_shapes(model_dir / "undeclared.onnx")


def test_undeclared_output_shapes_come_from_openvino(open_runtime, undeclared_path):
    g = onnx.load(undeclared_path).graph
    assert all(not o.type.tensor_type.HasField("shape") for o in g.output)  # the premise
    rt = open_runtime(undeclared_path)
    assert rt.output_shapes == {"undeclared": models.UNDECLARED_OUTPUT_SHAPES}
    # Outer dynamic dim: every stride still known; 0-d: none at all.
    assert rt.output_strides == {"undeclared": {"y": [16, 4], "total": [], "mean": [16, 4]}}
    assert rt.input_shapes == {"undeclared": {"x": [-1, 4]}}


@pytest.mark.parametrize("batch", [3, 1, 5])
def test_undeclared_output_shapes_run_like_onnxruntime(open_runtime, undeclared_path, batch):
    rt = open_runtime(undeclared_path)
    x = np.random.default_rng(batch).standard_normal((batch, 4)).astype(np.float32)
    got = _run(rt, undeclared_path, x)
    models.assert_outputs_match(got, models.ort_reference(undeclared_path, {"x": x}), f"batch {batch}")
    assert got["y"].shape == (batch, 4) and got["total"].shape == () and got["mean"].shape == (1, 4)


def test_input_of_unknown_rank_is_refused_by_name(open_runtime, model_dir):
    path = models.unranked_input(model_dir / "unranked.onnx")
    with pytest.raises(ValueError, match=r"input 'x' of model '.*unranked\.onnx' declares no shape"):
        open_runtime(path)


# ---- quantization parameters ----------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [1024, 0], ids=["scale_only", "everything"])
def test_external_data_quant_params(open_runtime, model_dir, threshold):
    path = models.qdq_external(model_dir / f"qdq_ext_{threshold}.onnx", size_threshold=threshold)
    stored = {t.name: uses_external_data(t)
              for t in onnx.load(path, load_external_data=False).graph.initializer}
    assert stored["x_scale"] and stored["q_scale"] == (threshold == 0)  # the premise
    rt = open_runtime(path)
    name = _stem(path)
    x = rt.input_quants[name]["x"]
    assert x.scale.shape == (models.QDQ_EXT_CHANNELS,)
    _assert_quant(x, _file_quant(path, "x", output=False), "x")
    _assert_quant(rt.output_quants[name]["q"], _file_quant(path, "q", output=True), "q")
    assert rt.output_quants[name]["yf"].quant_type == hbDNNQuantiType.NONE


def test_external_data_model_runs_like_onnxruntime(open_runtime, model_dir):
    path = models.qdq_external(model_dir / "qdq_ext_run.onnx", size_threshold=0)
    rt = open_runtime(path)
    x = np.random.default_rng(11).integers(0, 256, models.QDQ_EXT_SHAPE).astype(np.uint8)
    got = _run(rt, path, x)
    ref = models.ort_reference(path, {"x": x})
    models.assert_outputs_match({"yf": got["yf"]}, {"yf": ref["yf"]}, "external data")
    assert got["q"].dtype == np.uint8 and got["q"].shape == tuple(models.QDQ_EXT_SHAPE)


@pytest.mark.parametrize("scale_type", [TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE],
                         ids=["float16", "bfloat16", "double"])
def test_non_float32_scales_read_as_float32(open_runtime, model_dir, scale_type):
    name = f"qdq_{TensorProto.DataType.Name(scale_type).lower()}"
    path = models.qdq_scale_type(model_dir / f"{name}.onnx", scale_type)
    rt = open_runtime(path)
    want = _file_quant(path, "x", output=False)
    if scale_type != TensorProto.DOUBLE:  # the file's rounding shows: not float32's nearest
        assert not np.array_equal(want.scale, np.float32(models.QDQ_SCALE_VALUES))
    _assert_quant(rt.input_quants[name]["x"], want, "x")
    _assert_quant(rt.output_quants[name]["q"], _file_quant(path, "q", output=True), "q")


def test_float16_scale_model_runs_like_onnxruntime(open_runtime, model_dir):
    path = models.qdq_scale_type(model_dir / "qdq_f16_run.onnx", TensorProto.FLOAT16)
    rt = open_runtime(path)
    x = np.arange(-4, 4, dtype=np.int8).reshape(2, 4)
    got, ref = _run(rt, path, x), models.ort_reference(path, {"x": x})
    assert list(got) == models.vendor_order(ref)
    # xf is float16: onnxruntime rounds it there, OpenVINO keeps float32 inside the graph.
    assert got["y"].dtype == np.float32 and got["y"].shape == (2, 4)
    np.testing.assert_allclose(got["y"], ref["y"], rtol=2 ** -10)
    assert got["q"].dtype == np.int8
    np.testing.assert_array_equal(got["q"], ref["q"])


def test_negative_axis_is_reported_from_the_front(open_runtime, model_dir):
    path = models.qdq_negative_axis(model_dir / "qdq_neg_axis.onnx")
    rt = open_runtime(path)
    x = rt.input_quants["qdq_neg_axis"]["x"]
    q = rt.output_quants["qdq_neg_axis"]["q"]
    assert x.axis == q.axis == 1 == models.QDQ_NEG_AXIS + 4
    _assert_quant(x, _file_quant(path, "x", output=False), "x")
    _assert_quant(q, _file_quant(path, "q", output=True), "q")
