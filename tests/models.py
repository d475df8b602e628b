"""Builders of the small ONNX models the API tests run (onnx.helper, seeded numpy RNG).

Every builder takes the path of the .onnx file to write and returns it as a str. The model
name hbm_runtime reports is the file stem, so callers pick the stem they need.

The values written into the files (scales, zero points, doc strings, metadata) are also
exposed as module constants so tests compare what hbm_runtime reports with what the file says.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8  # accepted by every onnxruntime / OpenVINO release we may meet

# ---- generic helpers ----------------------------------------------------------------------


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _init(name: str, value: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _vi(name: str, elem_type: int, shape: Sequence, doc: str = "") -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, list(shape), doc_string=doc)


def _save(
    graph: onnx.GraphProto,
    path: "os.PathLike[str] | str",
    doc: str = "",
    props: Optional[Dict[str, str]] = None,
    opset: int = OPSET,
) -> str:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], doc_string=doc)
    model.ir_version = IR_VERSION
    if props:
        helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    onnx.save(model, os.fspath(path))
    return os.fspath(path)


# ---- lanenet-like: one F32 input, two F32 outputs -----------------------------------------------

LANENET_NAME = "lanenet256x512"  # file stems of the seed's two example models
NV12_NAME = "yolov5x_672x672_nv12"

LANENET_INPUT = "input"
LANENET_SHAPE = [1, 3, 256, 512]
LANENET_OUTPUTS = ["output", "seg"]
LANENET_OUTPUT_SHAPE = [1, 4, 64, 128]
LANENET_DOC = "Lane detection model (test double of lanenet256x512)."
LANENET_GRAPH_DOC = "graph doc of lanenet (must not win over the model doc)"
LANENET_INPUT_DOC = "RGB image, NCHW, float32"
LANENET_OUTPUT_DOCS = {"output": "lane features after ReLU", "seg": "lane probability"}
LANENET_PROPS = {"author": "hbm_runtime tests", "note": 'quotes " and \\ and\nnewline, 中文'}


def lanenet(path, seed: int = 1) -> str:
    rng = _rng(seed)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.5
    b = rng.standard_normal(4).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("Conv", [LANENET_INPUT, "w", "b"], ["conv"], kernel_shape=[3, 3],
                         strides=[4, 4], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["output"]),
        helper.make_node("Sigmoid", ["conv"], ["seg"]),
    ]
    graph = helper.make_graph(
        nodes, "lanenet",
        [_vi(LANENET_INPUT, TensorProto.FLOAT, LANENET_SHAPE, LANENET_INPUT_DOC)],
        [_vi(o, TensorProto.FLOAT, LANENET_OUTPUT_SHAPE, LANENET_OUTPUT_DOCS[o]) for o in LANENET_OUTPUTS],
        initializer=[_init("w", w), _init("b", b)],
        doc_string=LANENET_GRAPH_DOC,
    )
    return _save(graph, path, doc=LANENET_DOC, props=LANENET_PROPS)


# ---- NV12-style: two U8 inputs (data_y, data_uv), three S32 outputs -----------------------------

NV12_INPUTS = ["data_y", "data_uv"]
NV12_INPUT_SHAPES = {"data_y": [1, 672, 672, 1], "data_uv": [1, 336, 336, 2]}
NV12_OUTPUTS = ["output", "1310", "1312"]
NV12_OUTPUT_SHAPES = {"output": [1, 84, 84, 2], "1310": [1, 42, 42, 2], "1312": [1, 21, 21, 2]}
NV12_DOC = "Image classification model based on ResNet-18."
NV12_INPUT_DOCS = {"data_y": "luma plane", "data_uv": "interleaved chroma plane"}
NV12_OUTPUT_DOCS = {"output": "stride 8 head", "1310": "stride 16 head", "1312": "stride 32 head"}


def nv12(path) -> str:
    """Every output mixes both inputs, sampled on a grid, computed exactly in int32."""
    nodes = [
        helper.make_node("Cast", ["data_y"], ["yi"], to=TensorProto.INT32),
        helper.make_node("Cast", ["data_uv"], ["uvi"], to=TensorProto.INT32),
    ]
    inits = [_init("axes", np.array([1, 2], np.int64)), _init("starts", np.array([0, 0], np.int64))]
    for s in (4, 8, 16, 32):
        inits.append(_init(f"step{s}", np.array([s, s], np.int64)))
    inits.append(_init("y_end", np.array([672, 672], np.int64)))
    inits.append(_init("uv_end", np.array([336, 336], np.int64)))

    def sl(src: str, end: str, step: int, out: str) -> None:
        nodes.append(helper.make_node("Slice", [src, "starts", end, "axes", f"step{step}"], [out]))

    sl("yi", "y_end", 8, "y8")
    sl("uvi", "uv_end", 4, "uv4")
    nodes.append(helper.make_node("Add", ["y8", "uv4"], ["output"]))
    sl("yi", "y_end", 16, "y16")
    sl("uvi", "uv_end", 8, "uv8")
    nodes.append(helper.make_node("Mul", ["y16", "uv8"], ["1310"]))
    sl("yi", "y_end", 32, "y32")
    sl("uvi", "uv_end", 16, "uv16")
    nodes.append(helper.make_node("Sub", ["y32", "uv16"], ["1312"]))
    graph = helper.make_graph(
        nodes, "nv12",
        [_vi(n, TensorProto.UINT8, NV12_INPUT_SHAPES[n], NV12_INPUT_DOCS[n]) for n in NV12_INPUTS],
        [_vi(n, TensorProto.INT32, NV12_OUTPUT_SHAPES[n], NV12_OUTPUT_DOCS[n]) for n in NV12_OUTPUTS],
        initializer=inits,
    )
    return _save(graph, path, doc=NV12_DOC)


# ---- tiny two-input model (any stem: model1, modelA, ...) -----------------------------------------

TINY_INPUTS = ["a", "b"]
TINY_SHAPE = [2, 8]
TINY_OUTPUTS = ["sum", "mm"]
TINY_GRAPH_DOC = "tiny model: graph doc only"


def tiny(path, seed: int = 3) -> str:
    w = _rng(seed).standard_normal((8, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Add", ["a", "b"], ["sum"]),
        helper.make_node("MatMul", ["sum", "w"], ["mm"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [_vi(n, TensorProto.FLOAT, TINY_SHAPE) for n in TINY_INPUTS],
        [_vi("sum", TensorProto.FLOAT, TINY_SHAPE), _vi("mm", TensorProto.FLOAT, [2, 4])],
        initializer=[_init("w", w)],
        doc_string=TINY_GRAPH_DOC,
    )
    return _save(graph, path)


def single(path, seed: int = 4, shape: Sequence[int] = (1, 16)) -> str:
    """One F32 input 'x', one F32 output 'y' = tanh(x @ W); no doc strings, no metadata."""
    w = _rng(seed).standard_normal((shape[-1], 8)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Tanh", ["h"], ["y"])]
    graph = helper.make_graph(
        nodes, "single",
        [_vi("x", TensorProto.FLOAT, list(shape))],
        [_vi("y", TensorProto.FLOAT, list(shape[:-1]) + [8])],
        initializer=[_init("w", w)],
    )
    return _save(graph, path)


# ---- MLP heavy enough for threads to overlap --------------------------------------------------

MLP_SHAPE = [16, 128]


def mlp(path, seed: int = 5, layers: int = 6) -> str:
    rng = _rng(seed)
    nodes, inits, cur = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((128, 128)) / np.sqrt(128)).astype(np.float32)
        inits.append(_init(f"w{i}", w))
        nodes.append(helper.make_node("MatMul", [cur, f"w{i}"], [f"m{i}"]))
        out = "y" if i == layers - 1 else f"t{i}"
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [out]))
        cur = out
    graph = helper.make_graph(
        nodes, "mlp", [_vi("x", TensorProto.FLOAT, MLP_SHAPE)], [_vi("y", TensorProto.FLOAT, MLP_SHAPE)],
        initializer=inits,
    )
    return _save(graph, path)


# ---- QDQ model ------------------------------------------------------------------------------

# Per-tensor input:  x (uint8) -> DequantizeLinear(scale, zero point, no axis attribute).
QDQ_X_SCALE = np.float32(0.25)
QDQ_X_ZP = np.uint8(128)
# Per-channel output: QuantizeLinear(axis=1, int8 zero points) -> y (int8).
QDQ_Y_SCALE = np.array([0.75, 1.25, 1.75, 2.25], np.float32)
QDQ_Y_ZP = np.array([-3, 0, 5, 17], np.int8)
QDQ_Y_AXIS = 1
# Output without zero point: QuantizeLinear(scale) -> y_u8 (uint8).
QDQ_YU8_SCALE = np.float32(1.25)
QDQ_INPUTS = ["x", "offset"]
QDQ_OUTPUTS = ["y", "y_u8", "yf"]
QDQ_X_SHAPE = [1, 3, 8, 8]
QDQ_Y_SHAPE = [1, 4, 8, 8]


def qdq(path, seed: int = 6) -> str:
    """Values are exact in float32 and never at a rounding tie, so ints compare exactly.

    xf = (x - 128) * 0.25 (multiples of 1/4); integer 1x1 conv weights, bias in quarters ->
    yf multiples of 1/4; yf / s for s in {0.75, 1.25, 1.75, 2.25} has an odd denominator.
    """
    rng = _rng(seed)
    w = rng.integers(-2, 3, size=(4, 3, 1, 1)).astype(np.float32)
    b = (rng.integers(-8, 9, size=4) * 0.25).astype(np.float32)
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "x_scale", "x_zp"], ["xf"]),
        helper.make_node("Conv", ["xf", "w", "b"], ["conv"]),
        helper.make_node("QuantizeLinear", ["conv", "y_scale", "y_zp"], ["y"], axis=QDQ_Y_AXIS),
        helper.make_node("QuantizeLinear", ["conv", "yu8_scale"], ["y_u8"]),
        helper.make_node("Add", ["conv", "offset"], ["yf"]),
    ]
    graph = helper.make_graph(
        nodes, "qdq",
        [_vi("x", TensorProto.UINT8, QDQ_X_SHAPE), _vi("offset", TensorProto.FLOAT, [1, 4, 1, 1])],
        [_vi("y", TensorProto.INT8, QDQ_Y_SHAPE), _vi("y_u8", TensorProto.UINT8, QDQ_Y_SHAPE),
         _vi("yf", TensorProto.FLOAT, QDQ_Y_SHAPE)],
        initializer=[
            _init("x_scale", QDQ_X_SCALE), _init("x_zp", QDQ_X_ZP), _init("w", w), _init("b", b),
            _init("y_scale", QDQ_Y_SCALE), _init("y_zp", QDQ_Y_ZP), _init("yu8_scale", QDQ_YU8_SCALE),
        ],
    )
    return _save(graph, path)


# Dequantize without zero point, per-channel with an explicit axis on a 3-D input.
QDQ_NOZP_SCALE = np.array([0.5, 0.25, 2.0], np.float32)
QDQ_NOZP_AXIS = 2


def qdq_no_zero_point(path) -> str:
    nodes = [
        helper.make_node("DequantizeLinear", ["q", "q_scale"], ["qf"], axis=QDQ_NOZP_AXIS),
        helper.make_node("Relu", ["qf"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes, "qdq_nozp",
        [_vi("q", TensorProto.INT8, [2, 4, 3])],
        [_vi("out", TensorProto.FLOAT, [2, 4, 3])],
        initializer=[_init("q_scale", QDQ_NOZP_SCALE)],
    )
    return _save(graph, path)


# ---- dynamic dims -------------------------------------------------------------------------------


def dynamic_batch(path, seed: int = 7) -> str:
    """x ['N', 3, 4, 5] -> y ['N', 3, 4, 6] = relu(x @ W + b)."""
    rng = _rng(seed)
    w = rng.standard_normal((5, 6)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("Relu", ["a"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "dyn",
        [_vi("x", TensorProto.FLOAT, ["N", 3, 4, 5])],
        [_vi("y", TensorProto.FLOAT, ["N", 3, 4, 6])],
        initializer=[_init("w", w), _init("b", b)],
    )
    return _save(graph, path)


def dynamic_seq(path, seed: int = 8) -> str:
    """tokens ['B', 'T', 8] -> h ['B', 'T', 4] = tanh(tokens @ W), pooled ['B', 4] = mean over T."""
    w = _rng(seed).standard_normal((8, 4)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["tokens", "w"], ["m"]),
        helper.make_node("Tanh", ["m"], ["h"]),
        helper.make_node("ReduceMean", ["h"], ["pooled"], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "dyn_seq",
        [_vi("tokens", TensorProto.FLOAT, ["B", "T", 8])],
        [_vi("h", TensorProto.FLOAT, ["B", "T", 4]), _vi("pooled", TensorProto.FLOAT, ["B", 4])],
        initializer=[_init("w", w)],
    )
    return _save(graph, path)


# ---- one input/output pair per dtype of the seed's hb_dtype_map ----------------------------------

# hbDNNDataType name -> (ONNX element type, numpy dtype)
DTYPES = {
    "U8": (TensorProto.UINT8, np.uint8),
    "S8": (TensorProto.INT8, np.int8),
    "F32": (TensorProto.FLOAT, np.float32),
    "F16": (TensorProto.FLOAT16, np.float16),
    "U16": (TensorProto.UINT16, np.uint16),
    "S16": (TensorProto.INT16, np.int16),
    "S32": (TensorProto.INT32, np.int32),
    "U32": (TensorProto.UINT32, np.uint32),
    "S64": (TensorProto.INT64, np.int64),
    "U64": (TensorProto.UINT64, np.uint64),
    "BOOL8": (TensorProto.BOOL, np.bool_),
}
DTYPES_SHAPE = [2, 3]


def dynamic_matmul(path) -> str:
    """y = a @ b with independent dynamic dims: mismatched inner dims fail inside the engine."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])], "dyn",
        [_vi("a", TensorProto.FLOAT, ["n", "k"]), _vi("b", TensorProto.FLOAT, ["j", "m"])],
        [_vi("y", TensorProto.FLOAT, ["n", "m"])])
    return _save(graph, path, opset=17)


