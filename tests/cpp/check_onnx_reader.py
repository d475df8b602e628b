#!/usr/bin/env python3
"""Checks the dependency-free ONNX reader (src/cpp/engines/openvino/onnx_reader.cpp) against the
onnx Python package: builds tests/cpp/onnx_reader_dump.cpp (or uses the binary given), writes
varied models with onnx.helper, and compares the dump with what onnx reports for each file.

usage: check_onnx_reader.py [DUMP_BINARY] [--sanitize] [--valgrind] [--fuzz N] [--big-mb N]
  --sanitize  build with -fsanitize=address,undefined (ignored when a binary is given)
  --valgrind  run every dump except the big model under valgrind
Exits non-zero on any mismatch.
"""
import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["src/cpp/engines/openvino/onnx_reader.cpp",
           "src/cpp/engines/openvino/onnx_tensor_data.cpp", "src/cpp/core/model_info.cpp",
           "src/cpp/core/dtype.cpp", "tests/cpp/onnx_reader_dump.cpp"]

# ONNX element type -> (our dtype name, element size)
DTYPES = {
    TensorProto.FLOAT: ("F32", 4), TensorProto.UINT8: ("U8", 1), TensorProto.INT8: ("S8", 1),
    TensorProto.UINT16: ("U16", 2), TensorProto.INT16: ("S16", 2), TensorProto.INT32: ("S32", 4),
    TensorProto.INT64: ("S64", 8), TensorProto.BOOL: ("BOOL8", 1),
    TensorProto.FLOAT16: ("F16", 2), TensorProto.DOUBLE: ("F64", 8),
    TensorProto.UINT32: ("U32", 4), TensorProto.UINT64: ("U64", 8),
    TensorProto.UINT4: ("U4", 1), TensorProto.INT4: ("S4", 1),
}
INTEGER = {"S4", "U4", "S8", "U8", "S16", "U16", "S32", "U32", "S64", "U64"}
ZP_TYPES = {TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16,
            TensorProto.INT32, TensorProto.INT4, TensorProto.UINT4}
SCALE_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}


class Unsupported(Exception):
    """The reader must refuse this file; the message must contain str(self)."""


# ---- what the onnx package says about a file ----------------------------------------------

def text(s):
    """protobuf hands out proto2 strings that are not valid UTF-8 as bytes."""
    return s.decode("utf-8", "replace") if isinstance(s, bytes) else s


def expected(path):
    m = onnx.load(path, load_external_data=False)
    g = m.graph
    base_dir = os.path.dirname(os.fspath(path))
    inits, consts, dq, q = {}, {}, {}, {}
    for t in g.initializer:
        inits.setdefault(t.name, t)
    for n in g.node:
        qdq = n.domain in ("", "ai.onnx", "com.microsoft")
        if n.op_type == "DequantizeLinear" and qdq and n.input:
            dq.setdefault(n.input[0], n)
        elif n.op_type == "QuantizeLinear" and qdq and n.output:
            q.setdefault(n.output[0], n)
        elif n.op_type == "Constant" and n.domain in ("", "ai.onnx") and n.output:
            consts.setdefault(n.output[0], n)

    def find_tensor(name):
        if name in inits:
            return inits[name]
        if name in consts:
            for a in consts[name].attribute:
                if a.name == "value" and a.HasField("t"):
                    return a.t
        return None

    def values(t):
        """The tensor as an array; None when its external data cannot be read (the onnx
        package refuses it: missing file, location outside the model's folder, wrong size)."""
        if t.data_location != TensorProto.EXTERNAL:
            return numpy_helper.to_array(t)
        try:
            return numpy_helper.to_array(t, base_dir=base_dir)
        except Exception:
            return None

    def quant(node, rank):
        none = {"type": "NONE", "scale": [], "zero_point": [], "axis": 0}
        if node is None or len(node.input) < 2 or not node.input[1]:
            return none
        s = find_tensor(node.input[1])
        if s is None or s.data_type not in SCALE_TYPES:
            return none
        scale = values(s)
        if scale is None or not scale.size:
            return none
        with np.errstate(over="ignore"):  # a double scale beyond float32 becomes inf
            scale = scale.astype(np.float32).ravel().tolist()
        zp = []
        if len(node.input) > 2 and node.input[2]:
            z = find_tensor(node.input[2])
            if z is None or z.data_type not in ZP_TYPES:
                return none
            zp = values(z)
            if zp is None:
                return none
            zp = zp.astype(np.int64).ravel().tolist()
        axis = 1
        for a in node.attribute:
            if a.name == "axis":
                axis = a.i
        if axis < 0 and rank is not None and axis >= -rank:
            axis += rank  # the usual index when the quantized tensor's rank is known
        return {"type": "SCALE", "scale": scale, "zero_point": zp, "axis": axis}

    def tensor(vi, role, node):
        where = f"{role} '{text(vi.name)}' of '{path}': "
        kind = vi.type.WhichOneof("value")
        if kind not in (None, "tensor_type"):
            raise Unsupported(where + "ONNX ")
        et = vi.type.tensor_type.elem_type
        if et not in DTYPES:
            name = TensorProto.DataType.Name(et) if et in TensorProto.DataType.values() else "UNKNOWN"
            raise Unsupported(f"{where}ONNX element type {name} ({et}) is not supported")
        dtype, size = DTYPES[et]
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else -1
                 for d in vi.type.tensor_type.shape.dim]
        strides, step = [], size
        for d in reversed(shape):
            strides.insert(0, step)
            step = -1 if step < 0 or d < 0 else step * d
        rank_known = vi.type.tensor_type.HasField("shape")  # no shape at all: unknown rank
        rank = len(shape) if rank_known else None
        return {"name": text(vi.name), "desc": text(vi.doc_string), "dtype": dtype, "shape": shape,
                "strides": strides, "rank_known": rank_known,
                "quant": quant(node, rank) if dtype in INTEGER else quant(None, rank)}

    props = m.metadata_props
    file_desc = ("{" + ", ".join(json.dumps(text(p.key), ensure_ascii=False) + ": " +
                                 json.dumps(text(p.value), ensure_ascii=False) for p in props) + "}"
                 if props else "")
    return {"name": "", "file": str(path), "desc": text(m.doc_string or g.doc_string),
            "file_desc": file_desc,
            "inputs": [tensor(vi, "input", dq.get(vi.name)) for vi in g.input
                       if vi.name not in inits],
            "outputs": [tensor(vi, "output", q.get(vi.name)) for vi in g.output]}


