"""Fixtures and helpers of the BPU (.hbm) engine tests, run through the UCP test double.

The double (``tests/ucp_double``) is built once per session with cmake into
``build/ucp-double-<D>`` under the repository (an existing build is reused and brought up
to date), unless ``HBM_UCP_DOUBLE_DIR`` names a build of it (the directory holding ``lib/``
and ``broken/``; ``HBM_UCP_DOUBLE_DIR_8`` likewise for the 8-dim layout).

The engine reads ``HBM_UCP_LIB_DIR`` once per process, at the first ``.hbm`` load, so the
in-process tests all use the 10-dim double; the 8-dim layout and the missing / broken
library cases run in subprocesses (``run_python``).

``ctypes.CDLL(<lib dir>/libhbucp.so)`` is the same library instance the engine uses, so
its test-only API (``hbTestDouble_*``) shows what the engine did: ``Double.log()``,
``Double.stats()``, ``Double.configure()``, ``Double.reset()``.
"""

from __future__ import annotations

import ctypes
import functools
import fcntl
import gc
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pytest

import hbm_runtime
from hbm_runtime import _hbm_ext

REPO = Path(__file__).resolve().parents[1]
TESTS_DIR = REPO / "tests"
DOUBLE_SRC = TESTS_DIR / "ucp_double"
MODELS_DIR = DOUBLE_SRC / "models"

YOLO = "yolov5x_672x672_nv12"
YOLO_FILE = MODELS_DIR / f"{YOLO}.hbm"

CONFIG_KEYS = ("cores", "latency_us", "hold", "fail_init", "fail_infer", "fail_submit",
               "fail_wait", "fail_flush", "fail_malloc", "fail_release", "stall",
               "release_returns_early", "evict_dirty", "grow_props")
LIVE_COUNTERS = ("live_sysmem", "live_sysmem_bytes", "live_tasks", "live_packed")

# The double's own error codes (tests/ucp_double/README.md).
DNN_INJECTED = -6000099
DNN_INVALID_MODEL = -6000002
UCP_INVALID_ARGUMENT = -2000001
UCP_OUT_OF_MEMORY = -2000002
UCP_TIMEOUT = -2000005
UCP_INJECTED = -2000099


def model_file(name: str) -> str:
    """Absolute path (str) of a model description in tests/ucp_double/models."""
    return str(MODELS_DIR / name)


# ---- building the double ------------------------------------------------------------------


@dataclass(frozen=True)
class DoubleBuild:
    dims: int
    build_dir: Path

    @property
    def lib_dir(self) -> Path:
        return self.build_dir / "lib"

    @property
    def broken_dir(self) -> Path:
        return self.build_dir / "broken"

    @property
    def versioned_dir(self) -> Path:
        """hbDNNGetVersion@CONFIG plus a different default version (dlvsym test)."""
        return self.build_dir / "versioned"


@functools.lru_cache(maxsize=None)
def build_double(dims: int) -> DoubleBuild:
    """The double's build for layout ``dims`` (10 or 8): HBM_UCP_DOUBLE_DIR[_8] when set,
    else build/ucp-double-<dims>, configured if needed and always brought up to date."""
    env_name = "HBM_UCP_DOUBLE_DIR" if dims == 10 else f"HBM_UCP_DOUBLE_DIR_{dims}"
    given = os.environ.get(env_name)
    if given:
        build = Path(given).resolve()
        if (build / "libhbucp.so").exists() and not (build / "lib").exists():
            build = build.parent  # pointed at <build>/lib
        if not (build / "lib" / "libhbucp.so").exists():
            pytest.fail(f"{env_name}={given}: no lib/libhbucp.so there (expected a build of tests/ucp_double)")
        return DoubleBuild(dims, build)
    build = REPO / "build" / f"ucp-double-{dims}"
    build.mkdir(parents=True, exist_ok=True)
    with open(build / ".pytest-build.lock", "w") as lock:  # parallel sessions build once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (build / "CMakeCache.txt").exists():
            _cmake(["-S", str(DOUBLE_SRC), "-B", str(build), f"-DUCP_DOUBLE_DIMS={dims}",
                    "-DCMAKE_BUILD_TYPE=Release"])
        _cmake(["--build", str(build), "-j", str(max(2, min(8, os.cpu_count() or 2)))])
    for lib in ("lib/libhbucp.so", "lib/libdnn.so", "broken/libdnn.so", "broken/libhbucp.so",
                "versioned/libdnn.so", "versioned/libhbucp.so"):
        assert (build / lib).exists(), f"the double's build did not produce {build / lib}"
    return DoubleBuild(dims, build)


