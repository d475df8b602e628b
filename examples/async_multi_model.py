"""Two models in one runtime, several requests in flight each, driven from asyncio.

A "detector" (a small convolutional network with a box head and an objectness head) and a
"classifier" (a small CNN over 32x32 crops) are built with ``onnx.helper`` and loaded into
one ``HB_HBMRuntime``. They share the same cores (virtual cores on a PC, BPU cores on the
board) with different priorities, set with ``set_scheduling_params``: the classifier, the
latency-sensitive one here, at 200 and the detector at 50. Queued work runs by priority,
so when both cores are busy a classifier request waiting in the queue goes before the
detector requests waiting there; one already running is not interrupted (below 254).

Each model is driven by ``--concurrency`` asyncio tasks, each submitting one request at a
time with ``run_async`` (a ``concurrent.futures.Future``, awaited through
``asyncio.wrap_future``): the event loop thread only submits and awaits, the inferences
run on the runtime's worker threads. For every request the script records

- the queueing time the runtime measured, ``result.timings[model]["queued_us"]`` (from
  the submission to the start of work on the model), and the inference time
  (``infer_us``) and core,
- the end-to-end latency seen by the awaiting task (from just before ``run_async`` to
  the moment the await returns),

and prints per model: requests, queueing mean / p50 / p90, inference mean, end-to-end
mean / p50 / p90 / p99 and throughput.

Examples::

    python examples/async_multi_model.py                     # 200 requests per model
    python examples/async_multi_model.py --seconds 10 --concurrency 8
    python examples/async_multi_model.py --requests 20 --json

Request ``i`` of a model uses the input ``request_input(model, i)`` (seeded random
numbers), and each reported result (the best detector anchor, the best class) is that
request's own, so results can be checked against another engine.

Needs numpy, onnx (to build the models) and hbm_runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

import numpy as np

from hbm_runtime import HB_HBMRuntime

DETECTOR = "detector"
CLASSIFIER = "classifier"
#: Scheduling of the two models: higher priority runs first; both may use cores 0 and 1.
PRIORITIES = {CLASSIFIER: 200, DETECTOR: 50}
CORES = {CLASSIFIER: [0, 1], DETECTOR: [0, 1]}

DETECTOR_INPUT, DETECTOR_SHAPE = "image", (1, 3, 256, 256)
CLASSIFIER_INPUT, CLASSIFIER_SHAPE = "crop", (1, 3, 32, 32)
#: The output each request's result is taken from: objectness per anchor, class logits.
RESULT_OUTPUT = {DETECTOR: "objectness", CLASSIFIER: "logits"}
INPUTS = {DETECTOR: (DETECTOR_INPUT, DETECTOR_SHAPE), CLASSIFIER: (CLASSIFIER_INPUT, CLASSIFIER_SHAPE)}
_SEEDS = {DETECTOR: 1_000_000, CLASSIFIER: 2_000_000}


# ---- models ------------------------------------------------------------------------------------


def _save(graph: Any, path: str) -> str:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def build_detector(path: str, seed: int = 11) -> str:
    """``image`` [1, 3, 256, 256] float32 -> 3x3 convolutions with ReLU (16 channels at
    stride 2, 32 at stride 2, 32 at stride 1) -> 1x1 heads: ``boxes`` [1, 4, 64, 64] and
    ``objectness`` [1, 1, 64, 64] (logits). About 65 million multiply-adds."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def w(*shape: int) -> Any:
        return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)

    inits = {"w1": w(16, 3, 3, 3), "b1": w(16, 1)[:, 0], "w2": w(32, 16, 3, 3), "b2": w(32, 1)[:, 0],
             "w3": w(32, 32, 3, 3), "b3": w(32, 1)[:, 0], "wb": w(4, 32, 1, 1), "wo": w(1, 32, 1, 1)}
    conv: Dict[str, Any] = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    nodes = [
        helper.make_node("Conv", [DETECTOR_INPUT, "w1", "b1"], ["c1"], **conv),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], **conv),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("Conv", ["r3", "wb"], ["boxes"], kernel_shape=[1, 1]),
        helper.make_node("Conv", ["r3", "wo"], ["objectness"], kernel_shape=[1, 1]),
    ]
    h, w_ = DETECTOR_SHAPE[2] // 4, DETECTOR_SHAPE[3] // 4
    graph = helper.make_graph(
        nodes, DETECTOR,
        [helper.make_tensor_value_info(DETECTOR_INPUT, TensorProto.FLOAT, list(DETECTOR_SHAPE))],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, h, w_]),
         helper.make_tensor_value_info("objectness", TensorProto.FLOAT, [1, 1, h, w_])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return _save(graph, path)


