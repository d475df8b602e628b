"""Memory: what a model costs, and that it stays put.

1. RSS added by loading and running once a model with 64 MB of weights (4 MatMuls of
   2048x2048 float32), hbm_runtime vs onnxruntime, each in its own process (measured after the
   imports); hbm_runtime without the cache and loading from a cache populated by an earlier
   process (HBM_RUNTIME_CACHE_DIR). Then the RSS each extra calling thread adds when 2, 3 and 4
   threads run the model at once (host cores set to 4, so that up to 4 run in parallel).
   Goals: <= 1.2x onnxruntime's RSS for one model; <= 10% of the weights per extra thread.
2. Stability: RSS after 100k runs stays within 5 MB of RSS after 1k runs.

    python benchmarks/bench_memory.py [--runs 100000] [--skip-rss] [--skip-stability]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import _models

WEIGHTS_MB = 64.0

# Prints one JSON line: RSS added by load + one run (from after the import, and from before it:
# onnxruntime loads its library at import, hbm_runtime loads OpenVINO's with the first model),
# then after 2, 3 and 4 threads at once.
RSS_CHILD = r"""
import gc, json, sys, threading
import numpy as np
kind, path = sys.argv[1], sys.argv[2]

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024

x = np.random.default_rng(0).standard_normal((1, 2048)).astype(np.float32)
gc.collect()
start = rss_mb()
if kind == "onnxruntime":
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    gc.collect()
    base = rss_mb()
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    run = lambda: sess.run(None, {"x": x})
else:
    import hbm_runtime
    hbm_runtime.set_host_cores(4)
    gc.collect()
    base = rss_mb()
    rt = hbm_runtime.HB_HBMRuntime(path)
    run = lambda: rt.run(x)
run()
one = rss_mb()
after = {}
for n in (2, 3, 4):
    barrier = threading.Barrier(n)
    def work():
        for _ in range(10):
            barrier.wait()
            run()
    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after[n] = rss_mb()
print(json.dumps({"one": one - base, "with_import": one - start, "threads": {n: after[n] - one for n in after}}))
"""


def matmul_model():
    rng = np.random.default_rng(5)
    nodes, inits, prev = [], [], "x"
    for i in range(4):
        inits.append(numpy_helper.from_array((rng.standard_normal((2048, 2048)) / 45.0).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        prev = f"m{i}"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, "weights64", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2048])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2048])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = os.path.join(_models._DIR, "weights64.onnx")
    onnx.save(model, path)
    return path


def rss_child(kind, path, cache_dir=None):
    env = dict(os.environ)
    env.pop("HBM_RUNTIME_CACHE_DIR", None)
    if cache_dir:
        env["HBM_RUNTIME_CACHE_DIR"] = cache_dir
    proc = subprocess.run([sys.executable, "-c", RSS_CHILD, kind, path], env=env, capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rss_comparison():
    path = matmul_model()
    cache = tempfile.mkdtemp(prefix="hbm-bench-cache-")
    try:
        results = {"onnxruntime": rss_child("onnxruntime", path), "hbm_runtime": rss_child("hbm", path)}
        rss_child("hbm", path, cache)  # populates the cache
        results["hbm_runtime, cache"] = rss_child("hbm", path, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    ort = results["onnxruntime"]
    print(f"model with {WEIGHTS_MB:.0f} MB of weights, each contender in a fresh process: RSS added by load + "
          "one run (after the import; in brackets from before it), and per extra thread running at once")
    for name, r in results.items():
        per = {int(n): v / (int(n) - 1) for n, v in r["threads"].items()}
        extra = "  ".join(f"{n} threads {per[n]:+5.1f} MB/extra ({100 * per[n] / WEIGHTS_MB:+3.0f}%)" for n in sorted(per))
        ratio = (f"{r['one'] / ort['one']:.2f}x [{r['with_import'] / ort['with_import']:.2f}x]"
                 if name != "onnxruntime" else "")
        print(f"  {name:20s} one model {r['one']:6.1f} MB [{r['with_import']:6.1f}] {ratio:13s} | {extra}")
    print("  goals: one model <= 1.2x onnxruntime; <= 10% of the weights per extra thread")


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stability(runs):
    from hbm_runtime import HB_HBMRuntime

    path, feed = _models.tiny_mlp()
    path2, _ = _models.tiny_mlp("tiny_mlp_b")
    rt = HB_HBMRuntime([path, path2])
    x = feed["x"]
    names = rt.model_names
    both = {n: feed for n in names}

    def one(i):
        if i % 4 == 0:
            rt.run(both)
        elif i % 4 == 1:
            rt.run_async(x, model_name=names[0]).result()
        else:
            keep = rt.run(x, model_name=names[1])  # noqa: F841  (held across the next call)

    for i in range(1000):
        one(i)
    gc.collect()
    base = rss_mb()
    for i in range(runs):
        one(i)
    gc.collect()
    end = rss_mb()
    print(f"RSS after 1k runs {base:.1f} MB, after {runs} more {end:.1f} MB: "
          f"growth {end - base:+.2f} MB (goal within 5 MB)")
    rt.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--skip-rss", action="store_true", help="skip the RSS comparison with onnxruntime")
    ap.add_argument("--skip-stability", action="store_true", help="skip the 100k-run stability check")
    args = ap.parse_args()
    if not args.skip_rss:
        rss_comparison()
    if not args.skip_stability:
        stability(args.runs)


if __name__ == "__main__":
    main()
