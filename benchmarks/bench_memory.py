"""Memory stability: RSS after 100k runs stays within 5 MB of RSS after 1k runs.

    python benchmarks/bench_memory.py [--runs 100000]
"""

from __future__ import annotations

import argparse
import gc

import _models
from hbm_runtime import HB_HBMRuntime


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    args = ap.parse_args()
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
    for i in range(args.runs):
        one(i)
    gc.collect()
    end = rss_mb()
    print(f"RSS after 1k runs {base:.1f} MB, after {args.runs} more {end:.1f} MB: "
          f"growth {end - base:+.2f} MB (goal within 5 MB)")
    rt.close()


if __name__ == "__main__":
    main()
