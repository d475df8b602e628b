"""Soak test: mixed models, many threads, sync and async runs, cancellations, close/reopen,
results dropped while in flight, scheduling changes; watches RSS, fds and OS threads.

    python benchmarks/soak.py --seconds 120            # what .ci/run does
    python benchmarks/soak.py --seconds 3600 --json    # the README's one-hour figure

Models: host .onnx models generated here with onnx.helper (a tiny MLP, a small CNN, a
dynamic-batch model) and, when the UCP test double can be built (cmake + a C++ compiler;
tests/ucp_support.build_double(10)), the double's small .hbm models (multi.hbm, second.hbm,
square_nv12.hbm; its lanenet256x512.hbm computes for seconds per run) with a small per-task
latency so that BPU work is really in flight. ``--no-hbm`` skips them.

Every ``--report-every`` seconds one line: RSS (VmRSS), open fds, OS threads, runs so far,
expected exceptions (RuntimeClosedError / CancelledError on cancelled or closed work) and
unexpected ones. After ``--warmup`` seconds the first sample is the baseline; from then on
the run fails (exit 1, with a message saying which bound) as soon as

  * RSS grows more than ``--rss-mib`` (64) MiB over the baseline,
  * open fds exceed the baseline + ``--fd-slack`` (8),
  * OS threads exceed the baseline + ``--thread-slack`` (16), or ``--thread-cap`` when given.
    The runtime's own threads are a fixed set (one worker and at most one preemption lane per
    host core, 2 completion threads, at most 8 device-wait threads, one BPU reaper); the rest
    belong to OpenVINO (per compiled model), the BPU test double and this script, and change
    with the runtimes open at the moment, not with the number of calls,

or any unexpected exception has appeared (in a worker, a future, a completion callback
through sys.unraisablehook, or a thread through threading.excepthook; those of the warm-up
count too: they fail the run at the baseline sample, so that the message also names every
other bound broken by then). The last line is a summary (a JSON object with --json, where
every sample is a JSON line too).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import json
import os
import random
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

import _models  # noqa: E402  (benchmarks/_models.py)
import hbm_runtime  # noqa: E402
from hbm_runtime import HB_HBMRuntime, RuntimeClosedError  # noqa: E402

Feeds = Callable[[random.Random], Dict[str, np.ndarray]]


# ---- models ------------------------------------------------------------------------------------


def _save(graph: onnx.GraphProto, path: Path) -> str:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


_w = _models._w


def soak_mlp(folder: Path) -> str:
    """x [1, 32] -> 64 -> 64 -> y [1, 10]."""
    path, _ = _models.tiny_mlp("soak_mlp", dims=(32, 64, 64, 10), seed=11)
    return path


def soak_cnn(folder: Path) -> str:
    """image [1, 3, 32, 32] -> 3 conv+relu -> global pool -> logits [1, 10]."""
    rng = np.random.default_rng(12)
    nodes, inits, prev, cin = [], [], "image", 3
    for i, cout in enumerate([8, 16, 16]):
        inits += [numpy_helper.from_array(_w(rng, cout, cin, 3, 3), f"c{i}w"),
                  numpy_helper.from_array(np.zeros(cout, np.float32), f"c{i}b")]
        nodes += [helper.make_node("Conv", [prev, f"c{i}w", f"c{i}b"], [f"c{i}"], pads=[1, 1, 1, 1],
                                   strides=[2, 2]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, cin = f"r{i}", cout
    inits.append(numpy_helper.from_array(_w(rng, cin, 10), "fcw"))
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("MatMul", ["f", "fcw"], ["logits"])]
    graph = helper.make_graph(nodes, "soak_cnn",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    return _save(graph, folder / "soak_cnn.onnx")


def soak_dyn(folder: Path) -> str:
    """x ['N', 6] -> y ['N', 4] = tanh(x @ W): a new input shape every few runs."""
    w = np.random.default_rng(13).standard_normal((6, 4)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Tanh", ["m"], ["y"])]
    graph = helper.make_graph(nodes, "soak_dyn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                              [numpy_helper.from_array(w, "w")])
    return _save(graph, folder / "soak_dyn.onnx")


def soak_wide(folder: Path) -> str:
    """x [1, 1024] -> y [1, 1100]: 4.5 MB of weights, over the size from which the host
    engine shares one multi-stream compiled model between calling threads."""
    w = np.random.default_rng(14).standard_normal((1024, 1100)).astype(np.float32) / 32
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "soak_wide",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1024])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1100])],
                              [numpy_helper.from_array(w, "w")])
    return _save(graph, folder / "soak_wide.onnx")


def onnx_models(folder: Path) -> Dict[str, Any]:
    files = {"soak_mlp": soak_mlp(folder), "soak_cnn": soak_cnn(folder), "soak_dyn": soak_dyn(folder),
             "soak_wide": soak_wide(folder)}
    data = np.random.default_rng(0)
    x_mlp = data.standard_normal((1, 32)).astype(np.float32)
    x_cnn = data.random((1, 3, 32, 32), dtype=np.float32)
    x_wide = data.standard_normal((1, 1024)).astype(np.float32)
    feeds: Dict[str, Feeds] = {
        "soak_mlp": lambda r: {"x": x_mlp},
        "soak_cnn": lambda r: {"image": x_cnn},
        "soak_wide": lambda r: {"x": x_wide},
        "soak_dyn": lambda r: {"x": np.full((r.randint(1, 8), 6), r.random(), np.float32)},
    }
    return {"files": files, "feeds": feeds}


def hbm_models(latency_us: int) -> Optional[Dict[str, Any]]:
    """The double's .hbm models, or None (with a message) when the double cannot be built."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        import ucp_support  # needs pytest (its helpers fail tests with pytest.fail)

        build = ucp_support.build_double(10)
    except BaseException as e:  # pytest.fail raises a BaseException
        print(f"soak: the UCP test double is not available ({type(e).__name__}: {str(e)[:300]}); "
              "running .onnx models only", file=sys.stderr, flush=True)
        return None
    if "ucp" in dict(hbm_runtime._hbm_ext._engine_versions()):
        raise SystemExit("soak: the BPU engine was loaded before HBM_UCP_LIB_DIR could be set")
    os.environ["HBM_UCP_LIB_DIR"] = str(build.lib_dir)
    double = ucp_support.Double(build)
    double.configure("latency_us", latency_us)  # BPU tasks stay in flight a little while
    double.configure("log", 0)  # its event log would grow with every call
    files = {"multi": ucp_support.model_file("multi.hbm"), "second": ucp_support.model_file("second.hbm"),
             "square": ucp_support.model_file("square_nv12.hbm")}
    defs: Dict[str, Any] = {}
    for f in files.values():
        defs.update(ucp_support.parse_model_file(f).models)
    shapes = {"m_dyn": {"x": [1, 5]}}
    cached = {name: ucp_support.random_inputs(d, 1, shapes.get(name)) for name, d in defs.items()}
    feeds: Dict[str, Feeds] = {name: (lambda r, v=v: v) for name, v in cached.items()}
    return {"files": files, "feeds": feeds, "double": double}


