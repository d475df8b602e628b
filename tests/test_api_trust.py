"""Models whose file says one thing and whose graph computes another (they pass onnx.checker).

The host engine trusts what the compiled model computes: metadata and run() agree with each
other and with onnxruntime, the caller's arrays are never written, and a declaration that
would make callers misread bytes is refused at load, naming the model, tensor and both types.
"""

from __future__ import annotations

import ctypes
import mmap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import models
from hbm_runtime import HB_HBMRuntime


_NUMPY_OF = {3: np.uint8, 7: np.float32, 10: np.float64}  # hbDNNDataType -> numpy, as used here


def _save(path, nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)  # every one of these files is "valid"
    onnx.save(model, str(path))
    return str(path)


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def read_only_array(values: np.ndarray) -> np.ndarray:
    """A copy of values in memory the process cannot write (mprotect PROT_READ): any write
    into it by the runtime kills the test with SIGSEGV instead of passing unnoticed."""
    size = max(values.nbytes, 1)
    buf = mmap.mmap(-1, size)
    arr = np.frombuffer(buf, dtype=values.dtype, count=values.size).reshape(values.shape)
    arr[...] = values
    libc = ctypes.CDLL(None)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    assert libc.mprotect(ctypes.c_void_p(addr), ctypes.c_size_t(size), 1) == 0  # PROT_READ
    arr.flags.writeable = False
    return arr


def run_and_compare(path, feeds):
    rt = HB_HBMRuntime(path)
    try:
        name = rt.model_names[0]
        before = {k: v.copy() for k, v in feeds.items()}
        got = rt.run(feeds)[name]
        for k, v in feeds.items():
            np.testing.assert_array_equal(v, before[k], err_msg=f"input {k} was modified")
        want = models.ort_reference(path, feeds)
        assert list(got) == models.vendor_order(want)
        for out, arr in got.items():
            assert arr.dtype == want[out].dtype, out
            assert arr.shape == want[out].shape, out
            np.testing.assert_array_equal(arr, want[out], err_msg=out)
            meta_shape = rt.output_shapes[name][out]
            assert len(meta_shape) == arr.ndim, (out, meta_shape, arr.shape)
            assert all(m in (-1, a) for m, a in zip(meta_shape, arr.shape)), (out, meta_shape, arr.shape)
            assert _NUMPY_OF[int(rt.output_dtypes[name][out])] == arr.dtype
        return rt, got
    finally:
        rt.close()


def test_output_declared_wider_than_computed_is_refused_at_load(tmp_path):
    # Add(uint8) -> y declared DOUBLE: copying 8 bytes per element out of a 1-byte tensor
    # crashed the process.
    path = _save(tmp_path / "wide.onnx", [helper.make_node("Add", ["x", "x"], ["y"])],
                 [_vi("x", TensorProto.UINT8, ["n", 4])], [_vi("y", TensorProto.DOUBLE, ["n", 4])])
    with pytest.raises(ValueError, match=r"output 'y' of model 'wide': the file declares it float64, "
                                         r"but the graph computes uint8"):
        HB_HBMRuntime(path)


def test_output_declared_narrower_than_computed_is_refused_at_load(tmp_path):
    path = _save(tmp_path / "narrow.onnx", [helper.make_node("Add", ["x", "x"], ["y"])],
                 [_vi("x", TensorProto.FLOAT, [2, 4])], [_vi("y", TensorProto.UINT8, [2, 4])])
    with pytest.raises(ValueError, match="declares it uint8, but the graph computes float32"):
        HB_HBMRuntime(path)


def test_output_that_is_an_input_leaves_the_caller_array_alone(tmp_path):
    # outputs [x, relu(x)]: the read-only input was overwritten and both outputs were garbage.
    path = _save(tmp_path / "passthru.onnx", [helper.make_node("Relu", ["x"], ["r"])],
                 [_vi("x", TensorProto.FLOAT, [2, 4])],
                 [_vi("x", TensorProto.FLOAT, [2, 4]), _vi("r", TensorProto.FLOAT, [2, 4])])
    x = read_only_array(np.arange(-4, 4, dtype=np.float32).reshape(2, 4))
    rt, got = run_and_compare(path, {"x": x})
    assert not np.shares_memory(got["x"], x)
    # Twice more: the first call's results stay intact after later runs.
    rt2 = HB_HBMRuntime(path)
    first = rt2.run({"x": x})["passthru"]
    snapshot = {k: v.copy() for k, v in first.items()}
    rt2.run({"x": read_only_array(np.full((2, 4), 7, np.float32))})
    for k in first:
        np.testing.assert_array_equal(first[k], snapshot[k])
    rt2.close()


