"""Seeded ONNX models the benchmarks run (generated on the fly into a temp folder), and the
round-by-round comparison they all use."""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_DIR = tempfile.mkdtemp(prefix="hbm-bench-")


def _save(graph, name):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = os.path.join(_DIR, name + ".onnx")
    onnx.save(model, path)
    return path


def _w(rng, *shape):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def tiny_mlp(name="tiny_mlp", dims=(48, 256, 256, 12), seed=1):
    """48-256-256-12 MLP (or `dims`), batch 1."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev = [], [], "x"
    for i in range(3):
        inits += [numpy_helper.from_array(_w(rng, dims[i], dims[i + 1]), f"w{i}"),
                  numpy_helper.from_array(np.zeros(dims[i + 1], np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        prev = f"a{i}"
        if i < 2:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"]))
            prev = f"r{i}"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, dims[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, dims[-1]])], inits)
    return _save(graph, name), {"x": np.random.default_rng(0).standard_normal((1, dims[0])).astype(np.float32)}


def _conv_net(name, size, channels, seed):
    rng = np.random.default_rng(seed)
    nodes, inits, prev, cin = [], [], "image", 3
    for i, cout in enumerate(channels):
        inits += [numpy_helper.from_array(_w(rng, cout, cin, 3, 3), f"c{i}w"),
                  numpy_helper.from_array(np.zeros(cout, np.float32), f"c{i}b")]
        nodes += [helper.make_node("Conv", [prev, f"c{i}w", f"c{i}b"], [f"c{i}"], pads=[1, 1, 1, 1],
                                   strides=[2, 2] if i % 2 == 0 else [1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, cin = f"r{i}", cout
    inits += [numpy_helper.from_array(_w(rng, cin, 10), "fcw")]
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("MatMul", ["f", "fcw"], ["logits"])]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    x = np.random.default_rng(seed).random((1, 3, size, size), dtype=np.float32)
    return _save(graph, name), {"image": x}


def small_cnn(name="small_cnn"):
    """4 conv layers on 64x64 (about 10 MFLOP)."""
    return _conv_net(name, 64, [16, 16, 32, 32], 2)


def mid_cnn(name="mid_cnn"):
    """8 conv layers on 224x224 (about 600 MFLOP)."""
    return _conv_net(name, 224, [32, 32, 64, 64, 128, 128, 256, 256], 3)


def per_call_us(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def paired_rounds(contenders, calls, rounds):
    """Times every contender once per round, back to back, for `rounds` rounds.

    Returns ({name: median us per call}, {name: median over rounds of the first contender's
    time divided by this one's in the same round}). Ratios taken within a round cancel the
    slow drifts of a shared machine that medians taken per contender keep.
    """
    names = list(contenders)
    times = {n: [] for n in names}
    for _ in range(rounds):
        for n in names:
            times[n].append(per_call_us(contenders[n], calls))
    first = times[names[0]]
    medians = {n: statistics.median(times[n]) for n in names}
    ratios = {n: statistics.median(f / t for t, f in zip(times[n], first)) for n in names}
    return medians, ratios