# ---- process figures ----------------------------------------------------------------------------


def proc_status() -> Dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "VmRSS":
                out["rss_kib"] = int(value.split()[0])
            elif key == "Threads":
                out["threads"] = int(value)
    out["fds"] = len(os.listdir("/proc/self/fd"))
    return out


# ---- the load ------------------------------------------------------------------------------------


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.c: Dict[str, int] = {}
        self.errors: List[str] = []

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.c[key] = self.c.get(key, 0) + n

    def error(self, what: str) -> None:
        with self.lock:
            self.c["unexpected"] = self.c.get("unexpected", 0) + 1
            count = self.c["unexpected"]
            if len(self.errors) < 20:
                self.errors.append(what)
        if count <= 10:  # the first few in full, then a count now and then
            print(f"soak: UNEXPECTED: {what}", file=sys.stderr, flush=True)
        elif count % 1000 == 0:
            print(f"soak: {count} unexpected exceptions so far", file=sys.stderr, flush=True)

    def snapshot(self) -> Dict[str, int]:
        with self.lock:
            return dict(self.c)


class Soak:
    def __init__(self, args: argparse.Namespace, feeds: Dict[str, Feeds], groups: List[List[str]],
                 churn_files: List[str]) -> None:
        self.args = args
        self.feeds = feeds
        self.groups = groups            # file lists of the shared runtimes
        self.churn_files = churn_files  # files the churn thread opens one at a time
        self.stop = threading.Event()
        self.n = Counters()
        self.shared: List[HB_HBMRuntime] = [HB_HBMRuntime(g) for g in groups]
        self.shared_lock = threading.Lock()

    # -- helpers --
    def pick_shared(self, r: random.Random) -> HB_HBMRuntime:
        with self.shared_lock:
            return r.choice(self.shared)

    def inputs(self, rt: HB_HBMRuntime, r: random.Random, name: Optional[str] = None):
        names = rt.model_names
        name = name or r.choice(names)
        return name, self.feeds[name](r)

    def expected(self, e: BaseException) -> bool:
        if isinstance(e, RuntimeClosedError):
            self.n.add("closed_errors")
            return True
        if isinstance(e, concurrent.futures.CancelledError):
            self.n.add("cancelled")
            return True
        return False

    def guard(self, fn: Callable[[], None], where: str) -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - everything unexpected is reported
            if not self.expected(e):
                self.n.error(f"{where}: {type(e).__name__}: {e}\n{traceback.format_exc()}")

    def settle(self, fut: "concurrent.futures.Future[Any]", where: str) -> None:
        try:
            fut.result(timeout=self.args.future_timeout)
            self.n.add("async_ok")
        except concurrent.futures.TimeoutError:
            self.n.error(f"{where}: a run_async future did not finish within {self.args.future_timeout} s")
        except BaseException as e:  # noqa: BLE001
            if not self.expected(e):
                self.n.error(f"{where}: {type(e).__name__}: {e}")

    # -- actions of the workers --
    def act_run(self, r: random.Random) -> None:
        rt = self.pick_shared(r)
        name, x = self.inputs(rt, r)
        out = rt.run(x, model_name=name)
        assert name in out, (name, list(out))
        self.n.add("runs")

    def act_run_all(self, r: random.Random) -> None:
        """One run of every model of a shared runtime ({model: {input: array}}: in parallel)."""
        rt = self.pick_shared(r)
        out = rt.run({m: self.feeds[m](r) for m in rt.model_names})
        assert len(out) == rt.model_count
        self.n.add("runs")

    def act_async_batch(self, r: random.Random) -> None:
        """A burst of run_async; some futures cancelled at once, the rest awaited."""
        rt = self.pick_shared(r)
        futs = []
        for _ in range(r.randint(2, 12)):
            name, x = self.inputs(rt, r)
            futs.append(rt.run_async(x, model_name=name))
            self.n.add("async_submitted")
        for f in futs:
            if r.random() < 0.3 and f.cancel():
                self.n.add("cancel_accepted")
        for f in futs:
            self.settle(f, "async batch")

    def act_async_drop(self, r: random.Random) -> None:
        """Futures (and so their results) dropped while the runs are in flight."""
        rt = self.pick_shared(r)
        for _ in range(r.randint(1, 6)):
            name, x = self.inputs(rt, r)
            rt.run_async(x, model_name=name)
            self.n.add("async_dropped")

    def act_run_drop(self, r: random.Random) -> None:
        """A result dict dropped at once, and an output array kept past its dict."""
        rt = self.pick_shared(r)
        name, x = self.inputs(rt, r)
        out = rt.run(x, model_name=name)
        keep = next(iter(out[name].values()))
        del out
        float(np.asarray(keep).ravel()[0]) if np.asarray(keep).size else None
        self.n.add("runs")

    def worker(self, seed: int) -> None:
        r = random.Random(seed)
        actions = [(self.act_run, 4), (self.act_run_all, 1), (self.act_async_batch, 2),
                   (self.act_async_drop, 1), (self.act_run_drop, 2)]
        funcs = [a for a, _ in actions]
        weights = [w for _, w in actions]
        while not self.stop.is_set():
            act = r.choices(funcs, weights)[0]
            self.guard(lambda: act(r), act.__name__)

    # -- churn: runtimes opened, used, closed (or just dropped) with work in flight --
    def churn(self, seed: int) -> None:
        r = random.Random(seed)
        while not self.stop.is_set():
            def once() -> None:
                files = r.sample(self.churn_files, r.randint(1, min(2, len(self.churn_files))))
                rt = HB_HBMRuntime(files)
                self.n.add("opened")
                futs = []
                for _ in range(r.randint(1, 8)):
                    name, x = self.inputs(rt, r)
                    futs.append(rt.run_async(x, model_name=name))
                    self.n.add("async_submitted")
                mode = r.random()
                if mode < 0.5:
                    rt.close()  # closed with work queued/in flight: futures cancelled or done
                    self.n.add("closed")
                    try:
                        name, x = self.inputs(rt, r)
                        rt.run(x, model_name=name)
                        self.n.error("churn: run() after close() did not raise RuntimeClosedError")
                    except RuntimeClosedError:
                        self.n.add("closed_errors")
                    for f in futs:
                        self.settle(f, "churn close")
                elif mode < 0.8:
                    del rt  # dropped with futures in flight: the futures keep what they need
                    self.n.add("dropped")
                    for f in futs:
                        self.settle(f, "churn drop")
                else:
                    del rt, futs  # everything dropped while in flight
                    self.n.add("dropped")

            self.guard(once, "churn")
            # Now and then a shared runtime is replaced: workers using it see RuntimeClosedError.
            if r.random() < 0.05:
                def swap() -> None:
                    i = r.randrange(len(self.shared))
                    new = HB_HBMRuntime(self.groups[i])
                    with self.shared_lock:
                        old, self.shared[i] = self.shared[i], new
                    old.close()
                    self.n.add("swapped")
                self.guard(swap, "swap")
            self.stop.wait(0.05)

    # -- scheduling parameters changed under load --
    def sched(self, seed: int) -> None:
        r = random.Random(seed)
        while not self.stop.is_set():
            def once() -> None:
                rt = self.pick_shared(r)
                prio = {m: r.choice([0, 10, 100, 200, 253, 254, 255]) for m in rt.model_names}
                cores = {m: r.sample([0, 1, 2, 3], r.randint(1, 4)) for m in rt.model_names}
                rt.set_scheduling_params(priority=prio, bpu_cores=cores,
                                         custom_id={m: r.randint(0, 1000) for m in rt.model_names})
                self.n.add("sched_changes")
            self.guard(once, "set_scheduling_params")
            self.stop.wait(0.1)

    def collector(self) -> None:
        while not self.stop.wait(0.5):
            gc.collect()


