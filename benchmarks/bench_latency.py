"""Per-call latency: hbm_runtime vs onnxruntime (1 intra-op thread) vs OpenVINO's Python API.

All three run the same .onnx file on the CPU, in one process, interleaved in rounds so that
machine noise hits each alike. Prints the median per-call times and the median over rounds
of the ratio within each round.
Goals: <= 0.8x onnxruntime on the tiny MLP; <= 1.05x raw OpenVINO on the mid-size model.

    python benchmarks/bench_latency.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import onnxruntime as ort
import openvino as ov

import _models
from hbm_runtime import HB_HBMRuntime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    core = ov.Core()
    for build, calls in ((_models.tiny_mlp, 2000), (_models.small_cnn, 300), (_models.mid_cnn, 8)):
        path, feed = build()
        name = list(feed)[0]
        x = feed[name]
        rt = HB_HBMRuntime(path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        compiled = core.compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": "1",
                                                    "INFERENCE_NUM_THREADS": "1"})
        req = compiled.create_infer_request()
        ref = sess.run(None, feed)[0]
        ours = list(rt.run(x).values())[0]
        assert np.allclose(list(ours.values())[0], ref, rtol=1e-4, atol=1e-4)
        runners = {
            "hbm_runtime": lambda: rt.run(x),
            "onnxruntime": lambda: sess.run(None, feed),
            "openvino": lambda: req.infer({0: x}),
        }
        for fn in runners.values():
            _models.per_call_us(fn, max(calls // 10, 2))  # warm up
        med, ratio = _models.paired_rounds(runners, calls, args.rounds)
        print(f"{build.__name__:10s} " + "  ".join(f"{k} {v:9.1f} us" for k, v in med.items())
              + f"  | ours/ort {ratio['onnxruntime']:.2f}x"
              + f"  ours/openvino {ratio['openvino']:.2f}x")
        rt.close()


if __name__ == "__main__":
    main()