def _cmake(args: List[str]) -> None:
    proc = subprocess.run(["cmake", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"cmake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


# ---- the double's test-only API ---------------------------------------------------------------


class Double:
    """ctypes handle of the double's libhbucp.so (the instance the engine uses)."""

    def __init__(self, build: DoubleBuild) -> None:
        self.build = build
        self.lib_dir = build.lib_dir
        self.lib = ctypes.CDLL(str(build.lib_dir / "libhbucp.so"), mode=ctypes.RTLD_GLOBAL)
        lib = self.lib
        lib.hbTestDouble_configure.argtypes = [ctypes.c_char_p, ctypes.c_int64]
        lib.hbTestDouble_configure.restype = ctypes.c_int32
        lib.hbTestDouble_config.argtypes = [ctypes.c_char_p]
        lib.hbTestDouble_config.restype = ctypes.c_int64
        lib.hbTestDouble_stat.argtypes = [ctypes.c_char_p]
        lib.hbTestDouble_stat.restype = ctypes.c_int64
        for fn in (lib.hbTestDouble_stats, lib.hbTestDouble_log):
            fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
            fn.restype = ctypes.c_size_t
        lib.hbTestDouble_reset.argtypes = []
        lib.hbTestDouble_reset.restype = None
        lib.hbTestDouble_dims.argtypes = []
        lib.hbTestDouble_dims.restype = ctypes.c_int32
        # Tasks the engine leaked on purpose (the library failed to wait or release them):
        # they stay alive in the double for the rest of the session.
        self.leaked_tasks = 0

    def _text(self, fn) -> str:
        while True:
            n = fn(None, 0)
            buf = ctypes.create_string_buffer(n + 1)
            if fn(buf, n + 1) <= n:
                return buf.raw[:n].decode()

    def configure(self, key: str, value: int) -> None:
        rc = self.lib.hbTestDouble_configure(key.encode(), int(value))
        assert rc == 0, f"the double does not know config key {key!r}"

    def config(self, key: str) -> int:
        return self.lib.hbTestDouble_config(key.encode())

    def stat(self, name: str) -> int:
        return self.lib.hbTestDouble_stat(name.encode())

    def stats(self) -> Dict[str, int]:
        out = {}
        for line in self._text(self.lib.hbTestDouble_stats).splitlines():
            k, _, v = line.partition("=")
            out[k] = int(v)
        return out

    def live(self) -> Dict[str, int]:
        return {k: self.stat(k) for k in LIVE_COUNTERS}

    def log(self) -> List[str]:
        return self._text(self.lib.hbTestDouble_log).splitlines()

    def events(self, kind: Optional[str] = None) -> List["Event"]:
        evs = [parse_event(i, line) for i, line in enumerate(self.log())]
        return [e for e in evs if kind is None or e.kind == kind]

    def own_live_mems(self) -> Dict[int, int]:
        """Sysmem allocated since the last reset() and not freed yet: mem id -> address.

        Unlike the live_sysmem counter, this ignores buffers of earlier tests that may be
        freed at any time (e.g. arrays kept alive by a failed test's traceback)."""
        live: Dict[int, int] = {}
        for e in self.events():
            if e.kind == "malloc":
                live[e.int("mem")] = e.int("vir")
            elif e.kind == "free":
                live.pop(e.int("mem"), None)
        return live

    def own_live_packed(self) -> int:
        """Packed handles created since the last reset() and not released yet."""
        evs = self.events()
        return sum(e.kind == "init" for e in evs) - sum(e.kind == "release_packed" for e in evs)

    def reset(self) -> None:
        self.lib.hbTestDouble_reset()

    def dims(self) -> int:
        return self.lib.hbTestDouble_dims()


@dataclass
class Event:
    """One log line: ``kind`` is its first word, ``f`` its key=value fields."""

    index: int
    kind: str
    f: Dict[str, str]
    line: str

    def int(self, key: str) -> int:
        return int(self.f[key], 0)

    def ids(self, key: str) -> List[int]:
        return [int(x) for x in self.f[key].split(",") if x]


def parse_event(index: int, line: str) -> Event:
    words = line.split()
    kind = words[0] if words else ""
    fields = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    return Event(index, kind, fields, line)


def mem_addresses(events: Iterable[Event]) -> Dict[int, int]:
    """Sysmem id -> virtual address, from the malloc lines."""
    return {e.int("mem"): e.int("vir") for e in events if e.kind == "malloc"}


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20.0,
               detail: Optional[Callable[[], str]] = None) -> None:
    """Polls a condition the double cannot signal (tasks reaching its queue)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}"
                                 + (f" ({detail()})" if detail else ""))
        time.sleep(0.002)


def settle() -> None:
    """Drops unreachable outputs/runtimes so their buffers and tasks are given back."""
    gc.collect()
    gc.collect()  # what the first pass's finalizers released


# ---- fixtures ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _double_instance(build: DoubleBuild) -> Double:
    return Double(build)


@pytest.fixture(scope="session")
def ucp_double() -> Double:
    """Builds the 10-dim double, points the engine at it and returns its ctypes handle."""
    build = build_double(10)
    lib_dir = str(build.lib_dir)
    loaded = dict(_hbm_ext._engine_versions())
    if "ucp" in loaded and os.path.realpath(os.environ.get("HBM_UCP_LIB_DIR", "")) != os.path.realpath(lib_dir):
        pytest.fail("the BPU engine was loaded before the test double was set up "
                    f"(HBM_UCP_LIB_DIR={os.environ.get('HBM_UCP_LIB_DIR')!r}, engine {loaded['ucp']!r})")
    os.environ["HBM_UCP_LIB_DIR"] = lib_dir
    double = _double_instance(build)
    assert double.dims() == 10
    if not hasattr(double, "session_config"):
        double.session_config = {k: double.config(k) for k in CONFIG_KEYS}  # type: ignore[attr-defined]
    return double


def _restore(double: Double) -> None:
    """reset(), then the config the session started with (HBM_UCP_DOUBLE_CONFIG)."""
    double.reset()
    for k, v in double.session_config.items():  # type: ignore[attr-defined]
        if double.config(k) != v:
            double.configure(k, v)


@pytest.fixture
def ucp(ucp_double: Double, monkeypatch):
    """The double, reset (log, counters other than live_*, config) before and after the test.

    HBM_UCP_TIMEOUT_MS is removed for the test (tests that want it set it with monkeypatch).
    At the end no task may still be alive in the double.
    """
    monkeypatch.delenv("HBM_UCP_TIMEOUT_MS", raising=False)
    ucp_double.configure("hold", 0)
    _restore(ucp_double)
    yield ucp_double
    ucp_double.configure("hold", 0)  # let anything still queued run
    ucp_double.configure("stall", 0)  # ... or stalled
    settle()
    # A task the engine set aside is released by its reaper thread once it is done.
    wait_until(lambda: ucp_double.stat("live_tasks") <= ucp_double.leaked_tasks,
               "the engine's reaper to release finished tasks", timeout=10)
    live_tasks = ucp_double.stat("live_tasks")
    _restore(ucp_double)
    assert live_tasks == ucp_double.leaked_tasks, "tasks left alive in the double after the test"


@pytest.fixture
def hbm_runtime_factory(ucp):
    """open(files) -> HB_HBMRuntime, closed at the end of the test."""
    opened: List[hbm_runtime.HB_HBMRuntime] = []

    def _open(files, **kwargs) -> hbm_runtime.HB_HBMRuntime:
        rt = hbm_runtime.HB_HBMRuntime(files, **kwargs)
        opened.append(rt)
        return rt

    yield _open
    for rt in opened:
        rt.close()
    opened.clear()  # the ucp fixture collects what is left


@pytest.fixture
def more_host_cores():
    """more_host_cores(n): at least n host virtual cores for this test (restored after)."""
    before = hbm_runtime.host_cores()

    def _ensure(n: int) -> None:
        if hbm_runtime.host_cores() < n:
            hbm_runtime.set_host_cores(n)

    yield _ensure
    if hbm_runtime.host_cores() != before:
        hbm_runtime.set_host_cores(before)


# ---- subprocesses -------------------------------------------------------------------------------


def python_env(lib_dir: Optional[os.PathLike] = None, **extra: str) -> Dict[str, str]:
    """Environment of a child interpreter that imports the same hbm_runtime and these helpers."""
    env = dict(os.environ)
    pkg_parent = str(Path(os.path.abspath(hbm_runtime.__file__)).parent.parent)  # not resolved: dev builds link
    paths = [pkg_parent, str(TESTS_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    for key in ("HBM_UCP_LIB_DIR", "HBM_UCP_TIMEOUT_MS", "HBM_UCP_DOUBLE_CONFIG"):
        env.pop(key, None)
    if lib_dir is not None:
        env["HBM_UCP_LIB_DIR"] = str(lib_dir)
    env.update(extra)
    return env


def run_python(code: str, env: Dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter (sys.executable); fails the test on a non-zero exit."""
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO))
    assert proc.returncode == 0, f"child exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


