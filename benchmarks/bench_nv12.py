"""hbm_runtime.bgr_to_nv12 vs the numpy + OpenCV conversion NV12 model users write, side by side.

The reference is the RDK model zoo's recipe, in our own words: cv2.cvtColor(BGR2YUV_I420),
then the U and V planes interleaved with a numpy transpose into a fresh NV12 buffer. OpenCV
runs single-threaded (cv2.setNumThreads(1)), as hbm_runtime's conversion is. Contenders, on
random 672x672 and 1920x1080 BGR images:

  zoo        cvtColor + numpy interleave into a new NV12 buffer (the reference)
  ours       hbm_runtime.bgr_to_nv12(image): two new planes
  ours out=  hbm_runtime.bgr_to_nv12(image, out=(y, uv)) into planes whose rows are padded
             to a multiple of 64 bytes, as the input buffers of a BPU model are
  cv2 I420   cvtColor alone (planar I420, not yet NV12): for scale only

Every result is first checked bit for bit against the reference. The contenders then run
interleaved in rounds (machine noise hits each alike); printed: the median and best per-call
times and the median within-round ratio zoo / this. Goal: ours >= 3x faster than zoo.

    python benchmarks/bench_nv12.py [--rounds 21] [--calls 20]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np

import hbm_runtime
from hbm_runtime import bgr_to_nv12

SIZES = ((672, 672), (1080, 1920))  # (height, width)


def zoo_nv12(bgr: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The model zoo's conversion: planar I420 from OpenCV, U and V interleaved by numpy."""
    h, w = bgr.shape[:2]
    n = h * w
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(n * 3 // 2)
    u_then_v = i420[n:].reshape(2, n // 4)
    nv12 = np.zeros_like(i420)
    nv12[:n] = i420[:n]
    nv12[n:] = u_then_v.T.reshape(n // 2)  # U0 V0 U1 V1 ...
    return nv12[:n].reshape(1, h, w, 1), nv12[n:].reshape(1, h // 2, w // 2, 2)


def padded_planes(h: int, w: int, align: int = 64) -> Tuple[np.ndarray, np.ndarray]:
    """Y and UV planes whose rows start every `align` bytes (views into larger arrays)."""
    row = -(-w // align) * align
    y = np.zeros((h, row), np.uint8)[:, :w].reshape(1, h, w, 1)
    uv = np.zeros((h // 2, row), np.uint8)[:, :w].reshape(1, h // 2, w // 2, 2)
    return y, uv


def per_call_ms(fn: Callable[[], object], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e3


def compare(title: str, runners: Dict[str, Callable[[], object]], rounds: int, calls: int) -> None:
    for fn in runners.values():
        fn()  # warm up: first-touch page faults, caches
    times: Dict[str, List[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            times[name].append(per_call_ms(fn, calls))
    base = times["zoo"]
    print(title)
    for name, t in times.items():
        ratio = statistics.median(b / x for b, x in zip(base, t))
        note = "" if name == "zoo" else f"   {ratio:5.1f}x faster than zoo"
        print(f"  {name:10s} {statistics.median(t):7.3f} ms  (best {min(t):7.3f}){note}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--calls", type=int, default=20, help="calls per timing (per round and contender)")
    args = ap.parse_args()
    cv2.setNumThreads(1)  # the reference single-threaded, like ours
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}, "
          f"numpy {np.__version__}, opencv {cv2.__version__} (threads: {cv2.getNumThreads()}), "
          f"hbm_runtime {hbm_runtime.__version__}")
    rng = np.random.default_rng(0)
    for h, w in SIZES:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        want_y, want_uv = zoo_nv12(image)
        y, uv = bgr_to_nv12(image)
        py, puv = padded_planes(h, w)
        bgr_to_nv12(image, out=(py, puv))
        for got_y, got_uv in ((y, uv), (py, puv)):
            assert np.array_equal(got_y, want_y) and np.array_equal(got_uv, want_uv), "results differ"
        compare(f"{w}x{h} BGR -> NV12 (bit-identical results)", {
            "zoo": lambda: zoo_nv12(image),
            "ours": lambda: bgr_to_nv12(image),
            "ours out=": lambda: bgr_to_nv12(image, out=(py, puv)),
            "cv2 I420": lambda: cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420),
        }, args.rounds, args.calls)


if __name__ == "__main__":
    main()