def main(argv: Optional[List[str]] = None) -> int:
    cores = hbm_runtime.host_cores()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, required=True, help="how long to run")
    p.add_argument("--json", action="store_true", help="samples and summary as JSON lines")
    p.add_argument("--threads", type=int, default=4, help="worker threads (default 4)")
    p.add_argument("--warmup", type=float, default=None,
                   help="seconds before the baseline sample (default: 20%% of --seconds, 5..60)")
    p.add_argument("--report-every", type=float, default=5.0, help="seconds between samples (default 5)")
    p.add_argument("--rss-mib", type=float, default=64.0, help="allowed RSS growth over the baseline (MiB)")
    p.add_argument("--fd-slack", type=int, default=8, help="allowed open fds over the baseline")
    p.add_argument("--thread-slack", type=int, default=16, help="allowed OS threads over the baseline")
    p.add_argument("--thread-cap", type=int, default=None,
                   help="max OS threads (default: the baseline + --thread-slack)")
    p.add_argument("--future-timeout", type=float, default=60.0, help="max wait for one run_async future")
    p.add_argument("--no-hbm", action="store_true", help="host .onnx models only")
    p.add_argument("--hbm-latency-us", type=int, default=300, help="the double's per-task latency")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else min(60.0, max(5.0, args.seconds * 0.2))
    thread_cap: Optional[int] = args.thread_cap  # else set from the baseline sample

    def emit(kind: str, text: str, data: Dict[str, Any]) -> None:
        if args.json:
            print(json.dumps({"kind": kind, **data}), flush=True)
        else:
            print(text, flush=True)

    folder = Path(tempfile.mkdtemp(prefix="hbm-soak-"))
    host = onnx_models(folder)
    feeds: Dict[str, Feeds] = dict(host["feeds"])
    hf = host["files"]
    groups = [[hf["soak_mlp"]], [hf["soak_cnn"]], [hf["soak_dyn"]], [hf["soak_wide"]],
              [hf["soak_mlp"], hf["soak_cnn"], hf["soak_dyn"]], [hf["soak_wide"], hf["soak_mlp"]]]
    churn_files = list(hf.values())
    bpu = None if args.no_hbm else hbm_models(args.hbm_latency_us)
    if bpu is not None:
        feeds.update(bpu["feeds"])
        bf = bpu["files"]
        groups += [[bf["multi"]], [bf["second"], bf["square"]], [hf["soak_mlp"], bf["multi"]]]
        churn_files += list(bf.values())

    soak = Soak(args, feeds, groups, churn_files)
    n = soak.n

    def unraisable(u: Any) -> None:  # e.g. an exception in a run_async completion callback
        n.error(f"unraisable in {u.object!r}: {u.exc_type.__name__}: {u.exc_value}")

    def thread_hook(h: Any) -> None:
        n.error(f"thread {h.thread.name if h.thread else '?'}: {h.exc_type.__name__}: {h.exc_value}")

    sys.unraisablehook = unraisable
    threading.excepthook = thread_hook

    header = (f"soak: {args.seconds:.0f} s, {args.threads} workers, host_cores={cores}, "
              f"models={sorted(feeds)}, warm-up {warmup:.0f} s; bounds: RSS +{args.rss_mib:.0f} MiB, "
              f"fds +{args.fd_slack}, threads "
              + (f"<= {thread_cap}" if thread_cap is not None else f"+{args.thread_slack}"))
    emit("start", header, {"seconds": args.seconds, "workers": args.threads, "host_cores": cores,
                           "models": sorted(feeds), "warmup": warmup, "rss_mib": args.rss_mib,
                           "fd_slack": args.fd_slack, "thread_cap": thread_cap,
                           "thread_slack": args.thread_slack})

    threads = [threading.Thread(target=soak.worker, args=(args.seed * 100 + i,), name=f"soak-worker-{i}", daemon=True)
               for i in range(args.threads)]
    threads += [threading.Thread(target=soak.churn, args=(args.seed * 100 + 50,), name="soak-churn", daemon=True),
                threading.Thread(target=soak.sched, args=(args.seed * 100 + 60,), name="soak-sched", daemon=True),
                threading.Thread(target=soak.collector, name="soak-gc", daemon=True)]
    t0 = time.monotonic()
    first = proc_status()
    for t in threads:
        t.start()

    baseline: Optional[Dict[str, int]] = None
    failure = ""
    last: Dict[str, int] = first
    peak_threads = first["threads"]
    next_sample = t0 + args.report_every
    while True:
        now = time.monotonic()
        elapsed = now - t0
        if elapsed >= args.seconds:
            break
        time.sleep(max(0.0, min(next_sample, t0 + args.seconds) - now))
        if time.monotonic() < next_sample and time.monotonic() - t0 < args.seconds:
            continue
        next_sample += args.report_every
        elapsed = time.monotonic() - t0
        st = proc_status()
        last = st
        peak_threads = max(peak_threads, st["threads"])
        c = n.snapshot()
        if baseline is None and elapsed >= warmup:
            baseline = st
            if thread_cap is None:
                thread_cap = baseline["threads"] + args.thread_slack
        phase = "warm-up" if baseline is None else "soak"
        emit("sample",
             f"[{elapsed:7.1f} s] {phase:7s} RSS {st['rss_kib'] / 1024:8.1f} MiB  fds {st['fds']:4d}  "
             f"threads {st['threads']:4d}  runs {c.get('runs', 0)}  async ok {c.get('async_ok', 0)}  "
             f"cancelled {c.get('cancelled', 0)}  closed {c.get('closed_errors', 0)}  "
             f"opened {c.get('opened', 0)}  unexpected {c.get('unexpected', 0)}",
             {"t": round(elapsed, 1), "phase": phase, **st, **c})
        # Checked from the baseline sample on (unexpected exceptions of the warm-up too), so
        # that a failure names every bound broken at that point.
        if baseline is not None:
            broken = []
            if c.get("unexpected", 0):
                broken.append(f"{c['unexpected']} unexpected exception(s), first: {n.errors[0].splitlines()[0]}")
            grown = (st["rss_kib"] - baseline["rss_kib"]) / 1024
            if grown > args.rss_mib:
                broken.append(f"RSS grew {grown:.1f} MiB over the post-warm-up baseline "
                              f"({baseline['rss_kib'] / 1024:.1f} -> {st['rss_kib'] / 1024:.1f} MiB), bound {args.rss_mib:.0f} MiB")
            if st["fds"] > baseline["fds"] + args.fd_slack:
                broken.append(f"open fds {baseline['fds']} -> {st['fds']}, bound baseline + {args.fd_slack}")
            if st["threads"] > thread_cap:
                broken.append(f"OS threads {st['threads']} > cap {thread_cap} (baseline {baseline['threads']})")
            if broken:
                failure = "; ".join(broken)
                break

    soak.stop.set()
    for t in threads:
        t.join(timeout=args.future_timeout + 10)
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck and not failure:
        failure = f"threads did not stop within {args.future_timeout + 10:.0f} s: {stuck}"
    if not failure and n.snapshot().get("unexpected", 0):
        failure = f"{n.snapshot()['unexpected']} unexpected exception(s), first: {n.errors[0].splitlines()[0]}"
    elapsed = time.monotonic() - t0
    c = n.snapshot()
    base = baseline or first
    summary = {
        "result": "FAIL" if failure else "PASS", "reason": failure, "elapsed_s": round(elapsed, 1),
        "rss_mib_start": round(first["rss_kib"] / 1024, 1), "rss_mib_baseline": round(base["rss_kib"] / 1024, 1),
        "rss_mib_end": round(last["rss_kib"] / 1024, 1), "fds_start": first["fds"], "fds_baseline": base["fds"],
        "fds_end": last["fds"], "threads_start": first["threads"], "threads_baseline": base["threads"],
        "threads_end": last["threads"], "threads_peak": peak_threads, "thread_cap": thread_cap, **c,
    }
    text = (f"soak {summary['result']}{': ' + failure if failure else ''} | {elapsed:.0f} s | "
            f"RSS {summary['rss_mib_start']} -> {summary['rss_mib_baseline']} (baseline) -> {summary['rss_mib_end']} MiB | "
            f"fds {first['fds']} -> {base['fds']} -> {last['fds']} | threads {first['threads']} -> {base['threads']} -> "
            f"{last['threads']} (peak {peak_threads}, cap {thread_cap}) | runs {c.get('runs', 0)}, async ok "
            f"{c.get('async_ok', 0)}, cancelled {c.get('cancelled', 0)}, closed {c.get('closed_errors', 0)}, "
            f"opened {c.get('opened', 0)}, swapped {c.get('swapped', 0)}, sched changes {c.get('sched_changes', 0)}, "
            f"unexpected {c.get('unexpected', 0)}")
    emit("summary", text, summary)
    for e in n.errors[:5]:
        print(e, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    if failure:  # threads may still be stuck inside the extension: no interpreter teardown
        os._exit(1)
    for rt in soak.shared:
        rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