def build_classifier(path: str, seed: int = 12, classes: int = 10) -> str:
    """``crop`` [1, 3, 32, 32] float32 -> stride-2 3x3 convolution (8 channels, ReLU) ->
    global average pooling -> linear layer -> ``logits`` [1, classes]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = {
        "w1": (rng.standard_normal((8, 3, 3, 3)) / np.sqrt(27)).astype(np.float32),
        "b1": (rng.standard_normal(8) * 0.1).astype(np.float32),
        "fc": (rng.standard_normal((classes, 8)) / np.sqrt(8)).astype(np.float32),
        "fb": (rng.standard_normal(classes) * 0.1).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", [CLASSIFIER_INPUT, "w1", "b1"], ["c1"], kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["feat"]),
        helper.make_node("Gemm", ["feat", "fc", "fb"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, CLASSIFIER,
        [helper.make_tensor_value_info(CLASSIFIER_INPUT, TensorProto.FLOAT, list(CLASSIFIER_SHAPE))],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return _save(graph, path)


def build_models(directory: str) -> List[str]:
    """Writes ``detector.onnx`` and ``classifier.onnx`` (model names: the file stems)."""
    return [build_detector(os.path.join(directory, f"{DETECTOR}.onnx")),
            build_classifier(os.path.join(directory, f"{CLASSIFIER}.onnx"))]


#: Distinct inputs per model; request ``i`` uses input ``i % INPUT_VARIANTS``.
INPUT_VARIANTS = 16
_input_cache: Dict[Any, np.ndarray] = {}


def request_input(model: str, index: int) -> np.ndarray:
    """The input of request ``index`` of ``model``: seeded standard normal float32, one of
    ``INPUT_VARIANTS`` arrays made once (so making inputs does not hold up the event loop)."""
    key = (model, index % INPUT_VARIANTS)
    x = _input_cache.get(key)
    if x is None:
        rng = np.random.default_rng(_SEEDS[model] + key[1])
        x = _input_cache[key] = rng.standard_normal(INPUTS[model][1]).astype(np.float32)
    return x


# ---- driving the runtime -------------------------------------------------------------------------


class Requests:
    """Hands out request indices of one model: ``limit`` of them, or until ``deadline``
    (``time.monotonic()``) with at least one per client."""

    def __init__(self, limit: Optional[int], deadline: Optional[float]) -> None:
        self.limit, self.deadline, self.next = limit, deadline, 0

    def take(self, first: bool) -> Optional[int]:
        if self.limit is not None and self.next >= self.limit:
            return None
        if self.deadline is not None and not first and time.monotonic() >= self.deadline:
            return None
        self.next += 1
        return self.next - 1


async def client(rt: HB_HBMRuntime, model: str, requests: Requests, records: List[Dict[str, Any]]) -> None:
    """Submits one request of ``model`` at a time with run_async and awaits its result."""
    input_name = INPUTS[model][0]
    output_name = RESULT_OUTPUT[model]
    first = True
    while True:
        index = requests.take(first)
        if index is None:
            return
        first = False
        x = request_input(model, index)
        t0 = time.monotonic()
        result = await asyncio.wrap_future(rt.run_async({input_name: x}, model_name=model))
        end_to_end_us = (time.monotonic() - t0) * 1e6
        timing = result.timings[model]
        out = result[model][output_name].reshape(-1)
        best = int(np.argmax(out))
        records.append({
            "request": index,
            "best": best,
            "best_value": float(out[best]),
            "queued_us": timing["queued_us"],
            "infer_us": timing["infer_us"],
            "core": int(timing["core"]),
            "end_to_end_us": end_to_end_us,
        })


def _stats(values: List[float]) -> Dict[str, float]:
    a = np.asarray(values, dtype=np.float64) / 1e3
    return {"mean_ms": float(a.mean()), "p50_ms": float(np.percentile(a, 50)),
            "p90_ms": float(np.percentile(a, 90)), "p99_ms": float(np.percentile(a, 99))}


async def drive(rt: HB_HBMRuntime, requests: Optional[int], seconds: Optional[float],
                concurrency: int) -> Dict[str, Any]:
    deadline = None if seconds is None else time.monotonic() + seconds
    records: Dict[str, List[Dict[str, Any]]] = {m: [] for m in (DETECTOR, CLASSIFIER)}
    tasks = []
    for model in records:
        handed_out = Requests(requests, deadline)
        tasks += [client(rt, model, handed_out, records[model]) for _ in range(concurrency)]
    start = time.monotonic()
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    sched = rt.sched_params
    models = {}
    for model, recs in records.items():
        recs.sort(key=lambda r: r["request"])
        models[model] = {
            "priority": sched[model].priority,
            "bpu_cores": list(sched[model].bpu_cores),
            "requests": len(recs),
            "queued": _stats([r["queued_us"] for r in recs]),
            "infer": _stats([r["infer_us"] for r in recs]),
            "end_to_end": _stats([r["end_to_end_us"] for r in recs]),
            "throughput_per_s": len(recs) / elapsed if elapsed > 0 else 0.0,
            "results": recs,
        }
    return {"concurrency": concurrency, "seconds": elapsed,
            "total_requests": sum(len(r) for r in records.values()), "models": models}


def run(requests: Optional[int], seconds: Optional[float], concurrency: int) -> Dict[str, Any]:
    """Builds the models, loads them into one runtime, sets their scheduling and drives them."""
    with tempfile.TemporaryDirectory(prefix="async_multi_") as tmp:
        with HB_HBMRuntime(build_models(tmp)) as rt:
            rt.set_scheduling_params(priority=PRIORITIES, bpu_cores=CORES)
            for model in rt.model_names:  # warm-up: first-run set-up is not part of the numbers
                rt.run({INPUTS[model][0]: request_input(model, 0)}, model_name=model)
            return asyncio.run(drive(rt, requests, seconds, concurrency))


def print_report(report: Dict[str, Any]) -> None:
    print(f"{report['total_requests']} requests in {report['seconds']:.2f} s, "
          f"{report['concurrency']} in flight per model")
    head = (f"{'model':<11}{'prio':>5}{'requests':>9}  {'queued ms mean/p50/p90':>24}  "
            f"{'infer ms':>8}  {'end-to-end ms mean/p50/p90/p99':>32}  {'req/s':>7}")
    print(head)
    for model, m in report["models"].items():
        q, e = m["queued"], m["end_to_end"]
        print(f"{model:<11}{m['priority']:>5}{m['requests']:>9}  "
              f"{q['mean_ms']:>8.3f}{q['p50_ms']:>8.3f}{q['p90_ms']:>8.3f}  "
              f"{m['infer']['mean_ms']:>8.3f}  "
              f"{e['mean_ms']:>8.3f}{e['p50_ms']:>8.3f}{e['p90_ms']:>8.3f}{e['p99_ms']:>8.3f}  "
              f"{m['throughput_per_s']:>7.1f}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200,
                        help="requests per model (default 200; ignored with --seconds)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="keep submitting for this many seconds instead of --requests")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="requests in flight per model (default 4)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or (args.seconds is not None and args.seconds <= 0):
        parser.error("--requests and --concurrency must be >= 1, --seconds > 0")
    limit: Optional[int] = None if args.seconds is not None else args.requests
    report = run(limit, args.seconds, args.concurrency)
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
