"""Parallelism on the host: two models in one run() vs one after the other, and N threads
calling run() vs one thread. Measured side by side in one process, in alternating rounds;
each ratio is the median over rounds of the ratio within a round.
Goals (2 cores): two-model run <= 0.6x sequential; 2 threads >= 1.7x one thread's throughput.

    python benchmarks/bench_parallel.py [--rounds 15] [--round-ms 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import _models
import hbm_runtime
from hbm_runtime import HB_HBMRuntime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--round-ms", type=float, default=100.0, help="length of one timed round")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    hbm_runtime.set_host_cores(cores)
    print(f"cpus: {cores}, host cores: {hbm_runtime.host_cores()}")
    path_a, feed = _models.small_cnn("cnn_a")
    path_b, _ = _models.small_cnn("cnn_b")
    # A heavier pair so that per-call overheads do not dominate.
    path_c, feed_mid = _models._conv_net("mid_a", 128, [32, 32, 64, 64], 7)
    path_d, _ = _models._conv_net("mid_b", 128, [32, 32, 64, 64], 7)
    for label, (pa, pb, f) in {"small_cnn": (path_a, path_b, feed), "cnn_128": (path_c, path_d, feed_mid)}.items():
        rt = HB_HBMRuntime([pa, pb])
        a, b = rt.model_names
        both = {a: f, b: f}

        def sequential():
            rt.run(f, model_name=a)
            rt.run(f, model_name=b)

        def parallel():
            rt.run(both)

        warm = _models.per_call_us(sequential, 5)
        calls = max(4, int(args.round_ms * 1e3 / warm))
        _models.per_call_us(parallel, 5)
        med, ratio = _models.paired_rounds({"sequential": sequential, "one run()": parallel}, calls, args.rounds)
        print(f"{label:10s} two models: sequential {med['sequential']:8.1f} us  one run() {med['one run()']:8.1f} us"
              f"  ratio {1 / ratio['one run()']:.2f}x (goal <= 0.60x)")

        def throughput(threads):
            per_thread = max(4, calls // threads)

            def work():
                for _ in range(per_thread):
                    rt.run(f, model_name=a)

            ts = [threading.Thread(target=work) for _ in range(threads)]
            t0 = time.perf_counter()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            return threads * per_thread / (time.perf_counter() - t0)

        throughput(1)
        one, many, ratios = [], [], []
        for _ in range(args.rounds):
            one.append(throughput(1))
            many.append(throughput(cores))
            ratios.append(many[-1] / one[-1])
        print(f"{label:10s} throughput: 1 thread {statistics.median(one):8.0f}/s  {cores} threads "
              f"{statistics.median(many):8.0f}/s  ratio {statistics.median(ratios):.2f}x (goal >= 1.70x)")
        rt.close()


if __name__ == "__main__":
    main()
