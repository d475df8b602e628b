"""hbm_runtime.dequantize / quantize vs the numpy expressions users write, side by side.

A YOLO-sized output, 1x84x84x255 int32 (1.8 M elements): dequantized per tensor, per channel
along the last axis, and from a padded view (rows of 255 in rows of 256, as BPU outputs
come); and the float32 tensor of the same size quantized to int8. Each result is first
checked bit for bit against the float32 reference; then the contenders run interleaved in
rounds (machine noise hits each alike); printed: the median and best per-call times and the
median within-round ratio numpy / ours. Goal: dequantize >= 3x faster than numpy.

    python benchmarks/bench_quantize.py [--rounds 31] [--calls 5] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Callable, Dict, List

import numpy as np

import hbm_runtime
from hbm_runtime import dequantize, quantize

SHAPE = (1, 84, 84, 255)


CLOCK: Callable[[], float] = time.perf_counter


def _per_call_ms(fn: Callable[[], object], calls: int) -> float:
    t0 = CLOCK()
    for _ in range(calls):
        fn()
    return (CLOCK() - t0) / calls * 1e3


def _compare(title: str, runners: Dict[str, Callable[[], object]], rounds: int, calls: int) -> None:
    """Per contender: median and best per-call time over the rounds; (Nx): the median over
    rounds of numpy's time divided by this one's in the same round (a ratio taken within a
    round cancels the slow drifts of a shared machine)."""
    for fn in runners.values():
        fn()  # warm up (first-touch page faults, caches)
    times: Dict[str, List[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            times[name].append(_per_call_ms(fn, calls))
    base = times["numpy"]
    parts = []
    for k, v in times.items():
        part = f"{k} {statistics.median(v):6.3f} ms (best {min(v):6.3f})"
        if k != "numpy":
            part += f" {statistics.median(b / t for b, t in zip(base, v)):4.1f}x"
        parts.append(part)
    print(f"{title:44s} " + "  ".join(parts))


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    width = {1: np.uint8, 2: np.uint16, 4: np.uint32}[a.dtype.itemsize]
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        np.ascontiguousarray(a).view(width), np.ascontiguousarray(b).view(width))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: this thread's CPU time (everything runs on it), steadier than "
                         "wall time on a loaded machine")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}, "
          f"numpy {np.__version__}, hbm_runtime {hbm_runtime.__version__}")
    print(f"tensor {SHAPE}; {args.rounds} rounds x {args.calls} calls, {args.clock} clock; "
          "Nx = numpy time / ours")
    rng = np.random.default_rng(0)
    padded = rng.integers(-2**20, 2**20, SHAPE[:-1] + (256,), dtype=np.int32)
    q_pad = padded[..., :255]
    q = np.ascontiguousarray(q_pad)
    s1, z1 = np.float32(0.0123), np.int32(-3)
    sc = rng.uniform(1e-4, 1e-2, SHAPE[-1]).astype(np.float32)
    zc = rng.integers(-8, 8, SHAPE[-1]).astype(np.int32)
    zc_f = zc.astype(np.float32)
    out = np.empty(SHAPE, np.float32)

    # numpy: what users write, kept in float32 (a float64 intermediate would be slower still)
    def np_tensor(a: np.ndarray) -> np.ndarray:
        return (a.astype(np.float32) - np.float32(z1)) * s1

    def np_channel(a: np.ndarray) -> np.ndarray:
        return (a.astype(np.float32) - zc_f) * sc

    assert _same_bits(dequantize(q, s1, z1), np_tensor(q))
    assert _same_bits(dequantize(q, sc, zc, -1), np_channel(q))
    assert _same_bits(dequantize(q_pad, sc, zc, -1), np_channel(q_pad))

    _compare("dequantize int32, per tensor", {
        "numpy": lambda: np_tensor(q),
        "ours": lambda: dequantize(q, s1, z1),
        "ours out=": lambda: dequantize(q, s1, z1, out=out),
    }, args.rounds, args.calls)
    _compare("dequantize int32, per channel (axis -1)", {
        "numpy": lambda: np_channel(q),
        "ours": lambda: dequantize(q, sc, zc, -1),
        "ours out=": lambda: dequantize(q, sc, zc, -1, out=out),
    }, args.rounds, args.calls)
    _compare("dequantize int32, padded rows, per tensor", {
        "numpy": lambda: np_tensor(q_pad),
        "ours": lambda: dequantize(q_pad, s1, z1),
    }, args.rounds, args.calls)
    _compare("dequantize int32, padded rows, per channel", {
        "numpy": lambda: np_channel(q_pad),
        "ours": lambda: dequantize(q_pad, sc, zc, -1),
    }, args.rounds, args.calls)

    # The expression as it is usually written with a tensor's QuantParams: its zero_point is an
    # int32 array, so numpy computes (and returns) float64; ours returns float32.
    qp = hbm_runtime.QuantParams(scale=[s1], zero_point=[z1], quant_type=hbm_runtime.hbDNNQuantiType.SCALE)
    _compare("dequantize int32, per tensor, with QuantParams arrays (numpy promotes to float64)", {
        "numpy": lambda: (q.astype(np.float32) - qp.zero_point) * qp.scale,
        "ours": lambda: qp.dequantize(q),
    }, args.rounds, args.calls)

    # The floor for any single pass: copying 4-byte elements between arrays of this size.
    f32 = q.view(np.float32)
    _compare("(floor: float32 copy, same bytes moved)", {
        "numpy": lambda: np.copyto(out, f32),
    }, args.rounds, args.calls)

    x = dequantize(q, sc, zc, -1) * np.float32(30)  # spans and overflows int8's range
    qs, qz = np.float32(0.05), 3
    qsc = (sc * np.float32(30)).astype(np.float32)
    qzc = rng.integers(-5, 5, SHAPE[-1]).astype(np.int32)

    def np_quantize(a: np.ndarray, s: object, z: object) -> np.ndarray:
        return np.clip(np.rint(a / s) + z, -128, 127).astype(np.int8)

    assert _same_bits(quantize(x, qs, qz), np_quantize(x, qs, np.float32(qz)))
    assert _same_bits(quantize(x, qsc, qzc, -1), np_quantize(x, qsc, qzc.astype(np.float32)))
    out8 = np.empty(SHAPE, np.int8)
    _compare("quantize float32 -> int8, per tensor", {
        "numpy": lambda: np_quantize(x, qs, np.float32(qz)),
        "ours": lambda: quantize(x, qs, qz),
        "ours out=": lambda: quantize(x, qs, qz, out=out8),
    }, args.rounds, args.calls)
    _compare("quantize float32 -> int8, per channel", {
        "numpy": lambda: np_quantize(x, qsc, qzc.astype(np.float32)),
        "ours": lambda: quantize(x, qsc, qzc, -1),
    }, args.rounds, args.calls)
    _compare("quantize float32 -> int32, per tensor", {
        "numpy": lambda: np.clip(np.rint(x / qs).astype(np.float64) + qz, -2**31, 2**31 - 1).astype(np.int32),
        "ours": lambda: quantize(x, qs, qz, dtype=np.int32),
    }, args.rounds, args.calls)


if __name__ == "__main__":
    main()
