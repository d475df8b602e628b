"""``bench MODEL...``: how fast the models run here, from one or more threads.

Every thread calls ``rt.run(...)`` on the same inputs (random, or read from ``.npy`` files);
the latency of each call is measured around that call, and the per-stage split comes from
the timings every result carries (``result.timings[model]``).
"""

from __future__ import annotations

import array
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, TextIO, Tuple

import numpy as np

from ._cli_common import CliError, dims_text, engine_names, numpy_dtype, open_runtime, print_json, sched_dict, versions

if TYPE_CHECKING:
    from ._runtime import HB_HBMRuntime

BENCH_SCHEMA = "hbm_runtime.bench/1"
DEFAULT_SECONDS = 5.0  # when neither --runs nor --seconds is given
DEFAULT_WARMUP = 10
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C'd program

# result.timings[model] keys (microseconds) -> the stage names of the report.
STAGES = (("queued", "queued_us"), ("prepare", "prepare_us"), ("infer", "infer_us"), ("finish", "finish_us"))
PERCENTILES = (50, 90, 99)

Array = np.ndarray[Any, Any]


@dataclass
class BenchOptions:
    """The bench command's options, as parsed from the command line."""

    files: List[str]
    model_name: Optional[str] = None
    threads: int = 1
    runs: Optional[int] = None
    seconds: Optional[float] = None
    warmup: int = DEFAULT_WARMUP
    priority: Optional[int] = None
    cores: Optional[List[int]] = None
    inputs: List[str] = field(default_factory=list)  # NAME=FILE.npy
    shapes: List[str] = field(default_factory=list)  # NAME=D0,D1,...
    seed: int = 0
    as_json: bool = False
    progress: Optional[bool] = None  # None: when stderr is a terminal


@dataclass
class InputPlan:
    """One input tensor of a benchmarked model and where its data comes from."""

    model: str
    name: str
    dtype: str  # hbDNNDataType name
    shape: List[int]
    source: str  # "random" or the .npy path
    array: Array


# ---- inputs -----------------------------------------------------------------------------------