@pytest.mark.parametrize("kind", ["identity", "reshape", "initializer", "identity_chain"])
def test_aliasing_outputs_equal_onnxruntime(tmp_path, kind):
    x_vi = _vi("x", TensorProto.FLOAT, [2, 4])
    relu = helper.make_node("Relu", ["x"], ["r"])
    if kind == "identity":
        nodes, outs, inits = [helper.make_node("Identity", ["x"], ["y"]), relu], [_vi("y", 1, [2, 4]), _vi("r", 1, [2, 4])], []
    elif kind == "identity_chain":
        nodes = [helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Identity", ["a"], ["b"]),
                 helper.make_node("Identity", ["b"], ["y"])]
        outs, inits = [_vi("y", 1, [2, 4]), _vi("b", 1, [2, 4])], []
    elif kind == "reshape":
        nodes = [helper.make_node("Reshape", ["x", "s"], ["y"])]
        outs, inits = [_vi("y", 1, [8])], [helper.make_tensor("s", TensorProto.INT64, [1], [8])]
    else:
        nodes, outs = [relu], [_vi("r", 1, [2, 4]), _vi("c", 1, [3])]
        inits = [helper.make_tensor("c", TensorProto.FLOAT, [3], [1, 2, 3])]
    path = _save(tmp_path / f"{kind}.onnx", nodes, [x_vi], outs, inits)
    _, got = run_and_compare(path, {"x": read_only_array(np.arange(-4, 4, dtype=np.float32).reshape(2, 4))})
    arrays = list(got.values())
    for i in range(len(arrays)):
        for j in range(i):
            assert not np.shares_memory(arrays[i], arrays[j]), "two outputs share memory"


def test_output_listed_twice_is_refused_at_load(tmp_path):
    path = _save(tmp_path / "twice.onnx", [helper.make_node("Relu", ["x"], ["y"])],
                 [_vi("x", TensorProto.FLOAT, [2, 4])],
                 [_vi("y", TensorProto.FLOAT, [2, 4]), _vi("y", TensorProto.FLOAT, [2, 4])])
    with pytest.raises(ValueError, match="model 'twice': the graph lists output 'y' twice"):
        HB_HBMRuntime(path)


def test_declared_static_shape_larger_than_computed_returns_only_computed_rows(tmp_path):
    # input [N, 4], output declared [64, 4]: run((1, 4)) returned (64, 4) with 63 rows of
    # uninitialised heap memory.
    path = _save(tmp_path / "big_decl.onnx", [helper.make_node("Relu", ["x"], ["y"])],
                 [_vi("x", TensorProto.FLOAT, ["n", 4])], [_vi("y", TensorProto.FLOAT, [64, 4])])
    rt, got = run_and_compare(path, {"x": read_only_array(np.arange(4, dtype=np.float32).reshape(1, 4) - 2)})
    assert got["y"].shape == (1, 4)
    with HB_HBMRuntime(path) as rt:
        assert rt.output_shapes["big_decl"]["y"] == [-1, 4]
        assert rt.output_strides["big_decl"]["y"] == [16, 4]
        for n in (1, 3, 64, 65):
            x = np.ones((n, 4), np.float32)
            assert rt.run(x)["big_decl"]["y"].shape == (n, 4)


def test_declared_static_shape_smaller_than_computed_runs_like_onnxruntime(tmp_path):
    # input [8, 4], output declared [2, 4]: the run failed, onnxruntime runs it.
    path = _save(tmp_path / "small_decl.onnx", [helper.make_node("Relu", ["x"], ["y"])],
                 [_vi("x", TensorProto.FLOAT, [8, 4])], [_vi("y", TensorProto.FLOAT, [2, 4])])
    rt, got = run_and_compare(path, {"x": read_only_array(np.arange(32, dtype=np.float32).reshape(8, 4) - 9)})
    assert got["y"].shape == (8, 4)


def test_declared_rank_differs_from_computed(tmp_path):
    path = _save(tmp_path / "rank.onnx", [helper.make_node("Relu", ["x"], ["y"])],
                 [_vi("x", TensorProto.FLOAT, [2, 4])], [_vi("y", TensorProto.FLOAT, [2, 4, 1])])
    _, got = run_and_compare(path, {"x": read_only_array(np.ones((2, 4), np.float32))})
    assert got["y"].shape == (2, 4)