def same(a, b):
    """Equality where floats are compared as float32 (the dump prints %.9g)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        x, y = np.float32(a), np.float32(b)
        return x == y or (math.isnan(x) and math.isnan(y))
    return type(a) is type(b) and a == b


# ---- models --------------------------------------------------------------------------------

F, U8, I8 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8
vi = helper.make_tensor_value_info


def model(nodes, inputs, outputs, inits=(), doc="", graph_doc="", props=None, opset=21, ir=10):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits), doc_string=graph_doc)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset),
                                            helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = ir
    m.doc_string = doc
    if props:
        for k, v in props:  # helper.set_model_props takes a dict: no duplicate keys
            e = m.metadata_props.add()
            e.key, e.value = k, v
    return m


def f32(name, values, dims=None, raw=True):
    a = np.asarray(values, dtype=np.float32)
    dims = list(a.shape) if dims is None else dims
    if raw:
        return helper.make_tensor(name, F, dims, a.tobytes(), raw=True)
    return helper.make_tensor(name, F, dims, a.ravel().tolist())


def ints(name, dtype, values, dims=None, raw=True):
    a = np.asarray(values)
    dims = list(a.shape) if dims is None else dims
    if raw:
        np_type = helper.tensor_dtype_to_np_dtype(dtype)
        return helper.make_tensor(name, dtype, dims, a.astype(np_type).tobytes(), raw=True)
    return helper.make_tensor(name, dtype, dims, a.ravel().tolist())


def int4_raw(name, dtype, values):
    nib = [v & 0xF for v in values] + [0] * (len(values) % 2)
    packed = bytes(nib[i] | nib[i + 1] << 4 for i in range(0, len(nib), 2))
    return helper.make_tensor(name, dtype, [len(values)], packed, raw=True)


def varint(v):
    out = bytearray()
    while True:
        out.append(v & 0x7F | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not v:
            return bytes(out)


# Unknown fields of every wire type, a (deprecated) group among them: readers must skip them.
UNKNOWN = (varint(90 << 3 | 0) + varint(2**63) + varint(91 << 3 | 1) + b"8bytes!!" +
           varint(92 << 3 | 2) + varint(3) + b"abc" + varint(93 << 3 | 5) + b"4byt" +
           varint(94 << 3 | 3) + varint(1 << 3 | 0) + varint(7) + varint(95 << 3 | 3) +
           varint(95 << 3 | 4) + varint(94 << 3 | 4))


def node(op, ins, outs, domain="", **attrs):
    return helper.make_node(op, ins, outs, domain=domain, **attrs)


def add_external_cases(tmp, cases, want):
    """Scales and zero points stored outside the model file (TensorProto.external_data)."""
    def save(name, m, folder=tmp, **kw):
        p = folder / f"{name}.onnx"
        onnx.save(m, p, save_as_external_data=True, **kw)
        return p

    def dq(scale, zp, axis=None, shape=(4,)):
        attrs = {} if axis is None else {"axis": axis}
        return model([node("DequantizeLinear", ["x", "s", "zp"], ["y"], **attrs)],
                     [vi("x", U8, list(shape))], [vi("y", F, list(shape))], inits=[scale, zp])

    # every tensor in one file at its own offset
    p = save("external_scale", dq(f32("s", 1.0, []), ints("zp", U8, 3, [])),
             all_tensors_to_one_file=True, location="external_scale.bin", size_threshold=0)
    cases.append(("external_scale", p, want(["inputs", 0, "quant"], {
        "type": "SCALE", "scale": [1.0], "zero_point": [3], "axis": 1})))

    # 300 channels: past the default 1 KiB threshold, so only the scale goes out
    scale = np.linspace(0.001, 3.0, 300, dtype=np.float32)
    p = save("external_per_channel", dq(f32("s", scale), ints("zp", U8, np.arange(300) % 256),
                                        axis=1, shape=(2, 300)),
             all_tensors_to_one_file=False)
    cases.append(("external_per_channel", p, want(["inputs", 0, "quant", "scale"], scale.tolist())))

    # a file per tensor in a subfolder, 4-bit zero points packed in it
    m = model([node("DequantizeLinear", ["x", "s", "zp"], ["y"], axis=0)],
              [vi("x", TensorProto.INT4, [3, 2])], [vi("y", F, [3, 2])],
              inits=[f32("s", [0.5, 1.5, 2.5]), int4_raw("zp", TensorProto.INT4, [-8, 7, -1])])
    for t in m.graph.initializer:
        onnx.external_data_helper.set_external_data(t, f"data/{t.name}.bin")
        (tmp / "data").mkdir(exist_ok=True)
        (tmp / "data" / f"{t.name}.bin").write_bytes(t.raw_data)
        t.ClearField("raw_data")
    p = tmp / "external_subfolder.onnx"
    onnx.save(m, p)
    cases.append(("external_subfolder", p, want(["inputs", 0, "quant", "zero_point"], [-8, 7, -1])))

    def external_by_hand(name, location, data, expect, folder=tmp, **kv):
        """x -> DequantizeLinear(s, zp) with s at `location`, written there unless data is
        None; `expect` is the quant type the reader must report."""
        s = onnx.TensorProto(name="s", data_type=F, dims=[2])
        s.data_location = TensorProto.EXTERNAL
        for k, v in {"location": location, **kv}.items():
            e = s.external_data.add()
            e.key, e.value = k, str(v)
        if data is not None:
            (folder / location).write_bytes(data)
        p = folder / f"{name}.onnx"
        onnx.save(dq(s, ints("zp", U8, [1, 2]), axis=1, shape=(3, 2)), p)
        cases.append((name, p, want(["inputs", 0, "quant", "type"], expect)))

    two = np.array([0.25, 4.0], np.float32).tobytes()
    external_by_hand("external_offset", "packed.bin", b"\0" * 10 + two + b"\0" * 3, "SCALE",
                     offset=10, length=8)
    external_by_hand("external_offset_text", "packed2.bin", b"\0" * 12 + two, "SCALE",
                     offset=" +1_2 ")  # what Python's int() takes, and so the onnx package
    external_by_hand("external_bad_length", "bad_length.bin", two + two, "NONE", length=12)
    external_by_hand("external_bad_offset", "bad_offset.bin", two, "NONE", offset=100)
    external_by_hand("external_bad_negative", "bad_negative.bin", two, "NONE", offset=-1)
    external_by_hand("external_bad_size", "bad_size.bin", two + b"\0", "NONE")  # whole file
    external_by_hand("external_missing", "missing.bin", None, "NONE")
    (tmp / "absolute.bin").write_bytes(two)
    external_by_hand("external_bad_absolute", str(tmp / "absolute.bin"), None, "NONE")
    (tmp / "sub").mkdir()
    (tmp / "escape.bin").write_bytes(two)
    external_by_hand("external_bad_escape", "../escape.bin", None, "NONE", folder=tmp / "sub")
    (tmp / "link_target.bin").write_bytes(two)
    (tmp / "link.bin").symlink_to(tmp / "link_target.bin")
    external_by_hand("external_bad_symlink", "link.bin", None, "NONE")
    (tmp / "linked_dir").symlink_to(tmp / "data")
    external_by_hand("external_bad_symlink_dir", "linked_dir/s.bin", None, "NONE")


def add_scale_type_cases(add, want):
    """Scales of every float type QuantizeLinear/DequantizeLinear accept (float16 and bfloat16
    since opset 19; double for files that use it anyway), raw and in the typed fields, and
    negative axes."""
    f16 = np.array([0.5, 1e-4, 65504.0, 6e-8], np.float16)  # 6e-8: a subnormal
    bf16_bits = [0x3f00, 0x3a83, 0x7f7f, 0x0001]             # 0.5, ~1e-3, max, subnormal
    # rounds; to a subnormal; to infinity; to FLT_MAX (below the halfway point to overflow)
    f64 = np.array([0.1, 1e-40, 3.5e38, float(np.finfo(np.float32).max) + 2.0**102])
    scales = {
        "f16_raw": helper.make_tensor("s", TensorProto.FLOAT16, [4], f16.tobytes(), raw=True),
        "f16_int32_data": helper.make_tensor("s", TensorProto.FLOAT16, [4], f16),
        "bf16_raw": helper.make_tensor("s", TensorProto.BFLOAT16, [4],
                                       np.array(bf16_bits, np.uint16).tobytes(), raw=True),
        "bf16_int32_data": onnx.TensorProto(name="s", data_type=TensorProto.BFLOAT16, dims=[4],
                                            int32_data=bf16_bits),
        "f64_raw": helper.make_tensor("s", TensorProto.DOUBLE, [4], f64.tobytes(), raw=True),
        "f64_double_data": helper.make_tensor("s", TensorProto.DOUBLE, [4], f64.tolist()),
    }
    for name, s in scales.items():
        add(f"scale_{name}", model(
            [node("DequantizeLinear", ["x", "s", "zp"], ["y"], axis=1)],
            [vi("x", I8, [2, 4])], [vi("y", F, [2, 4])],
            inits=[s, ints("zp", I8, [1, -1, 2, -2])], opset=21),
            lambda d: None if d["inputs"][0]["quant"]["type"] == "SCALE" else "not read")

    add("negative_axis", model(
        [node("DequantizeLinear", ["a", "s2", "z2"], ["af"], axis=-3),
         node("DequantizeLinear", ["b", "s2", "z2"], ["bf"], axis=-1),
         node("DequantizeLinear", ["c", "s2", "z2"], ["cf"], axis=-5),  # out of range: as is
         node("DequantizeLinear", ["d", "s2", "z2"], ["df"], axis=-1),  # rank unknown: as is
         node("QuantizeLinear", ["xo", "s2", "z2"], ["q"], axis=-2)],
        [vi("a", U8, [1, 2, 4, 4]), vi("b", U8, ["N", 2]), vi("c", U8, [2, 2, 2, 2]),
         vi("d", U8, None), vi("xo", F, [3, 2, 5])],
        [vi("af", F, [1, 2, 4, 4]), vi("bf", F, ["N", 2]), vi("cf", F, [2, 2, 2, 2]),
         vi("df", F, None), vi("q", U8, [3, 2, 5])],
        inits=[f32("s2", [0.5, 0.25]), ints("z2", U8, [1, 2])]),
        lambda d: None if [t["quant"]["axis"] for t in d["inputs"][:4]] == [1, 1, -5, -1] and
        d["outputs"][4]["quant"]["axis"] == 1 else "axes")


def build_cases(tmp, big_mb):
    """-> list of (name, file, check) where check is None or a function of the dump dict that
    returns an error string for hand-written expectations (on top of the comparison with onnx),
    or (name, file, 'ERROR', substrings) for files that must be refused."""
    cases = []

    def add(name, m, check=None):
        p = tmp / f"{name}.onnx"
        if isinstance(m, bytes):
            p.write_bytes(m)
        else:
            onnx.save(m, p)
        cases.append((name, p, check))
        return p

    def want(path_in_dump, value):
        def check(d):
            cur = d
            for k in path_in_dump:
                cur = cur[k]
            return None if same(cur, value) else f"{path_in_dump}: {cur!r} != {value!r}"
        return check

    add("float_basic", model([node("Relu", ["x"], ["y"])], [vi("x", F, [1, 3, 224, 224])],
                             [vi("y", F, [1, 3, 224, 224])]),
        want(["inputs", 0, "strides"], [602112, 200704, 896, 4]))

    add("nv12", model([node("Cast", ["data_y"], ["fy"], to=F), node("Cast", ["data_uv"], ["fuv"], to=F)],
                      [vi("data_y", U8, [1, 672, 672, 1]), vi("data_uv", U8, [1, 336, 336, 2])],
                      [vi("fy", F, [1, 672, 672, 1]), vi("fuv", F, [1, 336, 336, 2])]),
        want(["inputs", 1], {"name": "data_uv", "desc": "", "dtype": "U8", "shape": [1, 336, 336, 2],
                             "strides": [225792, 672, 2, 1], "rank_known": True,
                             "quant": {"type": "NONE", "scale": [], "zero_point": [], "axis": 0}}))

    neg = vi("neg", F, [2, 3])
    neg.type.tensor_type.shape.dim[0].dim_value = -5  # some exporters mark dynamic dims negative
    add("dynamic", model([node("Identity", ["x"], ["y"])],
                         [vi("x", F, ["N", 3, 4]), vi("mid", F, [2, "h", 4]),
                          vi("unset", TensorProto.INT64, [None, 5]), vi("noshape", F, None),
                          vi("scalar", TensorProto.DOUBLE, []), neg],
                         [vi("y", F, ["N", 3, 4])]),
        lambda d: None if [t["strides"] for t in d["inputs"]] ==
        [[48, 16, 4], [-1, 16, 4], [40, 8], [], [], [12, 4]] and
        [t["rank_known"] for t in d["inputs"]] == [True, True, True, False, True, True]
        else "strides or ranks")

    w = f32("W", np.ones((4, 3)))
    add("initializer_as_input", model([node("MatMul", ["x", "W"], ["y"])],
                                      [vi("x", F, [1, 4]), vi("W", F, [4, 3])], [vi("y", F, [1, 3])],
                                      inits=[w], ir=3, opset=9),
        lambda d: None if [t["name"] for t in d["inputs"]] == ["x"] else "W listed")

    x_doc = vi("x", F, [1])
    x_doc.doc_string = "input \"x\"\nline 2"
    y_doc = vi("y", F, [1])
    y_doc.doc_string = "output ü"
    add("docs_model", model([node("Relu", ["x"], ["y"])], [x_doc], [y_doc],
                            doc="model doc", graph_doc="graph doc"),
        want(["desc"], "model doc"))
    add("docs_graph_only", model([node("Relu", ["x"], ["y"])], [x_doc], [y_doc],
                                 graph_doc="graph doc"), want(["desc"], "graph doc"))

    props = [("author", "someone \"quoted\" \\ back"), ("lines", "a\nb\tc\x01\x1f\x7f"),
             ("unicode", "模型 ✓ 🚀"), ("empty", ""), ("author", "duplicate key kept")]
    add("metadata", model([node("Relu", ["x"], ["y"])], [vi("x", F, [1])], [vi("y", F, [1])],
                          props=props),
        lambda d: None if json.loads(d["file_desc"], object_pairs_hook=list) == props else "json")

    add("qdq_per_tensor", model(
        [node("DequantizeLinear", ["x", "x_scale", "x_zp"], ["xf"]), node("Relu", ["xf"], ["y"])],
        [vi("x", U8, [1, 3, 8, 8])], [vi("y", F, [1, 3, 8, 8])],
        inits=[f32("x_scale", 0.0123, []), ints("x_zp", U8, 128, [])]),
        want(["inputs", 0, "quant"], {"type": "SCALE", "scale": [0.0123], "zero_point": [128], "axis": 1}))

    add("qdq_per_channel_out", model(
        [node("QuantizeLinear", ["x", "s", "zp"], ["q"], axis=1)],
        [vi("x", F, [1, 4, 8, 8])], [vi("q", I8, [1, 4, 8, 8])],
        inits=[f32("s", [0.5, 0.25, 1e-3, 3.0], raw=False), ints("zp", I8, [-128, 0, 5, 127])]),
        want(["outputs", 0, "quant"], {"type": "SCALE", "scale": [0.5, 0.25, 1e-3, 3.0],
                                       "zero_point": [-128, 0, 5, 127], "axis": 1}))

    add("qdq_int32_data", model(  # float_data scale packed, zero point in int32_data
        [node("QuantizeLinear", ["x", "s", "zp"], ["q"], axis=0)],
        [vi("x", F, [3, 2])], [vi("q", U8, [3, 2])],
        inits=[f32("s", [1.0, 2.0, 4.0]), ints("zp", U8, [0, 255, 7], raw=False)]),
        want(["outputs", 0, "quant", "zero_point"], [0, 255, 7]))

    add("zp_absent", model(
        [node("DequantizeLinear", ["a", "s"], ["af"]), node("DequantizeLinear", ["b", "s", ""], ["bf"]),
         node("Add", ["af", "bf"], ["y"])],
        [vi("a", I8, [2]), vi("b", I8, [2])], [vi("y", F, [2])], inits=[f32("s", 0.5, [])]),
        lambda d: None if all(t["quant"]["type"] == "SCALE" and t["quant"]["zero_point"] == []
                              for t in d["inputs"]) else "zp_absent")

    add("const_scale", model(
        [node("Constant", [], ["s"], value=f32("sv", [0.1, 0.2], raw=False)),
         node("Constant", [], ["z"], value=ints("zv", TensorProto.INT16, [-3, 300])),
         node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=0)],
        [vi("x", TensorProto.INT16, [2, 5])], [vi("y", F, [2, 5])]),
        want(["inputs", 0, "quant"], {"type": "SCALE", "scale": [0.1, 0.2], "zero_point": [-3, 300],
                                      "axis": 0}))

    add("computed_scale", model(
        [node("Mul", ["s0", "k"], ["s"]), node("DequantizeLinear", ["x", "s", "zp"], ["y"]),
         node("DequantizeLinear", ["x2", "s0", "zq"], ["y2"])],  # zero point is a graph input
        [vi("x", U8, [4]), vi("x2", U8, [4]), vi("zq", U8, [])], [vi("y", F, [4]), vi("y2", F, [4])],
        inits=[f32("s0", 1.0, []), f32("k", 2.0, []), ints("zp", U8, 1, [])]),
        lambda d: None if all(t["quant"]["type"] == "NONE" for t in d["inputs"]) else "quant")

    add_external_cases(tmp, cases, want)
    add_scale_type_cases(add, want)

    add("domains", model(
        [node("DequantizeLinear", ["a", "sa", "za"], ["af"], domain="com.microsoft"),
         node("DequantizeLinear", ["b", "sa", "zb"], ["bf"], domain="custom.ops"),
         node("DequantizeLinear", ["c", "sa", "zc"], ["cf"]),
         node("DequantizeLinear", ["f", "sa"], ["ff"]),
         node("DequantizeLinear", ["a", "sb"], ["af2"])],  # second consumer: ignored
        [vi("a", TensorProto.UINT16, [3]), vi("b", U8, [3]), vi("c", TensorProto.INT32, [3]),
         vi("f", F, [3])],
        [vi("af", F, [3]), vi("bf", F, [3]), vi("cf", F, [3]), vi("ff", F, [3])],
        inits=[f32("sa", 0.5, []), f32("sb", 9.0, []), ints("za", TensorProto.UINT16, 40000, []),
               ints("zb", U8, 1, []), ints("zc", TensorProto.INT32, [-70000], [1], raw=False)]),
        lambda d: None if [t["quant"]["type"] for t in d["inputs"]] == ["SCALE", "NONE", "SCALE", "NONE"]
        else "domains")

    add("int4", model(
        [node("DequantizeLinear", ["a", "s", "za"], ["af"]),
         node("DequantizeLinear", ["b", "s5", "zb"], ["bf"], axis=1)],
        [vi("a", TensorProto.INT4, [1, 5]), vi("b", TensorProto.UINT4, [1, 5])],
        [vi("af", F, [1, 5]), vi("bf", F, [1, 5])],
        inits=[f32("s", 0.5, []), f32("s5", [1, 2, 3, 4, 5]),
               int4_raw("za", TensorProto.INT4, [-3]),
               helper.make_tensor("zb", TensorProto.UINT4, [5], [1, 15, 3, 0, 9])]),
        want(["inputs", 1, "quant", "zero_point"], [1, 15, 3, 0, 9]))

    add("int4_raw_signed", model(
        [node("DequantizeLinear", ["a", "s", "za"], ["af"], axis=1)],
        [vi("a", TensorProto.INT4, [1, 5])], [vi("af", F, [1, 5])],
        inits=[f32("s", [1, 2, 3, 4, 5]), int4_raw("za", TensorProto.INT4, [1, -2, 3, -8, 7])]),
        want(["inputs", 0, "quant", "zero_point"], [1, -2, 3, -8, 7]))

    add("qdq_out_default_axis", model(
        [node("QuantizeLinear", ["x", "s"], ["q"])], [vi("x", F, ["N", 3])], [vi("q", U8, ["N", 3])],
        inits=[f32("s", 0.25, [])]),
        want(["outputs", 0, "quant"], {"type": "SCALE", "scale": [0.25], "zero_point": [], "axis": 1}))

    # protobuf will not write invalid UTF-8 itself: patch placeholders in the serialized bytes
    bad = model([node("Relu", ["x"], ["y"])], [vi("x", F, [1])], [vi("y", F, [1])],
                props=[("KEY_PLACEHOLDER_", "VALUE_PLACEHOLDER_______")]).SerializeToString()
    bad = bad.replace(b"KEY_PLACEHOLDER_", b"k\xe2\x82z\xff\xc0\xaf\xed\xa0\x80".ljust(16, b"!"))
    bad = bad.replace(b"VALUE_PLACEHOLDER_______",
                      b"\xf0\x9f\x9a\x80\xf0\x9f\x9a\xf4\x90\x80\x80ok\xc3\xbc\x01\xe0\x80\x80".ljust(24, b"!"))
    add("metadata_bad_utf8", bad,
        lambda d: None if "\ufffd" in d["file_desc"] and "\U0001f680" in d["file_desc"] else "fffd")

    # unknown fields before/inside the graph and inside a value info
    m = model([node("QuantizeLinear", ["x", "s"], ["q"])], [vi("x", F, [2])], [vi("q", I8, [2])],
              inits=[f32("s", 2.0, [])], doc="unknown fields")
    out0 = m.graph.output[0].SerializeToString()
    out1 = UNKNOWN + out0 + UNKNOWN
    graph = m.graph.SerializeToString().replace(
        varint(12 << 3 | 2) + varint(len(out0)) + out0, varint(12 << 3 | 2) + varint(len(out1)) + out1)
    graph = UNKNOWN + graph + UNKNOWN
    m.ClearField("graph")
    add("unknown_fields", UNKNOWN + m.SerializeToString() + varint(7 << 3 | 2) + varint(len(graph)) +
        graph + UNKNOWN, want(["outputs", 0, "quant", "scale"], [2.0]))

    all_types = [t for t in DTYPES]
    add("all_dtypes", model([], [vi(f"i{t}", t, [2, 3]) for t in all_types],
                            [vi(f"i{t}", t, [2, 3]) for t in all_types]),
        lambda d: None if [t["dtype"] for t in d["inputs"]] == [DTYPES[t][0] for t in all_types]
        else "dtypes")

    a = model([node("Relu", ["x"], ["y"])], [vi("x", F, [1])], [vi("y", F, [1])], doc="first",
              props=[("k", "1")])
    b = model([node("QuantizeLinear", ["x2", "s"], ["q"])], [vi("x2", F, [2])], [vi("q", I8, [2])],
              inits=[f32("s", 2.0, [])], graph_doc="second graph", props=[("k2", "2")])
    add("merged", a.SerializeToString() + b.SerializeToString())  # protobuf merges the two

    # Files that must be refused: (name, bytes or model, substrings of the error)
    refused = [
        ("string_input", model([], [vi("s", TensorProto.STRING, [1])], [vi("y", F, [1])]),
         ["input 's' of '", "ONNX element type STRING (8) is not supported"]),
        ("bf16_output", model([], [vi("x", F, [1])], [vi("y", TensorProto.BFLOAT16, [1])]),
         ["output 'y' of '", "BFLOAT16 (16)"]),
        ("complex_input", model([], [vi("c", TensorProto.COMPLEX64, [1])], [vi("y", F, [1])]),
         ["input 'c'", "COMPLEX64 (14)"]),
        ("sequence_input", model([], [helper.make_tensor_sequence_value_info("seq", F, [1])],
                                 [vi("y", F, [1])]), ["input 'seq'", "sequence"]),
        ("huge_shape", model([], [vi("x", F, [2**40, 2**40, 16])], [vi("y", F, [1])]),
         ["input 'x'", "is too large"]),
        ("untyped_output", model([], [vi("x", F, [1])], [onnx.ValueInfoProto(name="u")]),
         ["output 'u'", "UNDEFINED (0)"]),
        ("empty_file", b"", ["not an ONNX model"]),
        ("garbage", bytes(random.Random(1).randrange(256) for _ in range(4096)), ["ERROR"]),
        ("text", b"this is not a model\n" * 20, ["ERROR"]),
    ]
    good = (tmp / "qdq_per_channel_out.onnx").read_bytes()
    refused.append(("truncated", good[: len(good) // 2], ["is not a valid ONNX model"]))
    refused.append(("truncated_varint", good[:1] + b"\xff\xff\xff", ["truncated varint"]))
    for name, m, subs in refused:
        p = add(name, m)
        cases[-1] = (name, p, ("ERROR", subs))
    cases.append(("missing_file", tmp / "does_not_exist.onnx", ("ERROR", ["cannot read ONNX model"])))
    (tmp / "a_directory.onnx").mkdir()
    cases.append(("directory", tmp / "a_directory.onnx", ("ERROR", ["is a directory"])))

    if big_mb:
        n = 8
        blobs = [numpy_helper.from_array(np.zeros(big_mb * 2**20 // 4 // n, np.float32), f"w{i}")
                 for i in range(n)]
        add("big", model([node("DequantizeLinear", ["x", "s", "zp"], ["y"])], [vi("x", U8, [4])],
                         [vi("y", F, [4])],
                         inits=blobs + [f32("s", 0.5, []), ints("zp", U8, 9, [])]),
            want(["inputs", 0, "quant", "zero_point"], [9]))
    return cases


# ---- running -------------------------------------------------------------------------------

def run(dump, path, wrap):
    r = subprocess.run(wrap + [str(dump), str(path)], capture_output=True)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def check_case(dump, name, path, check, wrap):
    rc, out, err = run(dump, path, wrap)
    if isinstance(check, tuple):  # must be refused
        subs = check[1]
        if rc != 2 or not err.startswith("ERROR: ") or str(path) not in err or \
                any(s not in err for s in subs if s != "ERROR"):
            return f"rc={rc}, stderr={err.strip()!r}, wanted error with {subs} and the path"
        return None
    try:
        want = expected(path)
    except Unsupported as e:
        return f"onnx says this file must be refused ({e}); check the test" if rc == 0 else None
    if rc != 0:
        return f"rc={rc}: {err.strip()}"
    got = json.loads(out)
    if not same(got, want):
        return f"mismatch:\n  dump: {json.dumps(got)[:2000]}\n  onnx: {json.dumps(want)[:2000]}"
    return check(got) if check else None


def fuzz(dump, files, count, tmp, wrap):
    """Damaged copies of good models: the reader must never crash, and whatever it accepts and
    onnx accepts too must agree."""
    rng = random.Random(1234)
    failures, refused, compared = [], 0, 0
    p = tmp / "fuzz.onnx"
    for i in range(count):
        data = bytearray(rng.choice(files).read_bytes())
        kind = i % 3
        if kind == 0:
            data = data[: rng.randrange(len(data))]
        elif kind == 1:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            at = rng.randrange(len(data))
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        p.write_bytes(bytes(data))
        rc, out, err = run(dump, p, wrap)
        if rc == 2 and err.startswith("ERROR: "):
            refused += 1
            continue
        if rc != 0:
            failures.append(f"fuzz #{i}: rc={rc} {err.strip()[:500]}")
            shutil.copy(p, tmp / f"fuzz_fail_{i}.onnx")
            continue
        try:
            want = expected(p)
        except Exception:  # onnx rejects what we never look at: fine
            continue
        compared += 1
        if not same(json.loads(out), want):
            failures.append(f"fuzz #{i}: accepted but differs from onnx")
            shutil.copy(p, tmp / f"fuzz_fail_{i}.onnx")
    print(f"fuzz: {count} damaged files, {refused} refused, {compared} compared with onnx, "
          f"{len(failures)} failures")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump", nargs="?", help="prebuilt onnx_reader_dump binary")
    ap.add_argument("--sanitize", action="store_true")
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument("--fuzz", type=int, default=300, help="damaged files to try (default 300)")
    ap.add_argument("--big-mb", type=int, default=256, help="size of the big model, 0 to skip")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="onnx_reader_"))
    try:
        if args.dump:
            dump = Path(args.dump).resolve()
        else:
            dump = tmp / "onnx_reader_dump"
            flags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"] \
                if args.sanitize else ["-O2"]
            cmd = [os.environ.get("CXX", "g++"), "-std=c++20", "-Wall", "-Wextra", "-Werror",
                   *flags, f"-I{ROOT / 'src/cpp'}", *[str(ROOT / s) for s in SOURCES], "-o", str(dump)]
            print("building:", " ".join(cmd))
            subprocess.run(cmd, check=True)
        wrap = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full"] if args.valgrind else []

        cases = build_cases(tmp, args.big_mb)
        failures = []
        for name, path, check in cases:
            t0 = time.perf_counter()
            err = check_case(dump, name, path, check, [] if name == "big" else wrap)
            dt = time.perf_counter() - t0
            status = "FAIL" if err else "ok"
            extra = f" ({path.stat().st_size / 2**20:.0f} MB in {dt:.3f} s)" if name == "big" else ""
            print(f"{status:4} {name}{extra}")
            if name == "big" and dt > 5:
                err = err or f"too slow: {dt:.1f} s"
            if err:
                failures.append(f"{name}: {err}")
        good = [p for n, p, c in cases if not isinstance(c, tuple) and n != "big" and p.is_file()]
        failures += fuzz(dump, good, args.fuzz, tmp, wrap)

        print(f"\n{len(cases)} cases, {len(failures)} failures")
        for f in failures:
            print("  " + f)
        return 1 if failures else 0
    finally:
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