# ---- the model description format and its ops (tests/ucp_double/README.md) ----------------------

NP_DTYPES = {
    "S4": np.int8, "U4": np.uint8, "S8": np.int8, "U8": np.uint8, "F16": np.float16,
    "S16": np.int16, "U16": np.uint16, "F32": np.float32, "S32": np.int32, "U32": np.uint32,
    "F64": np.float64, "S64": np.int64, "U64": np.uint64, "BOOL8": np.bool_,
}
ITEM_SIZES = {"S4": 1, "U4": 1, "S8": 1, "U8": 1, "F16": 2, "S16": 2, "U16": 2, "F32": 4,
              "S32": 4, "U32": 4, "F64": 8, "S64": 8, "U64": 8, "BOOL8": 1}
_INT_RANGES = {"S4": (-8, 7), "U4": (0, 15)}


@dataclass
class TensorDef:
    name: str
    dtype: str
    shape: List[int]
    strides: Optional[List[int]] = None
    aligned: Optional[int] = None
    valid: Optional[List[int]] = None
    desc: str = ""
    scale: List[float] = field(default_factory=list)
    zero: List[int] = field(default_factory=list)
    axis: int = 0
    quantized: bool = False
    op: Tuple[str, List[str], float, float] = ("fill", [], 0.0, 0.0)

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(NP_DTYPES[self.dtype])

    def declared_strides(self) -> List[int]:
        """The strides the library reports: as written, else dense (-1 outside dynamic dims)."""
        if self.strides is not None:
            return list(self.strides)
        out, step = [], ITEM_SIZES[self.dtype]
        for d in reversed(self.shape):
            out.append(step)
            step = step * d if step > 0 and d >= 0 else -1
        return list(reversed(out))


