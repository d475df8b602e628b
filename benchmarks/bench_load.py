"""Model load time: hbm_runtime (host engine) vs onnxruntime's InferenceSession creation.

Every load runs in a fresh process, so each one pays what a new program pays (OpenVINO's
libraries and plugin are loaded by the first model of a process; onnxruntime's library by
`import onnxruntime`, which is not timed, nor is `import hbm_runtime`). Contenders, in
alternating rounds on the same files:

  onnxruntime   InferenceSession(path) with one intra-op thread, as in bench_latency.py
  uncached      HB_HBMRuntime(path) without HBM_RUNTIME_CACHE_DIR
  cold          HBM_RUNTIME_CACHE_DIR set to an empty directory (compiles and writes the cache)
  warm          HBM_RUNTIME_CACHE_DIR populated by the earlier process of the same round
  warm, 2nd     warm, but a tiny model was loaded first in the same process: what a model
                costs once OpenVINO's per-process start-up is paid

Prints medians of wall and CPU time (all threads) per contender and, per contender, the median
over rounds of its time divided by onnxruntime's in the same round. CPU time is given because
wall time on a shared machine moves with the load of others. Goal: warm <= 1.0x onnxruntime.

    python benchmarks/bench_load.py [--rounds 5] [--big]
    python benchmarks/bench_load.py --floor     # ours vs OpenVINO's own warm import, in-process
    python benchmarks/bench_load.py [--floor] MODEL.onnx...   # your own files instead

With several files of your own, a last case loads them all at once: one HB_HBMRuntime of the
list (the host engine compiles them side by side, one per core) against one onnxruntime
session per file, created one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import _models

CHILD = r"""
import json, os, resource, sys, time
kind, paths = sys.argv[1], sys.argv[2].split(os.pathsep)
cpu = lambda: (lambda r: r.ru_utime + r.ru_stime)(resource.getrusage(resource.RUSAGE_SELF))
if kind == "onnxruntime":
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    load = lambda p: ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
else:
    from hbm_runtime import HB_HBMRuntime
    load = HB_HBMRuntime
    if len(sys.argv) > 3:
        first = load(sys.argv[3])
c0, t0 = cpu(), time.perf_counter()
if kind == "onnxruntime":
    models = [load(p) for p in paths]  # one session per file, one after the other
else:
    model = load(paths[0] if len(paths) == 1 else paths)  # several files: one runtime
t1, c1 = time.perf_counter(), cpu()
print(json.dumps({"wall_ms": (t1 - t0) * 1e3, "cpu_ms": (c1 - c0) * 1e3}))
"""

CONTENDERS = ["onnxruntime", "uncached", "cold", "warm", "warm, 2nd"]

# --floor: in one process that has loaded everything once, the warm-cache load of a model by
# hbm_runtime next to OpenVINO's own import of the same cache entry (its Python API, the same
# compile properties) and onnxruntime's session creation, in interleaved rounds.
FLOOR_CHILD = r"""
import json, statistics, sys, tempfile, time, os
path, rounds = sys.argv[1], int(sys.argv[2])
import onnxruntime as ort, openvino as ov
os.environ["HBM_RUNTIME_CACHE_DIR"] = tempfile.mkdtemp()
from hbm_runtime import HB_HBMRuntime
so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
core = ov.Core()
props = {"CACHE_DIR": tempfile.mkdtemp(), "INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": "1",
         "INFERENCE_NUM_THREADS": "1", "ENABLE_CPU_PINNING": "NO"}
loads = {"onnxruntime": lambda: ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]),
         "hbm_runtime warm": lambda: HB_HBMRuntime(path).close(),
         "openvino warm": lambda: core.compile_model(path, "CPU", props)}
for f in loads.values():
    f()
times = {k: [] for k in loads}
for _ in range(rounds):
    for k, f in loads.items():
        t0 = time.perf_counter(); f(); times[k].append((time.perf_counter() - t0) * 1e3)