def _assignments(items: Sequence[str], option: str) -> List[Tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise CliError(f"{option} {item!r}: expected NAME=VALUE (NAME an input name, or MODEL:NAME)")
        out.append((key, value))
    return out


def _input_list(rt: HB_HBMRuntime, models: Sequence[str]) -> str:
    return "; ".join(f"model '{m}': " + ", ".join(repr(n) for n in rt.input_names[m]) for m in models)


def resolve_input(rt: HB_HBMRuntime, models: Sequence[str], key: str, option: str) -> Tuple[str, str]:
    """(model, input) named by ``key``: an input name, or ``MODEL:NAME`` when several of the
    models have an input of that name."""
    hits = [m for m in models if key in rt.input_names[m]]
    if len(hits) == 1:
        return hits[0], key
    if len(hits) > 1:
        raise CliError(f"{option} {key}=...: models {', '.join(repr(m) for m in hits)} all have an input "
                       f"'{key}': write MODEL:{key}")
    model, sep, name = key.partition(":")
    if sep and model in models and name in rt.input_names[model]:
        return model, name
    raise CliError(f"{option} {key}=...: no input '{key}' in the benchmarked model(s); inputs are {_input_list(rt, models)}")


def _parse_dims(text: str, what: str) -> List[int]:
    try:
        dims = [int(d) for d in text.replace("x", ",").split(",")]
    except ValueError:
        raise CliError(f"{what}: expected dimensions like 1,3,224,224, got '{text}'") from None
    if any(d < 0 for d in dims):
        raise CliError(f"{what}: dimensions must be >= 0, got '{text}'")
    return dims


def _check_shape(model: str, name: str, declared: List[int], shape: List[int], what: str, holds: str) -> None:
    expected = f"model '{model}' input '{name}' has shape {dims_text(declared)} (-1: any size)"
    if len(shape) != len(declared):
        raise CliError(f"{what}: {expected}, {holds} {len(shape)} dimensions {dims_text(shape)}")
    for i, (d, s) in enumerate(zip(declared, shape)):
        if d >= 0 and d != s:
            raise CliError(f"{what}: {expected}, {holds} {dims_text(shape)} (dimension {i} must be {d})")


def random_array(rng: np.random.Generator, shape: List[int], hb_dtype: str) -> Array:
    """Random data of a tensor type: floats in [0, 1); 4-, 8- and 16-bit integers over their
    whole range (image and quantized data); wider integers 0 or 1 (they are mostly indices,
    masks or sizes, which larger values would put out of range); bools True or False."""
    dt = numpy_dtype(hb_dtype)
    if hb_dtype == "BOOL8":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if hb_dtype == "S4":
        return rng.integers(-8, 7, size=shape, endpoint=True).astype(np.int8)
    if hb_dtype == "U4":
        return rng.integers(0, 15, size=shape, endpoint=True).astype(np.uint8)
    if dt.kind in "iu":
        if dt.itemsize <= 2:
            info = np.iinfo(dt)
            return rng.integers(int(info.min), int(info.max), size=shape, endpoint=True).astype(dt)
        return rng.integers(0, 1, size=shape, endpoint=True).astype(dt)
    return rng.random(size=shape).astype(dt)


def _load_npy(path: str, what: str) -> Array:
    if not os.path.exists(path):
        raise CliError(f"{what}: file '{path}' does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise CliError(f"{what}: cannot read '{path}' as a .npy file ({e})") from None
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise CliError(f"{what}: '{path}' is a .npz archive; save one array with numpy.save")
    return loaded


def plan_inputs(rt: HB_HBMRuntime, models: Sequence[str], input_files: Sequence[str],
                shape_specs: Sequence[str], seed: int) -> List[InputPlan]:
    """The input of every tensor of ``models``: a given .npy file (checked against the
    model's dtype and shape), else random data of the declared shape with dynamic dims
    (-1) set to 1 or to ``--shape``."""
    files: Dict[Tuple[str, str], Tuple[str, str]] = {}  # (model, input) -> (key as written, path)
    for key, path in _assignments(input_files, "--input"):
        target = resolve_input(rt, models, key, "--input")
        if target in files:
            raise CliError(f"--input {key}=...: input '{target[1]}' of model '{target[0]}' given twice")
        files[target] = (key, path)
    shapes: Dict[Tuple[str, str], List[int]] = {}
    for key, text in _assignments(shape_specs, "--shape"):
        target = resolve_input(rt, models, key, "--shape")
        if target in files:
            raise CliError(f"--shape {key}=...: input '{target[1]}' of model '{target[0]}' also has --input "
                           "(its shape is the file's)")
        dims = _parse_dims(text, f"--shape {key}={text}")
        _check_shape(target[0], target[1], rt.input_shapes[target[0]][target[1]], dims,
                     f"--shape {key}={text}", "got")
        shapes[target] = dims
    rng = np.random.default_rng(seed)
    plans = []
    for model in models:
        for name in rt.input_names[model]:
            hb_dtype = rt.input_dtypes[model][name].name
            declared = rt.input_shapes[model][name]
            given = files.get((model, name))
            if given is not None:
                key, npy = given
                what = f"--input {key}={npy}"
                arr = _load_npy(npy, what)
                expected = numpy_dtype(hb_dtype)
                if arr.dtype != expected and arr.dtype.newbyteorder("=") == expected:
                    arr = arr.astype(expected)  # same type, other byte order
                if arr.dtype != expected:
                    raise CliError(f"{what}: model '{model}' input '{name}' takes {expected.name} ({hb_dtype}), "
                                   f"the file holds {arr.dtype.name} {dims_text(list(arr.shape))}")
                _check_shape(model, name, declared, list(arr.shape), what, "the file holds")
                plans.append(InputPlan(model, name, hb_dtype, list(arr.shape), npy, np.ascontiguousarray(arr)))
            else:
                shape = shapes.get((model, name)) or [d if d >= 0 else 1 for d in declared]
                plans.append(InputPlan(model, name, hb_dtype, shape, "random", random_array(rng, shape, hb_dtype)))
    return plans


# ---- the run ----------------------------------------------------------------------------------


class _Worker:
    """What one benchmark thread measured: latencies (s) and per-model stage times (us)."""

    def __init__(self, index: int, quota: Optional[int], models: Sequence[str]) -> None:
        self.index = index
        self.quota = quota  # timed runs to make (--runs), None with --seconds
        self.latencies = array.array("d")
        self.stages: Dict[str, Dict[str, array.array[float]]] = {
            m: {key: array.array("d") for _, key in STAGES} for m in models}
        self.cores: Dict[str, Dict[int, int]] = {m: {} for m in models}
        self.end: Optional[float] = None
        self.error: Optional[BaseException] = None


class _Progress:
    """Progress on stderr: one line rewritten in place on a terminal, else a line per update."""

    def __init__(self, enabled: bool, stream: TextIO, runs: Optional[int], seconds: Optional[float]) -> None:
        self.enabled = enabled
        self.stream = stream
        self.tty = enabled and stream.isatty()
        self.interval = 0.2 if self.tty else 1.0
        self.runs = runs
        self.seconds = seconds
        self.last = -1.0
        self.width = 0

    def _write(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def warming_up(self, warmup: int, threads: int) -> None:
        if self.enabled:
            self._write(f"bench: warming up ({warmup} runs per thread, {threads} thread(s))")

    def update(self, done: int, elapsed: float, force: bool = False) -> None:
        if not self.enabled or (not force and time.monotonic() - self.last < self.interval):
            return
        self.last = time.monotonic()
        if self.runs is not None:
            self._write(f"bench: {done}/{self.runs} runs, {elapsed:.1f} s")
        else:
            self._write(f"bench: {done} runs, {elapsed:.1f}/{self.seconds:g} s")

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class _Bench:
    """Runs the warm-up and the timed runs on ``threads`` threads."""

    def __init__(self, rt: HB_HBMRuntime, models: Sequence[str], feed: Any, model_name: Optional[str],
                 opts: BenchOptions) -> None:
        self.rt = rt
        self.feed = feed
        self.model_name = model_name
        self.opts = opts
        runs = opts.runs
        n = opts.threads
        # --runs is split evenly over the threads, so each thread's share is known up front.
        quotas: List[Optional[int]] = [None] * n if runs is None else [runs // n + (i < runs % n) for i in range(n)]
        self.workers = [_Worker(i, quotas[i], models) for i in range(n)]
        self.stop = threading.Event()
        # Waited on instead of Thread.join(): a join interrupted by Ctrl-C can mark a thread
        # that is still running as finished (CPython 3.11), and the report must not be built
        # while a thread still appends to its arrays.
        self.lock = threading.Lock()
        self.finished = 0
        self.all_done = threading.Event()
        self.start: Optional[float] = None
        self.deadline = float("inf")
        self.barrier = threading.Barrier(n, action=self._begin)

    def _begin(self) -> None:
        # Run by one thread once every thread has warmed up: the timed phase starts now.
        self.start = time.perf_counter()
        if self.opts.seconds is not None:
            self.deadline = self.start + self.opts.seconds

    def _work(self, w: _Worker) -> None:
        try:
            self._measure(w)
        finally:
            with self.lock:
                self.finished += 1
                if self.finished == len(self.workers):
                    self.all_done.set()

    def _measure(self, w: _Worker) -> None:
        rt, feed, model_name = self.rt, self.feed, self.model_name
        try:
            for _ in range(self.opts.warmup):
                if self.stop.is_set():
                    return
                rt.run(feed, model_name)
            self.barrier.wait()
        except threading.BrokenBarrierError:
            return  # another thread failed, or Ctrl-C
        except BaseException as e:  # reported by the main thread
            w.error = e
            self.stop.set()
            self.barrier.abort()
            return
        lat, stages, cores = w.latencies, w.stages, w.cores
        perf = time.perf_counter
        try:
            while not self.stop.is_set():
                t0 = perf()
                result = rt.run(feed, model_name)
                t1 = perf()
                lat.append(t1 - t0)
                for model, t in result.timings.items():
                    s = stages[model]
                    for _, key in STAGES:
                        s[key].append(t[key])
                    core = int(t["core"])
                    cores[model][core] = cores[model].get(core, 0) + 1
                del result
                # Every thread makes at least one timed run, even past a short --seconds.
                if (w.quota is not None and len(lat) >= w.quota) or t1 >= self.deadline:
                    break
        except BaseException as e:
            w.error = e
            self.stop.set()
        finally:
            w.end = perf()

    def done(self) -> int:
        """Timed runs finished so far (read while the threads run)."""
        return sum(len(w.latencies) for w in self.workers)

    def run(self, progress: _Progress) -> bool:
        """Runs the benchmark; True when Ctrl-C stopped it."""
        # Not daemon threads: one still inside run() when the interpreter exits would be
        # killed there, so exiting waits for them (they stop after their current run).
        threads = [threading.Thread(target=self._work, args=(w,), name=f"hbm-bench-{w.index}")
                   for w in self.workers]
        progress.warming_up(self.opts.warmup, len(threads))
        interrupted = False
        started = 0
        try:
            for t in threads:
                t.start()
                started += 1
            while not self.all_done.wait(0.05):
                if self.start is not None:
                    progress.update(self.done(), time.perf_counter() - self.start)
        except KeyboardInterrupt:
            interrupted = True
            self.stop.set()
            self.barrier.abort()
            with self.lock:  # threads never started count as finished
                self.finished += len(threads) - started
                if self.finished == len(threads):
                    self.all_done.set()
            self.all_done.wait()  # each finishes the run it is in (an inference cannot be cut short)
        for t in threads[:started]:
            t.join()
        if self.start is not None:
            progress.update(self.done(), self.elapsed(), force=True)
        progress.finish()
        return interrupted

    def elapsed(self) -> float:
        """Seconds from the start of the timed phase to the end of its last run."""
        if self.start is None:
            return 0.0
        ends = [w.end for w in self.workers if w.end is not None]
        return max(ends, default=time.perf_counter()) - self.start


# ---- report -----------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return float(seconds) * 1e3


def _summary(latencies_ms: Array) -> Dict[str, float]:
    p = np.percentile(latencies_ms, PERCENTILES)
    lo, hi = float(latencies_ms.min()), float(latencies_ms.max())
    mean = min(max(float(latencies_ms.mean()), lo), hi)  # rounding must not put it outside
    return {"min": lo, "p50": float(p[0]), "p90": float(p[1]), "p99": float(p[2]), "max": hi, "mean": mean}


def bench_record(rt: HB_HBMRuntime, opts: BenchOptions, models: Sequence[str], plans: Sequence[InputPlan],
                 bench: _Bench, interrupted: bool) -> Dict[str, Any]:
    """The ``hbm_runtime.bench/1`` object (docs/cli.md)."""
    workers = bench.workers
    runs = sum(len(w.latencies) for w in workers)
    lat = np.concatenate([np.frombuffer(w.latencies, dtype=np.float64) for w in workers]) * 1e3
    elapsed = bench.elapsed()
    engines = engine_names(rt)
    model_records = []
    for model in models:
        columns = {key: np.concatenate([np.frombuffer(w.stages[model][key], dtype=np.float64) for w in workers])
                   for _, key in STAGES}
        stages = {name: float(np.median(columns[key])) / 1e3 for name, key in STAGES}
        stages["total"] = float(np.median(sum(columns[key] for _, key in STAGES))) / 1e3
        cores: Dict[int, int] = {}
        for w in workers:
            for core, count in w.cores[model].items():
                cores[core] = cores.get(core, 0) + count
        model_records.append({
            "name": model,
            "engine": engines[model],
            "sched": sched_dict(rt, model),
            "inputs": [{"name": p.name, "dtype": p.dtype, "numpy_dtype": p.array.dtype.name, "shape": p.shape,
                        "source": p.source} for p in plans if p.model == model],
            "stages_ms": stages,
            "cores": {str(c): n for c, n in sorted(cores.items())},
        })
    return {
        "schema": BENCH_SCHEMA,
        "interrupted": interrupted,
        "files": list(opts.files),
        "config": {
            "model_name": opts.model_name,
            "threads": opts.threads,
            "runs": opts.runs,
            "seconds": opts.seconds,
            "warmup": opts.warmup,
            "priority": opts.priority,
            "cores": opts.cores,
            "seed": opts.seed,
        },
        "versions": versions(rt),
        "models": model_records,
        "runs": runs,
        "runs_per_thread": [len(w.latencies) for w in workers],
        "elapsed_ms": _ms(elapsed),
        "throughput_per_s": runs / elapsed if elapsed > 0 else 0.0,
        "latency_ms": _summary(lat),
    }


def _f(ms: float) -> str:
    return f"{ms:.3f}"


def _duration(ms: float) -> str:
    return f"{ms / 1e3:.3f} s" if ms >= 1e3 else f"{ms:.3f} ms"


def bench_text(record: Dict[str, Any]) -> str:
    """The human-readable report of a ``hbm_runtime.bench/1`` object."""
    v = record["versions"]
    cfg = record["config"]
    lines = [f"hbm_runtime {v['runtime']}",
             f"python {v['python']}, numpy {v['numpy']}, {v['platform']}, {v['cpu_count']} CPUs, "
             f"{v['host_cores']} host cores"]
    for m in record["models"]:
        s = m["sched"]
        lines.append(f"model {m['name']}: engine {m['engine']}, priority {s['priority']}, bpu_cores {s['bpu_cores']}")
        for i in m["inputs"]:
            lines.append(f"  input {i['name']}: {i['numpy_dtype']} {dims_text(i['shape'])} from {i['source']}")
    threads = cfg["threads"]
    head = "interrupted after " if record["interrupted"] else ""
    lines.append(f"{head}{record['runs']} runs on {threads} thread{'s' if threads > 1 else ''} in "
                 f"{_duration(record['elapsed_ms'])} (after {cfg['warmup']} warm-up runs per thread): "
                 f"{record['throughput_per_s']:.1f} runs/s")
    lat = record["latency_ms"]
    lines.append("latency ms: " + "  ".join(f"{k} {_f(lat[k])}" for k in ("min", "p50", "p90", "p99", "max", "mean")))
    lines.append("stages ms (median of each run's timings):")
    width = max(len(m["name"]) for m in record["models"])
    for m in record["models"]:
        st = m["stages_ms"]
        cores = ", ".join(f"{c}: {n}" for c, n in m["cores"].items())
        lines.append(f"  {m['name'].ljust(width)}  " + "  ".join(f"{name} {_f(st[name])}" for name, _ in STAGES)
                     + f"  total {_f(st['total'])}  (runs per core: {cores})")
    return "\n".join(lines)


# ---- the command ------------------------------------------------------------------------------


def _check_options(opts: BenchOptions) -> None:
    if opts.runs is not None and opts.runs < opts.threads:
        raise CliError(f"--runs {opts.runs} is less than --threads {opts.threads}: every thread needs a run")


def bench(opts: BenchOptions) -> int:
    """Runs the benchmark described by ``opts`` and prints its report; returns the exit
    status (130 when Ctrl-C stopped it)."""
    if opts.runs is None and opts.seconds is None:
        opts.seconds = DEFAULT_SECONDS
    _check_options(opts)
    with open_runtime(opts.files) as rt:
        names = rt.model_names
        if opts.model_name is not None and opts.model_name not in names:
            raise CliError(f"--model-name {opts.model_name}: no such model; loaded: {', '.join(names)}")
        models = [opts.model_name] if opts.model_name is not None else names
        if opts.priority is not None or opts.cores is not None:
            rt.set_scheduling_params(
                priority=None if opts.priority is None else {m: opts.priority for m in models},
                bpu_cores=None if opts.cores is None else {m: opts.cores for m in models})
        plans = plan_inputs(rt, models, opts.inputs, opts.shapes, opts.seed)
        feed: Any
        if len(models) == 1:
            feed = {p.name: p.array for p in plans}
            model_name = models[0] if len(names) > 1 else None
        else:  # every model at once, in parallel
            feed = {m: {p.name: p.array for p in plans if p.model == m} for m in models}
            model_name = None
        rt.run(feed, model_name)  # one untimed run: bad inputs fail here, on this thread
        b = _Bench(rt, models, feed, model_name, opts)
        show = opts.progress if opts.progress is not None else sys.stderr.isatty()
        interrupted = b.run(_Progress(show, sys.stderr, opts.runs, opts.seconds))
        errors = [w.error for w in b.workers if w.error is not None]
        if errors and not interrupted:
            raise errors[0]
        if b.done() == 0:
            print("interrupted before any timed run finished", file=sys.stderr)
            return EXIT_INTERRUPTED
        record = bench_record(rt, opts, models, plans, b, interrupted)
    if opts.as_json:
        print_json(record)
    else:
        print(bench_text(record))
    if interrupted:
        print(f"interrupted: the report covers the {record['runs']} runs finished before Ctrl-C", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