@dataclass
class ModelDef:
    name: str
    desc: str = ""
    compile_cores: int = 1
    latency_us: int = 0
    inputs: List[TensorDef] = field(default_factory=list)
    outputs: List[TensorDef] = field(default_factory=list)

    def input(self, name: str) -> TensorDef:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> TensorDef:
        return next(t for t in self.outputs if t.name == name)


@dataclass
class FileDef:
    desc: str = ""
    models: Dict[str, ModelDef] = field(default_factory=dict)


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s)


def _ints(s: str) -> List[int]:
    return [int(float(x)) for x in s.split(",")]


def parse_model_file(path: os.PathLike | str) -> FileDef:
    """Reads a model description (our own test format, not a real .hbm)."""
    lines = Path(path).read_text().splitlines()
    assert lines[0] == "HBM-TEST-DOUBLE 1", f"{path} is not a model description"
    f = FileDef()
    model: Optional[ModelDef] = None
    tensor: Optional[TensorDef] = None
    for line in lines[1:]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "file_desc":
            f.desc = _unescape(rest)
        elif word == "model":
            model = ModelDef(rest.strip())
            f.models[model.name] = model
            tensor = None
        elif word == "model_desc":
            model.desc = _unescape(rest)
        elif word == "compile_cores":
            model.compile_cores = int(rest)
        elif word == "latency_us":
            model.latency_us = int(rest)
        elif word in ("input", "output"):
            name, dtype, *opts = rest.split()
            tensor = TensorDef(name, dtype, [])
            for opt in opts:
                key, _, val = opt.partition("=")
                if key == "shape":
                    tensor.shape = _ints(val)
                elif key == "strides":
                    tensor.strides = _ints(val)
                elif key == "aligned":
                    tensor.aligned = int(val)
                elif key == "valid":
                    tensor.valid = _ints(val)
            (model.inputs if word == "input" else model.outputs).append(tensor)
        elif word == "desc":
            tensor.desc = _unescape(rest)
        elif word == "quant":
            tensor.quantized = True
            for opt in rest.split():
                key, _, val = opt.partition("=")
                if key == "scale":
                    tensor.scale = [float(x) for x in val.split(",")]
                elif key == "zero":
                    tensor.zero = _ints(val)
                elif key == "axis":
                    tensor.axis = int(val)
        elif word == "op":
            kind, *opts = rest.split()
            ins: List[str] = []
            value = step = 0.0
            for opt in opts:
                key, _, val = opt.partition("=")
                if key == "in":
                    ins = val.split(",")
                elif key == "value":
                    value = float(val)
                elif key == "step":
                    step = float(val)
            tensor.op = (kind, ins, value, step)
        else:
            raise AssertionError(f"{path}: unknown statement {word!r}")
    return f


