#!/usr/bin/env python3
"""Generates the seed corpus of tests/fuzz: small valid ONNX models and structural lies.

    python tests/fuzz/make_corpus.py [--out tests/fuzz/corpus]

Deterministic: the same onnx version writes the same bytes. Models refer to external data in
'weights.bin' / 'sub/w.bin' (4096 pattern bytes) and 'link.bin' (a symlink), which the fuzz
target and tests/fuzz/structural.py create beside the model file.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Dict, List, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

T = TensorProto
OPSET = 14
IR_VERSION = 8

# ONNX element type -> numpy dtype, for the types the runtime supports.
NUMPY = {
    T.FLOAT: np.float32, T.UINT8: np.uint8, T.INT8: np.int8, T.UINT16: np.uint16,
    T.INT16: np.int16, T.INT32: np.int32, T.INT64: np.int64, T.BOOL: np.bool_,
    T.FLOAT16: np.float16, T.DOUBLE: np.float64, T.UINT32: np.uint32, T.UINT64: np.uint64,
}
ADD_TYPES = [T.FLOAT, T.UINT8, T.INT8, T.UINT16, T.INT16, T.INT32, T.INT64, T.FLOAT16,
             T.DOUBLE, T.UINT32, T.UINT64]


def vi(name: str, elem: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, inits=(), opset: int = OPSET, domain_opsets=(), **kw) -> onnx.ModelProto:
    g = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(inits))
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in domain_opsets]
    m = helper.make_model(g, opset_imports=imports, producer_name="hbm-fuzz")
    m.ir_version = kw.get("ir_version", IR_VERSION)
    return m


def init(name: str, arr: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.asarray(arr), name)


def unary(op: str, elem: int, shape=(2, 3), out_elem=None, out_shape=None, **attrs) -> onnx.ModelProto:
    return model([helper.make_node(op, ["x"], ["y"], **attrs)], [vi("x", elem, list(shape))],
                 [vi("y", elem if out_elem is None else out_elem, list(shape if out_shape is None else out_shape))])


def binary(op: str, elem: int, shape=(2, 3), out_elem=None, out_shape=None) -> onnx.ModelProto:
    return model([helper.make_node(op, ["a", "b"], ["y"])],
                 [vi("a", elem, list(shape)), vi("b", elem, list(shape))],
                 [vi("y", elem if out_elem is None else out_elem, list(shape if out_shape is None else out_shape))])


def external(name: str, elem: int, dims: Sequence[int], location: str, offset=None, length=None) -> TensorProto:
    t = TensorProto()
    t.name = name
    t.data_type = elem
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    return t


# ---- valid models ---------------------------------------------------------------------------

def valid_models() -> Dict[str, onnx.ModelProto]:
    out: Dict[str, onnx.ModelProto] = {}
    for elem in NUMPY:
        name = TensorProto.DataType.Name(elem).lower()
        out[f"identity_{name}"] = unary("Identity", elem)
    for elem in ADD_TYPES:
        out[f"add_{TensorProto.DataType.Name(elem).lower()}"] = binary("Add", elem)
    out["and_bool"] = binary("And", T.BOOL)
    out["relu_dynamic"] = unary("Relu", T.FLOAT, shape=("N", 4))
    out["relu_all_dynamic"] = unary("Relu", T.FLOAT, shape=("N", "C"))
    out["relu_scalar"] = unary("Relu", T.FLOAT, shape=())
    out["softmax"] = unary("Softmax", T.FLOAT, shape=(2, 5), axis=1)
    out["cast_u8_f32"] = unary("Cast", T.UINT8, out_elem=T.FLOAT, to=T.FLOAT)
    out["transpose"] = unary("Transpose", T.FLOAT, shape=(2, 3), out_shape=(3, 2), perm=[1, 0])
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    out["matmul_init"] = model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                               [vi("x", T.FLOAT, ["N", 4])], [vi("y", T.FLOAT, ["N", 3])], [init("w", w)])
    out["conv"] = model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                        [vi("x", T.FLOAT, [1, 2, 4, 4])], [vi("y", T.FLOAT, [1, 3, 4, 4])],
                        [init("w", rng.standard_normal((3, 2, 3, 3)).astype(np.float32))])
    out["reshape_chain"] = model(
        [helper.make_node("Reshape", ["x", "s"], ["r"]), helper.make_node("Identity", ["r"], ["i"]),
         helper.make_node("Identity", ["i"], ["y"])],
        [vi("x", T.FLOAT, [2, 6])], [vi("y", T.FLOAT, [3, 4])], [init("s", np.array([3, 4], np.int64))])
    out["two_outputs"] = model(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Neg", ["x"], ["n"])],
        [vi("x", T.FLOAT, [2, 3])], [vi("r", T.FLOAT, [2, 3]), vi("n", T.FLOAT, [2, 3])])
    out["concat_dynamic"] = model([helper.make_node("Concat", ["a", "b"], ["y"], axis=0)],
                                  [vi("a", T.FLOAT, ["N", 2]), vi("b", T.FLOAT, ["M", 2])],
                                  [vi("y", T.FLOAT, ["K", 2])])
    out["where_bool"] = model(
        [helper.make_node("Greater", ["a", "b"], ["c"]), helper.make_node("Where", ["c", "a", "b"], ["y"])],
        [vi("a", T.FLOAT, [2, 3]), vi("b", T.FLOAT, [2, 3])], [vi("y", T.FLOAT, [2, 3])])
    # QDQ: quantization parameters read by our reader (per tensor, per axis, no zero point).
    out["qdq"] = model(
        [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
         helper.make_node("Relu", ["xf"], ["r"]),
         helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["y"], axis=1)],
        [vi("x", T.UINT8, [1, 4, 2, 2])], [vi("y", T.INT8, [1, 4, 2, 2])],
        [init("xs", np.float32(0.25)), init("xz", np.uint8(128)),
         init("ys", np.array([0.5, 1, 1.5, 2], np.float32)), init("yz", np.array([1, 0, -1, 3], np.int8))])
    out["qdq_no_zp_neg_axis"] = model(
        [helper.make_node("DequantizeLinear", ["x", "xs"], ["y"], axis=-1)],
        [vi("x", T.INT8, [2, 3])], [vi("y", T.FLOAT, [2, 3])], [init("xs", np.array([0.5, 1, 2], np.float32))])
    cnode = helper.make_node("Constant", [], ["cs"], value=numpy_helper.from_array(np.float32(0.5), "c"))
    out["qdq_constant_scale"] = model(
        [cnode, helper.make_node("DequantizeLinear", ["x", "cs"], ["y"])],
        [vi("x", T.INT8, [2, 3])], [vi("y", T.FLOAT, [2, 3])])
    out["qdq_scale_f16"] = model(
        [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["y"])],
        [vi("x", T.UINT8, [2, 3])], [vi("y", T.FLOAT16, [2, 3])],
        [init("xs", np.float16(0.5)), init("xz", np.uint8(3))], opset=19)
    # External data: weights in weights.bin (4096 pattern bytes beside the model).
    out["external_weights"] = model([helper.make_node("Add", ["x", "w"], ["y"])],
                                    [vi("x", T.UINT8, [4, 8])], [vi("y", T.UINT8, [4, 8])],
                                    [external("w", T.UINT8, [4, 8], "weights.bin", 64, 32)])
    out["external_scale"] = model(
        [helper.make_node("DequantizeLinear", ["x", "xs"], ["y"])],
        [vi("x", T.INT8, [2, 3])], [vi("y", T.FLOAT, [2, 3])],
        [external("xs", T.FLOAT, [], "sub/w.bin", 0, 4)])
    m = unary("Relu", T.FLOAT)
    m.doc_string = "model doc"
    m.graph.doc_string = "graph doc"
    m.graph.input[0].doc_string = "input doc"
    helper.set_model_props(m, {"author": "fuzz", "note": 'quotes " \\ \n \u4e2d\u6587', "bad": "\x01"})
    out["metadata"] = m
    return out


# ---- structural lies ------------------------------------------------------------------------

def lie_models() -> Dict[str, onnx.ModelProto]:
    out: Dict[str, onnx.ModelProto] = {}
    # Host-engine bugs (1)-(4) (fixed; see tests/test_hostile_models.py).
    out["lie_out_dtype_wider"] = binary("Add", T.UINT8, out_elem=T.DOUBLE)
    out["lie_out_dtype_narrower"] = binary("Add", T.FLOAT, out_elem=T.INT8)
    out["lie_out_dtype_dynamic"] = binary("Add", T.UINT8, shape=("N", 3), out_elem=T.DOUBLE)
    out["lie_output_is_input"] = model([helper.make_node("Relu", ["x"], ["r"])], [vi("x", T.FLOAT, [2, 3])],
                                       [vi("x", T.FLOAT, [2, 3]), vi("r", T.FLOAT, [2, 3])])
    out["lie_out_shape_bigger"] = unary("Relu", T.FLOAT, shape=("N", 4), out_shape=(64, 4))
    out["lie_out_shape_smaller"] = unary("Relu", T.FLOAT, shape=(8, 4), out_shape=(1, 4))
    out["lie_dup_output_names"] = model(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["y"])],
        [vi("x", T.FLOAT, [2, 3])], [vi("y", T.FLOAT, [2, 3]), vi("y", T.FLOAT, [2, 3])])
    out["lie_output_listed_twice"] = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", T.FLOAT, [2, 3])],
                                           [vi("y", T.FLOAT, [2, 3]), vi("y", T.FLOAT, [2, 3])])
    # Other lies.
    out["lie_rank_bigger"] = unary("Relu", T.FLOAT, out_shape=(2, 3, 1))
    out["lie_rank_smaller"] = unary("Relu", T.FLOAT, out_shape=(6,))
    out["lie_rank_scalar"] = unary("Relu", T.FLOAT, out_shape=())
    out["lie_input_listed_twice"] = model([helper.make_node("Relu", ["x"], ["y"])],
                                          [vi("x", T.FLOAT, [2, 3]), vi("x", T.FLOAT, [2, 3])],
                                          [vi("y", T.FLOAT, [2, 3])])
    out["lie_input_is_output_no_nodes"] = model([], [vi("x", T.FLOAT, [2, 3])], [vi("x", T.FLOAT, [2, 3])])
    out["lie_output_is_initializer"] = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", T.FLOAT, [2, 3])],
                                             [vi("y", T.FLOAT, [2, 3]), vi("w", T.FLOAT, [2])],
                                             [init("w", np.array([1, 2], np.float32))])
    out["lie_input_is_initializer"] = model([helper.make_node("Add", ["x", "w"], ["y"])],
                                            [vi("x", T.FLOAT, [2]), vi("w", T.FLOAT, [2])],
                                            [vi("y", T.FLOAT, [2])], [init("w", np.array([1, 2], np.float32))])
    for name, dims in {"neg": [-5, 3], "huge": [2 ** 40, 3], "huge2": [2 ** 31, 2 ** 31],
                       "zero": [0, 3], "maxint": [2 ** 63 - 1, 1]}.items():
        out[f"lie_in_dims_{name}"] = unary("Relu", T.FLOAT, shape=dims)
        out[f"lie_out_dims_{name}"] = unary("Relu", T.FLOAT, shape=("N", 3), out_shape=dims)
    m = unary("Relu", T.FLOAT)
    m.graph.output[0].ClearField("type")
    out["lie_out_no_type"] = m
    m = unary("Relu", T.FLOAT)
    m.graph.input[0].ClearField("type")
    out["lie_in_no_type"] = m
    m = unary("Relu", T.FLOAT)
    m.graph.input[0].type.tensor_type.ClearField("shape")
    out["lie_in_no_shape"] = m
    m = unary("Relu", T.FLOAT)
    m.graph.output[0].type.tensor_type.ClearField("shape")
    out["lie_out_no_shape"] = m
    m = unary("Relu", T.FLOAT)
    m.graph.output[0].type.tensor_type.elem_type = 0
    out["lie_out_undefined_type"] = m
    out["lie_unknown_op"] = unary("NoSuchOp", T.FLOAT)
    out["lie_unknown_domain"] = model([helper.make_node("Relu", ["x"], ["y"], domain="no.such")],
                                      [vi("x", T.FLOAT, [2, 3])], [vi("y", T.FLOAT, [2, 3])],
                                      domain_opsets=[("no.such", 1)])
    out["lie_opset_1"] = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", T.FLOAT, [2, 3])],
                               [vi("y", T.FLOAT, [2, 3])], opset=1)
    out["lie_opset_huge"] = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", T.FLOAT, [2, 3])],
                                  [vi("y", T.FLOAT, [2, 3])], opset=2 ** 62)
    m = unary("Relu", T.FLOAT)
    m.functions.append(helper.make_function("my.fn", "F", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                                            [helper.make_opsetid("", 2 ** 62)]))
    out["lie_function_opset_huge"] = m
    out["lie_opset_negative"] = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", T.FLOAT, [2, 3])],
                                      [vi("y", T.FLOAT, [2, 3])], opset=-1)
    m = unary("Relu", T.FLOAT)
    m.doc_string = "d" * 20000
    helper.set_model_props(m, {"k" * 5000: "v" * 5000, "": ""})
    m.graph.input[0].name = "x" * 3000
    m.graph.node[0].input[0] = "x" * 3000
    out["lie_huge_strings"] = m
    out["lie_string_input"] = unary("Identity", T.STRING)
    out["lie_complex_input"] = unary("Identity", T.COMPLEX64)
    out["lie_bfloat16_input"] = unary("Identity", T.BFLOAT16)
    out["lie_int4_input"] = unary("Identity", T.INT4, opset=21)
    m = unary("Relu", T.FLOAT)
    m.graph.input[0].type.CopyFrom(helper.make_sequence_type_proto(helper.make_tensor_type_proto(T.FLOAT, [2])))
    out["lie_sequence_input"] = m
    # Nested subgraphs: If within If within ..., and a Loop.
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [vi("t", T.FLOAT, [2, 3])])
    for depth in range(6):
        els = helper.make_graph([helper.make_node("Neg", ["x"], [f"e{depth}"])], f"else{depth}", [],
                                [vi(f"e{depth}", T.FLOAT, [2, 3])])
        node = helper.make_node("If", ["c"], [f"o{depth}"], then_branch=then, else_branch=els)
        then = helper.make_graph([node], f"then{depth}", [], [vi(f"o{depth}", T.FLOAT, [2, 3])])
    out["nested_if"] = model(list(then.node), [vi("c", T.BOOL, []), vi("x", T.FLOAT, [2, 3])],
                             [vi(then.output[0].name, T.FLOAT, [2, 3])])
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                              helper.make_node("Add", ["acc", "acc"], ["acc_out"])], "body",
                             [vi("i", T.INT64, []), vi("cond_in", T.BOOL, []), vi("acc", T.FLOAT, [2])],
                             [vi("cond_out", T.BOOL, []), vi("acc_out", T.FLOAT, [2])])
    out["loop"] = model([helper.make_node("Loop", ["n", "", "x"], ["y"], body=body)],
                        [vi("x", T.FLOAT, [2])], [vi("y", T.FLOAT, [2])], [init("n", np.int64(3))])
    m = unary("Relu", T.FLOAT)
    sp = helper.make_sparse_tensor(init("v", np.array([1.0], np.float32)), init("i", np.array([1], np.int64)), [4])
    m.graph.sparse_initializer.append(sp)
    out["sparse_initializer"] = m
    m = unary("Relu", T.FLOAT)
    m.graph.initializer.append(helper.make_tensor("s", T.STRING, [2], [b"a", b"\xff"]))
    out["string_initializer"] = m
    # External data refs the reader must refuse or bound.
    for name, (loc, off, length) in {
        "parent": ("../weights.bin", 0, 4), "absolute": ("/etc/hostname", 0, 4), "symlink": ("link.bin", 0, 4),
        "missing": ("nope.bin", 0, 4), "offset_past_end": ("weights.bin", 10 ** 6, 4),
        "length_wrong": ("weights.bin", 0, 3), "offset_huge": ("weights.bin", 2 ** 64 + 1, 4),
        "offset_negative": ("weights.bin", -4, 4), "offset_underscore": ("weights.bin", "1_6", 4),
        "dir": ("sub", 0, 4), "nul": ("weights.bin\0x", 0, 4),
    }.items():
        out[f"ext_scale_{name}"] = model(
            [helper.make_node("DequantizeLinear", ["x", "xs"], ["y"])],
            [vi("x", T.INT8, [2, 3])], [vi("y", T.FLOAT, [2, 3])], [external("xs", T.FLOAT, [], loc, off, length)])
    out["ext_zp_huge_dims"] = model(
        [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["y"])],
        [vi("x", T.INT8, [2, 3])], [vi("y", T.FLOAT, [2, 3])],
        [init("xs", np.float32(1)), external("xz", T.INT8, [2 ** 62, 4], "weights.bin", 0)])
    out["qdq_axis_huge"] = model(
        [helper.make_node("DequantizeLinear", ["x", "xs"], ["y"], axis=2 ** 40)],
        [vi("x", T.INT8, [2, 3])], [vi("y", T.FLOAT, [2, 3])], [init("xs", np.array([1, 2, 3], np.float32))])
    out["qdq_scale_count_lie"] = model(
        [helper.make_node("DequantizeLinear", ["x", "xs"], ["y"], axis=1)],
        [vi("x", T.INT8, [2, 3])], [vi("y", T.FLOAT, [2, 3])],
        [_count_lie()])
    return out


def _count_lie() -> TensorProto:
    t = helper.make_tensor("xs", T.FLOAT, [3], [1.0, 2.0, 3.0])
    t.dims[0] = 5  # dims say 5 values, float_data holds 3
    return t


def raw_seeds(valid: Dict[str, onnx.ModelProto]) -> Dict[str, bytes]:
    """Byte-level oddities: empty, truncated, trailing garbage, groups."""
    relu = valid["relu_dynamic"].SerializeToString()
    return {
        "raw_empty": b"",
        "raw_truncated": relu[: len(relu) // 2],
        "raw_trailing_garbage": relu + b"\xff\xff\xff",
        "raw_group": b"\x0b\x08\x01\x0c" + relu,  # field 1 as a group, skipped
        "raw_deep_groups": b"\x0b" * 40 + b"\x0c" * 40 + relu,
        "raw_graph_twice": relu + relu,  # repeated ModelProto.graph merges
    }


def all_seeds() -> Dict[str, bytes]:
    valid = valid_models()
    seeds = {k: m.SerializeToString() for k, m in {**valid, **lie_models()}.items()}
    seeds.update(raw_seeds(valid))
    return seeds


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"))
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name, data in sorted(all_seeds().items()):
        with open(os.path.join(args.out, name + ".onnx"), "wb") as f:
            f.write(data)
        total += len(data)
    print(f"{len(all_seeds())} seeds, {total} bytes in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