print(json.dumps({k: statistics.median(v) for k, v in times.items()}))
"""


def conv_net(name, size, channels, seed):
    """A plain conv stack (3x3 convs, stride 2 every other layer) with a classifier head."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev, cin = [], [], "image", 3
    for i, cout in enumerate(channels):
        w = (rng.standard_normal((cout, cin, 3, 3)) / np.sqrt(cin * 9)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"c{i}w"), numpy_helper.from_array(np.zeros(cout, np.float32), f"c{i}b")]
        nodes += [helper.make_node("Conv", [prev, f"c{i}w", f"c{i}b"], [f"c{i}"], pads=[1, 1, 1, 1],
                                   strides=[2, 2] if i % 2 == 0 else [1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, cin = f"r{i}", cout
    inits.append(numpy_helper.from_array((rng.standard_normal((cin, 10)) / np.sqrt(cin)).astype(np.float32), "fcw"))
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("MatMul", ["f", "fcw"], ["logits"])]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    return _save(graph, name)


def matmul_chain(name, dim=2048, layers=4, seed=5):
    """layers MatMuls of dim x dim float32 weights (4 x 2048 x 2048: 64 MB)."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array((rng.standard_normal((dim, dim)) / np.sqrt(dim)).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        prev = f"m{i}"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, dim])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, dim])], inits)
    return _save(graph, name)


def _save(graph, name):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = os.path.join(_models._DIR, name + ".onnx")
    onnx.save(model, path)
    return path


def load_once(kind, path, cache_dir=None, first=None):
    env = dict(os.environ)
    env.pop("HBM_RUNTIME_CACHE_DIR", None)
    if cache_dir:
        env["HBM_RUNTIME_CACHE_DIR"] = cache_dir
    args = [sys.executable, "-c", CHILD, kind, path] + ([first] if first else [])
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} load of {path} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--big", action="store_true", help="also the 64 MB MatMul chain")
    ap.add_argument("--floor", action="store_true",
                    help="only: warm loads inside one process, ours next to OpenVINO's own import")
    ap.add_argument("files", nargs="*", metavar="MODEL.onnx",
                    help="time these files instead of the generated models")
    args = ap.parse_args()
    own = {os.path.basename(f): os.path.abspath(f) for f in args.files}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}")
    tiny, _ = _models.tiny_mlp("load_tiny")
    if args.floor:
        floor_cases = own or {
            "small_cnn (68 KB)": _models.small_cnn("load_small")[0],
            "ocr-size cnn (4.7 MB)": conv_net("load_ocr", 224, [32, 32, 64, 64, 128, 128, 256, 256], 11)}
        for label, path in floor_cases.items():
            proc = subprocess.run([sys.executable, "-c", FLOOR_CHILD, path, str(10 * args.rounds)],
                                  capture_output=True, text=True, timeout=900, check=True)
            med = json.loads(proc.stdout.strip().splitlines()[-1])
            ort_ms = med["onnxruntime"]
            print(f"{label}, warm process, median of {10 * args.rounds}: " +
                  "  ".join(f"{k} {v:.1f} ms ({v / ort_ms:.1f}x)" for k, v in med.items()))
        return
    cases = own or {
        "small_cnn (68 KB)": _models.small_cnn("load_small")[0],
        "ocr-size cnn (4.7 MB)": conv_net("load_ocr", 224, [32, 32, 64, 64, 128, 128, 256, 256], 11),
        "large cnn (19 MB)": conv_net("load_large", 224, [64, 64, 128, 128, 256, 256, 512, 512], 12),
    }
    if len(own) > 1:
        cases[f"all {len(own)} at once"] = os.pathsep.join(own.values())
    if args.big and not own:
        cases["matmul chain (64 MB)"] = matmul_chain("load_big")
    root = tempfile.mkdtemp(prefix="hbm-bench-cache-")
    try:
        for label, path in cases.items():
            times = {c: {"wall_ms": [], "cpu_ms": []} for c in CONTENDERS}
            ratios = {c: {"wall_ms": [], "cpu_ms": []} for c in CONTENDERS}
            for r in range(args.rounds):
                cache = os.path.join(root, f"{label[:5]}-{r}")
                got = {
                    "onnxruntime": load_once("onnxruntime", path),
                    "uncached": load_once("hbm", path),
                    "cold": load_once("hbm", path, cache),
                    "warm": load_once("hbm", path, cache),
                    "warm, 2nd": load_once("hbm", path, cache, first=tiny),
                }
                for c, t in got.items():
                    for k in ("wall_ms", "cpu_ms"):
                        times[c][k].append(t[k])
                        ratios[c][k].append(t[k] / got["onnxruntime"][k])
                shutil.rmtree(cache, ignore_errors=True)
            print(f"\n{label}  ({args.rounds} rounds, a fresh process per load)")
            print(f"  {'':12s} {'wall ms':>9s} {'cpu ms':>9s}   {'wall/ort':>8s} {'cpu/ort':>8s}")
            for c in CONTENDERS:
                med = {k: statistics.median(v) for k, v in times[c].items()}
                rat = {k: statistics.median(v) for k, v in ratios[c].items()}
                goal = "  (goal <= 1.0x)" if c == "warm" else ""
                print(f"  {c:12s} {med['wall_ms']:9.1f} {med['cpu_ms']:9.1f}   {rat['wall_ms']:7.2f}x {rat['cpu_ms']:7.2f}x{goal}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