def _convert(v: np.ndarray, dtype: str) -> np.ndarray:
    """The double's double -> element conversion: floats round to nearest, integers truncate
    toward zero and saturate, BOOL8 is v != 0."""
    if dtype == "F64":
        return v.astype(np.float64)
    if dtype == "F32":
        return v.astype(np.float32)
    if dtype == "F16":
        return v.astype(np.float32).astype(np.float16)
    if dtype == "BOOL8":
        return v != 0
    npt = NP_DTYPES[dtype]
    lo, hi = _INT_RANGES.get(dtype, (np.iinfo(npt).min, np.iinfo(npt).max))
    t = np.trunc(np.nan_to_num(v, nan=0.0, posinf=np.inf, neginf=-np.inf))
    out = np.zeros(v.shape, dtype=npt)
    low, high = t <= float(lo), t >= float(hi)
    mid = ~(low | high)
    out[mid] = t[mid].astype(npt)
    out[low], out[high] = lo, hi
    return out


def expected_outputs(model: ModelDef, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """What the double computes for ``inputs`` (dense arrays), per the ops in the model file:
    output element k (C order) reads an input of N elements at k mod N."""
    flat = {name: np.asarray(a).reshape(-1).astype(np.float64) for name, a in inputs.items()}
    out = {}
    for t in model.outputs:
        shape = t.valid if t.valid is not None else t.shape
        n = int(np.prod(shape))
        k = np.arange(n, dtype=np.int64)
        kind, ins, value, step = t.op

        def arg(name: str) -> np.ndarray:
            a = flat[name]
            return a[k % a.size] if a.size else np.zeros(n)

        if kind == "fill":
            v = np.full(n, value)
        elif kind == "iota":
            v = value + k.astype(np.float64) * step
        elif kind == "copy":
            v = arg(ins[0])
        elif kind == "add":
            v = arg(ins[0]) + value
        elif kind == "mul":
            v = arg(ins[0]) * value
        elif kind == "sum":
            v = np.zeros(n)
            for name in ins:
                v = v + arg(name)
        elif kind == "rowsum":
            a = np.asarray(inputs[ins[0]])
            inner = a.shape[-1]
            rows = flat[ins[0]].reshape(-1, inner)
            sums = np.cumsum(rows, axis=1)[:, -1]  # sequential, like the double
            v = sums[k % rows.shape[0]]
        else:
            raise AssertionError(f"unknown op {kind!r}")
        out[t.name] = _convert(v, t.dtype).reshape(shape)
    return out


def random_inputs(model: ModelDef, seed: int, shapes: Optional[Dict[str, Sequence[int]]] = None) -> Dict[str, np.ndarray]:
    """Dense random inputs of the model's dtypes (small integers for exact float sums)."""
    rng = np.random.default_rng(seed)
    out = {}
    for t in model.inputs:
        shape = list((shapes or {}).get(t.name, t.shape))
        if t.dtype == "BOOL8":
            out[t.name] = rng.integers(0, 2, shape).astype(np.bool_)
        elif t.np_dtype.kind == "f":
            out[t.name] = rng.integers(-50, 50, shape).astype(t.np_dtype) / t.np_dtype.type(4)
        else:
            info = np.iinfo(t.np_dtype)
            out[t.name] = rng.integers(max(info.min, -1000), min(info.max, 1000), shape, endpoint=True).astype(t.np_dtype)
    return out


def assert_outputs_equal(got: Dict[str, np.ndarray], want: Dict[str, np.ndarray], what: str = "") -> None:
    # run() keys outputs in the vendor package's dict order.
    from models import vendor_order
    order = vendor_order(want)
    assert list(got) == order, f"{what}: output names {list(got)} != {order}"
    for name, w in want.items():
        g = got[name]
        assert g.dtype == w.dtype, f"{what}: output {name!r} dtype {g.dtype} != {w.dtype}"
        assert g.shape == w.shape, f"{what}: output {name!r} shape {g.shape} != {w.shape}"
        if not np.array_equal(g, w):
            bad = np.argwhere(g != w)
            first = tuple(bad[0])
            raise AssertionError(f"{what}: output {name!r} differs at {len(bad)} elements, first {first}: "
                                 f"got {g[first]!r}, expected {w[first]!r}")


def yolo_inputs(seed: int) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"data_y": rng.integers(0, 256, (1, 672, 672, 1), dtype=np.uint8),
            "data_uv": rng.integers(0, 256, (1, 336, 336, 2), dtype=np.uint8)}