def dtypes(path, names: Sequence[str] = tuple(DTYPES)) -> str:
    """Input 'in_<NAME>' -> Identity -> output 'out_<NAME>' for each dtype name."""
    nodes, ins, outs = [], [], []
    for n in names:
        onnx_type = DTYPES[n][0]
        nodes.append(helper.make_node("Identity", [f"in_{n}"], [f"out_{n}"]))
        ins.append(_vi(f"in_{n}", onnx_type, DTYPES_SHAPE))
        outs.append(_vi(f"out_{n}", onnx_type, DTYPES_SHAPE))
    graph = helper.make_graph(nodes, "dtypes", ins, outs)
    return _save(graph, path)


# ---- references and comparisons (onnxruntime on the same file) ---------------------------------

_ORT_NUMPY = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(uint16)": np.uint16,
    "tensor(int16)": np.int16, "tensor(int32)": np.int32, "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}
_sessions: Dict[str, object] = {}


def ort_session(path):
    import onnxruntime as ort

    path = os.fspath(path)
    if path not in _sessions:
        _sessions[path] = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return _sessions[path]


def ort_reference(path, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """{output_name: array} computed by onnxruntime for the model file at path."""
    sess = ort_session(path)
    names = [o.name for o in sess.get_outputs()]
    feeds = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
    return dict(zip(names, sess.run(names, feeds)))


def random_array(shape: Sequence[int], dtype, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        lo, hi = max(int(info.min), -1000), min(int(info.max), 1000)
        return rng.integers(lo, hi + 1, size=shape).astype(dtype)
    return rng.standard_normal(size=shape).astype(dtype)


def random_feeds(path, seed: int = 0, dims: Optional[Dict[str, int]] = None) -> Dict[str, np.ndarray]:
    """Random inputs for every input of the model; symbolic dims take their size from dims."""
    rng = _rng(seed)
    dims = dims or {}
    feeds = {}
    for i in ort_session(path).get_inputs():
        shape = [d if isinstance(d, int) else dims[d] for d in i.shape]
        feeds[i.name] = random_array(shape, _ORT_NUMPY[i.type], rng)
    return feeds


def vendor_order(names) -> list:
    """`names` in the key order of the vendor package's dicts (tests/test_vendor_compat.py
    pins that order to what its binary was seen to do)."""
    from hbm_runtime import _hbm_ext

    names = list(names)
    return [names[i] for i in _hbm_ext._vendor_dict_order(names)]


def assert_outputs_match(got: Dict[str, np.ndarray], ref: Dict[str, np.ndarray], what: str = "") -> None:
    """Same output names (keyed in the vendor's dict order, as run() returns them), dtypes and
    shapes; floats within a tight tolerance, everything else exactly equal."""
    want = vendor_order(ref)
    assert list(got) == want, f"{what}: output names {list(got)} != {want}"
    for name, expected in ref.items():
        actual = got[name]
        assert isinstance(actual, np.ndarray), f"{what}/{name}: {type(actual).__name__}"
        assert actual.dtype == expected.dtype, f"{what}/{name}: dtype {actual.dtype} != {expected.dtype}"
        assert actual.shape == expected.shape, f"{what}/{name}: shape {actual.shape} != {expected.shape}"
        if np.issubdtype(expected.dtype, np.floating):
            np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5, err_msg=f"{what}/{name}")
        else:
            np.testing.assert_array_equal(actual, expected, err_msg=f"{what}/{name}")


# ---- edge cases of the ONNX format (tests/test_api_onnx_edge.py) --------------------------------


def _save_opset(graph: onnx.GraphProto, path, opset: int = OPSET, ir_version: int = IR_VERSION,
                check: bool = True, **save_kwargs) -> str:
    """_save with an IR version of choice (opset 21 needs IR 10); save_kwargs go to onnx.save,
    for external data. check=False for files the checker refuses but runtimes read (graph
    outputs without a shape)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, os.fspath(path), **save_kwargs)
    return os.fspath(path)


SCALAR_IO_SHAPES = {"a": [2, 3], "b": []}
SCALAR_IO_OUTPUT_SHAPES = {"prod": [2, 3], "total": []}


def scalar_io(path) -> str:
    """A 0-d input and a 0-d output: prod = a [2, 3] * b [], total = sum(prod) declared []."""
    nodes = [
        helper.make_node("Mul", ["a", "b"], ["prod"]),
        helper.make_node("ReduceSum", ["prod"], ["total"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "scalar_io",
        [_vi(n, TensorProto.FLOAT, s) for n, s in SCALAR_IO_SHAPES.items()],
        [_vi(n, TensorProto.FLOAT, s) for n, s in SCALAR_IO_OUTPUT_SHAPES.items()],
    )
    return _save(graph, path)


# What OpenVINO infers for the outputs undeclared_output_shapes leaves without a shape.
UNDECLARED_OUTPUT_SHAPES = {"y": [-1, 4], "total": [], "mean": [1, 4]}


def undeclared_output_shapes(path) -> str:
    """x ['N', 4] -> y = relu(x), total = sum(x) (0-d), mean = mean over axis 0 ([1, 4]); every
    output's type has an element type but no shape field at all (unknown rank in the file)."""
    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[0], keepdims=1),
    ]
    graph = helper.make_graph(
        nodes, "undeclared",
        [_vi("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in UNDECLARED_OUTPUT_SHAPES],
    )
    return _save_opset(graph, path, check=False)


def unranked_input(path) -> str:
    """x (no shape field: any rank) -> y = relu(x), neither with a shape."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "unranked",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return _save_opset(graph, path, check=False)


QDQ_EXT_CHANNELS = 300
QDQ_EXT_SHAPE = [1, QDQ_EXT_CHANNELS, 2]


def qdq_external(path, size_threshold: int = 1024) -> str:
    """x uint8 [1, 300, 2] -> DequantizeLinear(per-channel scale and zero point, axis=1) -> xf;
    yf = relu(xf); q = QuantizeLinear(xf, per-tensor scale and zero point) (uint8). Saved with
    external data: with the default threshold only the 300-float scale (1200 bytes) leaves the
    file, with size_threshold=0 every initializer does (one .data file next to the model)."""
    rng = _rng(9)
    scale = (rng.uniform(0.01, 0.5, QDQ_EXT_CHANNELS)).astype(np.float32)
    zp = rng.integers(0, 256, QDQ_EXT_CHANNELS).astype(np.uint8)
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "x_scale", "x_zp"], ["xf"], axis=1),
        helper.make_node("Relu", ["xf"], ["yf"]),
        helper.make_node("QuantizeLinear", ["xf", "q_scale", "q_zp"], ["q"]),
    ]
    graph = helper.make_graph(
        nodes, "qdq_ext",
        [_vi("x", TensorProto.UINT8, QDQ_EXT_SHAPE)],
        [_vi("yf", TensorProto.FLOAT, QDQ_EXT_SHAPE), _vi("q", TensorProto.UINT8, QDQ_EXT_SHAPE)],
        initializer=[_init("x_scale", scale), _init("x_zp", zp),
                     _init("q_scale", np.float32(0.37)), _init("q_zp", np.uint8(7))],
    )
    return _save_opset(graph, path, OPSET, save_as_external_data=True, all_tensors_to_one_file=True,
                       location=os.path.basename(os.fspath(path)) + ".data",
                       size_threshold=size_threshold)


QDQ_SCALE_VALUES = [0.1, 0.3, 1e-3, 2.5]  # none exact in float16 or bfloat16


def qdq_scale_type(path, scale_type: int) -> str:
    """x int8 [2, 4] -> DequantizeLinear(scale of scale_type, int8 zero point, axis=1) -> xf;
    y = float(xf); q = QuantizeLinear(xf, same scale and zero point). Opset 21, where float16
    and bfloat16 scales are standard (DOUBLE is not, but OpenVINO reads it)."""
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "s", "zp"], ["xf"], axis=1),
        helper.make_node("Cast", ["xf"], ["y"], to=TensorProto.FLOAT),
        helper.make_node("QuantizeLinear", ["xf", "s", "zp"], ["q"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "qdq_scale_type",
        [_vi("x", TensorProto.INT8, [2, 4])],
        [_vi("y", TensorProto.FLOAT, [2, 4]), _vi("q", TensorProto.INT8, [2, 4])],
        initializer=[helper.make_tensor("s", scale_type, [4], QDQ_SCALE_VALUES),
                     _init("zp", np.array([1, -1, 2, -2], np.int8))],
    )
    return _save_opset(graph, path, 21, ir_version=10)


QDQ_NEG_AXIS = -3


def qdq_negative_axis(path) -> str:
    """x uint8 [1, 3, 4, 4] -> DequantizeLinear(axis=-3) -> xf; q = QuantizeLinear(xf, axis=-3)
    (int8 [1, 3, 4, 4]); yf = relu(xf). Both axes mean the channel axis, 1."""
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "x_scale", "x_zp"], ["xf"], axis=QDQ_NEG_AXIS),
        helper.make_node("Relu", ["xf"], ["yf"]),
        helper.make_node("QuantizeLinear", ["xf", "q_scale", "q_zp"], ["q"], axis=QDQ_NEG_AXIS),
    ]
    graph = helper.make_graph(
        nodes, "qdq_neg_axis",
        [_vi("x", TensorProto.UINT8, [1, 3, 4, 4])],
        [_vi("yf", TensorProto.FLOAT, [1, 3, 4, 4]), _vi("q", TensorProto.INT8, [1, 3, 4, 4])],
        initializer=[_init("x_scale", np.array([0.5, 0.25, 0.125], np.float32)),
                     _init("x_zp", np.array([128, 100, 3], np.uint8)),
                     _init("q_scale", np.array([1.5, 2.5, 3.5], np.float32)),
                     _init("q_zp", np.array([-1, 0, 1], np.int8))],
    )
    return _save(graph, path)