def dense_strides(shape: Sequence[int], item: int) -> Tuple[int, ...]:
    out, step = [], item
    for d in reversed(shape):
        out.append(step)
        step *= d
    return tuple(reversed(out))


# ---- the same checks under both struct layouts ------------------------------------------------

LAYOUT_FILES = ["yolov5x_672x672_nv12.hbm", "multi.hbm", "lanenet256x512.hbm", "square_nv12.hbm"]
LAYOUT_SHAPES = {"m_dyn": {"x": [1, 5]}}
_PROPERTIES = ("model_names", "model_count", "model_descs", "input_counts", "output_counts",
               "input_names", "output_names", "input_descs", "output_descs", "input_shapes",
               "output_shapes", "input_strides", "output_strides")


def layout_report(seed: int = 5) -> Tuple[dict, Dict[str, np.ndarray]]:
    """Loads LAYOUT_FILES in one runtime and returns (metadata as JSON-able data, outputs
    of one run of every model keyed 'model/output'); also checks every output against the
    ops of its model file and its strides against output_strides (or the task's)."""
    rt = hbm_runtime.HB_HBMRuntime([model_file(f) for f in LAYOUT_FILES])
    try:
        meta = {p: getattr(rt, p) for p in _PROPERTIES}
        meta["hbm_descs"] = {os.path.basename(k): v for k, v in rt.hbm_descs.items()}
        meta["input_dtypes"] = {m: {t: int(d) for t, d in v.items()} for m, v in rt.input_dtypes.items()}
        meta["output_dtypes"] = {m: {t: int(d) for t, d in v.items()} for m, v in rt.output_dtypes.items()}
        for kind in ("input_quants", "output_quants"):
            meta[kind] = {m: {t: [int(q.quant_type), q.scale.tolist(), q.zero_point.tolist(), q.axis]
                              for t, q in v.items()} for m, v in getattr(rt, kind).items()}
        defs: Dict[str, ModelDef] = {}
        for f in LAYOUT_FILES:
            defs.update(parse_model_file(model_file(f)).models)
        outputs: Dict[str, np.ndarray] = {}
        strides: Dict[str, List[int]] = {}
        for i, name in enumerate(rt.model_names):
            feeds = yolo_inputs(seed) if name == YOLO else random_inputs(defs[name], seed + i, LAYOUT_SHAPES.get(name))
            result = rt.run(feeds, model_name=name)[name]
            assert_outputs_equal(result, expected_outputs(defs[name], feeds), name)
            for o, arr in result.items():
                declared = rt.output_strides[name][o]
                if all(s > 0 for s in declared):
                    assert list(arr.strides) == declared, (name, o)
                outputs[f"{name}/{o}"] = np.array(arr)
                strides[f"{name}/{o}"] = list(arr.strides)
        meta["run_strides"] = strides
        return meta, outputs
    finally:
        rt.close()
