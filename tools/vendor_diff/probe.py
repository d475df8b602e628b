"""The probe of the vendor differential: exercises whichever ``hbm_runtime`` package is on
``sys.path`` against the UCP test double and writes what it saw as a JSON report.

    python probe.py --side NAME --models DIR --out REPORT.json [--lib-dir DIR]

It runs unchanged with the vendor's package (``hbm-runtime`` 0.1.0.post1) and with this
project's, so it uses only the API both have (the vendor's type stub) and records every
outcome, an exception included, as data instead of stopping. ``compare.py`` diffs two reports.

Report: ``{"schema": "hbm_runtime.vendor_diff/1", "side", "info", "items", "notes"}``.
``items`` maps an item id (e.g. ``meta[multi.hbm].input_shapes``) to a JSON value that is
compared exactly, dict key order included; ``notes`` holds text that helps reading a
difference but is not compared (exception messages, the normalized log of the double).

An exception is recorded as ``{"raised": [builtin classes in its MRO], "except RuntimeError":
bool, "except ValueError": bool, "except TypeError": bool}``; its type name and message go
to ``notes``. Outputs are recorded by shape, dtype, strides and a checksum of the contents
(padding bytes excluded). The double's event log (``hbTestDouble_log``) is summarized per
scenario: allocations, flushes, submitted scheduling parameters, leaks after teardown.

Needs: the double's ``libhbucp.so`` in ``--lib-dir`` (default ``$HBM_UCP_LIB_DIR``), the
directory the package loads it from too, so both see one instance of the library. Cases
that may end the process (the vendor's package aborts on some) run in a child interpreter
started as ``$VDIFF_CHILD_PREFIX sys.executable probe.py --child CASE``.
"""

from __future__ import annotations

import argparse
import builtins
import ctypes
import gc
import hashlib
import json
import os
import platform
import subprocess
import sys
import traceback
import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

SCHEMA = "hbm_runtime.vendor_diff/1"

# The model files the tests use (tests/ucp_double/models) and the sets loaded together.
SINGLE_FILES = ["lanenet256x512.hbm", "yolov5x_672x672_nv12.hbm", "multi.hbm", "second.hbm",
                "square_nv12.hbm", "bad_stride.hbm"]
FILE_SETS = [[f] for f in SINGLE_FILES] + [
    ["multi.hbm", "second.hbm"],
    ["yolov5x_672x672_nv12.hbm", "multi.hbm", "lanenet256x512.hbm", "square_nv12.hbm"],
]
# Runtime shapes of dynamic (-1) input dims, and the models that have such inputs.
DYNAMIC_DIM = 5
DYNAMIC_MODELS = {"m_dyn"}
# What the log of a run on a runtime that ran before is compared by (allocations and flushes
# are compared on fresh runtimes: the lifecycle[...] and repeat[...] scenarios).
RUN_LOG_KEYS = ("submits", "infers", "errors")

PROPERTIES = ["model_names", "model_count", "model_descs", "hbm_descs", "input_counts",
              "input_names", "input_descs", "input_shapes", "input_dtypes", "input_quants",
              "input_strides", "output_counts", "output_names", "output_descs", "output_shapes",
              "output_dtypes", "output_quants", "output_strides", "sched_params"]
# Members of the vendor's type stub.
STUB_MODULE = ["HB_HBMRuntime", "hbDNNDataType", "hbDNNQuantiType", "QuantParams", "SchedParam"]
STUB_CLASS = ["version", "run", "set_scheduling_params"] + PROPERTIES
DTYPE_NAMES = ["S4", "U4", "S8", "U8", "F16", "S16", "U16", "F32", "S32", "U32", "F64", "S64",
               "U64", "BOOL8", "MAX"]
NUMPY_OF = {"S4": np.int8, "U4": np.uint8, "S8": np.int8, "U8": np.uint8, "F16": np.float16,
            "S16": np.int16, "U16": np.uint16, "F32": np.float32, "S32": np.int32,
            "U32": np.uint32, "F64": np.float64, "S64": np.int64, "U64": np.uint64,
            "BOOL8": np.bool_}


# ---- the double's test-only API --------------------------------------------------------------


class Double:
    def __init__(self, lib_dir: str) -> None:
        self.lib = ctypes.CDLL(os.path.join(lib_dir, "libhbucp.so"), mode=ctypes.RTLD_GLOBAL)
        self.lib.hbTestDouble_log.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        self.lib.hbTestDouble_log.restype = ctypes.c_size_t
        self.lib.hbTestDouble_reset.argtypes = []
        self.lib.hbTestDouble_reset.restype = None

    def log(self) -> List[str]:
        fn = self.lib.hbTestDouble_log
        while True:
            n = fn(None, 0)
            buf = ctypes.create_string_buffer(n + 1)
            if fn(buf, n + 1) <= n:
                return buf.raw[:n].decode().splitlines()

    def reset(self) -> None:
        self.lib.hbTestDouble_reset()


def _fields(line: str) -> Tuple[str, Dict[str, str]]:
    words = line.split()
    return (words[0] if words else ""), dict(w.split("=", 1) for w in words[1:] if "=" in w)


def summarize_log(lines: List[str]) -> Tuple[Dict[str, Any], List[str]]:
    """(compared summary, normalized lines) of one scenario's log. Ids and addresses differ
    between clients and runs, so mems and tasks are renumbered in order of appearance."""
    mallocs, flushes, submits, errors = [], [], [], []
    kinds: Dict[str, int] = {}
    live: Dict[str, int] = {}
    tasks_open: Dict[str, bool] = {}
    ids: Dict[str, str] = {}
    normalized = []

    def rename(prefix: str, value: str) -> str:
        key = prefix + value
        if key not in ids:
            ids[key] = f"{prefix}{sum(k.startswith(prefix) for k in ids)}"
        return ids[key]

    for line in lines:
        kind, f = _fields(line)
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "malloc":
            mallocs.append([int(f["bytes"]), int(f["cached"])])
            live[f["mem"]] = int(f["bytes"])
        elif kind == "free":
            live.pop(f.get("mem", ""), None)
        elif kind == "flush":
            flushes.append([f["flag"], int(f["bytes"])])
        elif kind == "submit":
            submits.append({k: f.get(k) for k in ("priority", "custom_id", "backend", "device")})
            tasks_open[f["task"]] = True
        elif kind == "release":
            tasks_open.pop(f.get("task", ""), None)
        elif kind == "error":
            errors.append(line.split(":", 1)[0])
        words = []
        for w in line.split():
            k, eq, v = w.partition("=")
            if eq and k in ("mem", "task"):
                w = f"{k}={rename(k[0], v)}"
            elif eq and k in ("inputs", "outputs"):
                w = f"{k}={','.join(rename('m', x) for x in v.split(',') if x)}"
            elif eq and k == "vir":
                w = "vir=*"
            words.append(w)
        normalized.append(" ".join(words))
    summary = {
        "mallocs": sorted(mallocs),
        "flushes": sorted(flushes),
        "submits": sorted(submits, key=lambda s: json.dumps(s, sort_keys=True)),
        "infers": kinds.get("infer", 0),
        "errors": sorted(errors),
        "live_mems_after": sorted(live.values()),
        "unreleased_tasks": len(tasks_open),
    }
    return summary, normalized


# ---- recording -------------------------------------------------------------------------------


def error_record(e: BaseException) -> Dict[str, Any]:
    family = [c.__name__ for c in type(e).__mro__
              if getattr(builtins, c.__name__, None) is c and c not in (BaseException, Exception, object)]
    return {"raised": family, "except RuntimeError": isinstance(e, RuntimeError),
            "except ValueError": isinstance(e, ValueError), "except TypeError": isinstance(e, TypeError)}


def error_note(e: BaseException) -> str:
    return f"{type(e).__module__}.{type(e).__qualname__}: {e}".replace("\n", " | ")[:600]


def checksum(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]


def array_record(arr: Any) -> Dict[str, Any]:
    if not isinstance(arr, np.ndarray):
        return {"type": type(arr).__name__}
    return {"shape": list(arr.shape), "dtype": str(arr.dtype), "strides": list(arr.strides),
            "sha256": checksum(arr)}


def enum_value(v: Any) -> Any:
    name = getattr(v, "name", None)
    try:
        return [name if isinstance(name, str) else str(v), int(v)]
    except (TypeError, ValueError):
        return repr(v)


def to_json(v: Any) -> Any:
    """JSON data of a property value; dicts keep their key order."""
    if isinstance(v, dict):
        return {str(k): to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    if isinstance(v, (bool, int, float, str)) and type(v) in (bool, int, float, str):
        return v
    if isinstance(v, np.ndarray):
        return {"array": v.tolist(), "dtype": str(v.dtype)}
    if isinstance(v, np.generic):
        return v.item()
    cls = type(v).__name__
    if cls in ("hbDNNDataType", "hbDNNQuantiType"):
        return enum_value(v)
    if cls == "QuantParams":
        return {"quant_type": enum_value(v.quant_type), "axis": to_json(v.axis),
                "scale": to_json(v.scale), "zero_point": to_json(v.zero_point)}
    if cls == "SchedParam":
        return {k: to_json(getattr(v, k, None)) for k in ("priority", "customId", "bpu_cores", "deviceId")}
    if isinstance(v, str):  # a str subclass
        return str(v)
    if isinstance(v, int):
        return int(v)
    return {"type": cls, "repr": repr(v)[:200]}


class Probe:
    def __init__(self, side: str, models: str, lib_dir: str) -> None:
        self.side = side
        self.models = models
        self.lib_dir = lib_dir
        self.items: Dict[str, Any] = {}
        self.notes: Dict[str, str] = {}
        self.double = Double(lib_dir)
        import hbm_runtime  # after the double: the package may load the libraries at import
        self.hbm = hbm_runtime
        self.HB = hbm_runtime.HB_HBMRuntime

    def put(self, item: str, value: Any, note: Optional[str] = None) -> None:
        if item in self.items:
            raise RuntimeError(f"probe bug: item {item} recorded twice")
        self.items[item] = value
        if note:
            self.notes[item] = note

    def attempt(self, item: Optional[str], fn: Callable[[], Any]) -> Tuple[bool, Any]:
        """Calls fn(); on an exception records it under ``item`` (when given)."""
        try:
            return True, fn()
        except Exception as e:  # noqa: BLE001 - every outcome is data here
            if item is not None:
                self.put(item, {"error": error_record(e)}, error_note(e))
            return False, e

    def outcome(self, item: str, fn: Callable[[], Any], record: Callable[[Any], Any] = lambda r: "ok") -> Any:
        ok, result = self.attempt(item, fn)
        if ok:
            self.put(item, record(result))
            return result
        return None

    def path(self, name: str) -> str:
        return os.path.join(self.models, name)

    def load(self, files: List[str]) -> Any:
        paths = [self.path(f) for f in files]
        return self.HB(paths[0] if len(paths) == 1 else paths)

    def scenario_log(self, item: str, keys: Optional[Tuple[str, ...]] = None) -> None:
        """The double's log since the last reset, summarized (only ``keys`` of the summary
        when given: runs on a runtime that ran before see the buffers it already holds)."""
        gc.collect()
        gc.collect()
        summary, normalized = summarize_log(self.double.log())
        if keys is not None:
            summary = {k: summary[k] for k in keys}
        self.put(item, summary, "\n".join(normalized[:200]))

    # -- inputs ----------------------------------------------------------------------------------
    def inputs_for(self, rt: Any, model: str, seed_text: str = "") -> Dict[str, np.ndarray]:
        """Deterministic inputs of ``model`` (seeded by its name), in its input order."""
        rng = np.random.default_rng(zlib.crc32(f"{model}/{seed_text}".encode()))
        shapes = rt.input_shapes[model]
        dtypes = rt.input_dtypes[model]
        out = {}
        for name in rt.input_names[model]:
            shape = [d if d > 0 else DYNAMIC_DIM for d in shapes[name]]
            dt: Any = np.dtype(NUMPY_OF[enum_value(dtypes[name])[0]])
            if dt.kind == "f":
                arr = rng.uniform(-100, 100, shape).astype(dt)
            elif dt.kind == "b":
                arr = rng.integers(0, 2, shape).astype(dt)
            else:
                info = np.iinfo(dt)
                arr = rng.integers(max(info.min, -1000), min(info.max, 1000), shape, endpoint=True).astype(dt)
            out[name] = arr
        return out

    # -- sections ------------------------------------------------------------------------------
    def api(self) -> None:
        hbm, HB = self.hbm, self.HB
        self.put("api.module_names", {n: hasattr(hbm, n) for n in STUB_MODULE})
        self.outcome("api.module_path", lambda: __import__("hbm_runtime.HB_HBMRuntime", fromlist=["QuantParams"]),
                     lambda m: {n: hasattr(m, n) for n in STUB_MODULE})
        self.put("api.class_members", {n: hasattr(HB, n) for n in STUB_CLASS})
        dt, qt = hbm.hbDNNDataType, hbm.hbDNNQuantiType
        self.put("api.hbDNNDataType", {n: enum_value(getattr(dt, n)) if hasattr(dt, n) else None for n in DTYPE_NAMES})
        self.put("api.hbDNNQuantiType", {n: enum_value(getattr(qt, n)) if hasattr(qt, n) else None for n in ("NONE", "SCALE")})
        self.outcome("api.hbDNNDataType(7)", lambda: dt(7), enum_value)
        self.put("api.str(hbDNNDataType.F32)", str(dt.F32))
        self.put("api.repr(hbDNNDataType.U8)", repr(dt.U8))
        self.put("api.hbDNNDataType.F32 == 7", bool(dt.F32 == 7))
        self.outcome("api.version(class attribute)", lambda: HB.version, lambda v: {"str": isinstance(v, str), "value": str(v)})
        self.outcome("api.version()", lambda: HB.version(), lambda v: {"str": isinstance(v, str), "value": str(v)})
        self.outcome("api.SchedParam()", lambda: hbm.SchedParam(), to_json)
        self.outcome("api.QuantParams()", lambda: hbm.QuantParams(), to_json)

    def metadata(self) -> None:
        for files in FILE_SETS:
            key = "+".join(files)
            self.double.reset()
            ok, rt = self.attempt(f"load[{key}]", lambda: self.load(files))
            if not ok:
                continue
            self.put(f"load[{key}]", "ok")
            for prop in PROPERTIES:
                self.outcome(f"meta[{key}].{prop}", lambda: getattr(rt, prop), to_json)
            self.outcome(f"meta[{key}].version", lambda: rt.version, lambda v: str(v))
            del rt
            self.scenario_log(f"log[load {key}]")

    def runs(self) -> None:
        """Every model of every file, each input form, one run each; outputs and the log."""
        for f in SINGLE_FILES:
            ok, rt = self.attempt(None, lambda: self.load([f]))
            if not ok:
                continue
            names = list(rt.model_names)
            single = len(names) == 1
            for m in names:
                feeds = self.inputs_for(rt, m)
                kw = {} if single else {"model_name": m}
                forms: List[Tuple[str, Callable[[], Any]]] = [
                    ("dict", lambda: rt.run(feeds, **kw)),
                    ("kw input_tensors", lambda: rt.run(input_tensors=feeds, **kw)),
                    ("multi", lambda: rt.run({m: feeds}, **kw)),
                    ("kw multi_input_tensors", lambda: rt.run(multi_input_tensors={m: feeds}, **kw)),
                ]
                if len(feeds) == 1:
                    only = next(iter(feeds.values()))
                    forms += [("array", lambda: rt.run(only, **kw)),
                              ("kw input_tensor", lambda: rt.run(input_tensor=only, **kw))]
                for form, call in forms:
                    self.double.reset()
                    item = f"run[{f}].{m}.{form}"
                    ok, res = self.attempt(item, call)
                    if ok:
                        self.record_result(item, res)
                        del res
                    self.scenario_log(f"log[run {f}].{m}.{form}", RUN_LOG_KEYS)
            del rt
        # All models of several files at once (the multi form without model_name); not the
        # dynamic-shape model, which has items of its own (run[multi.hbm].m_dyn.*).
        files = ["multi.hbm", "second.hbm"]
        ok, rt = self.attempt("run[multi.hbm+second.hbm].all", lambda: self.load(files))
        if ok:
            all_feeds = {m: self.inputs_for(rt, m) for m in rt.model_names if m not in DYNAMIC_MODELS}
            self.double.reset()
            ok, res = self.attempt("run[multi.hbm+second.hbm].all", lambda: rt.run(all_feeds))
            if ok:
                self.record_result("run[multi.hbm+second.hbm].all", res)
                del res
            self.scenario_log("log[run multi.hbm+second.hbm].all", RUN_LOG_KEYS)
            del rt
        # Load, one run and teardown of every file: what was allocated, flushed, freed.
        for f in SINGLE_FILES[:5]:
            self.double.reset()
            ok, rt = self.attempt(None, lambda: self.load([f]))
            if not ok:
                continue
            all_feeds = {m: self.inputs_for(rt, m) for m in rt.model_names if m not in DYNAMIC_MODELS}
            ok, res = self.attempt(f"lifecycle[{f}].run", lambda: rt.run(all_feeds))
            if ok:
                self.put(f"lifecycle[{f}].run", "ok")
            del rt, res
            self.scenario_log(f"log[lifecycle {f}]")
        # Three runs of one model on one runtime: buffers per run or kept.
        self.double.reset()
        ok, rt = self.attempt("repeat[second.hbm]", lambda: self.load(["second.hbm"]))
        if ok:
            feeds = self.inputs_for(rt, "m_second")
            for i in range(3):
                self.attempt(None, lambda: rt.run(feeds))
            self.put("repeat[second.hbm]", "ok")
            del rt
            self.scenario_log("log[repeat second.hbm x3]")

    def record_result(self, item: str, res: Any) -> None:
        self.put(item + ".result", {"dict": isinstance(res, dict), "models": list(res) if isinstance(res, dict) else None})
        if not isinstance(res, dict):
            return
        for m, outs in res.items():
            self.put(f"{item}.{m}.keys", list(outs) if isinstance(outs, dict) else type(outs).__name__)
            if isinstance(outs, dict):
                for o, arr in outs.items():
                    self.put(f"{item}.{m}.out[{o}]", array_record(arr))

    def held(self) -> None:
        """Results kept by the caller stay valid across later runs and the runtime's deletion."""
        ok, rt = self.attempt("held", lambda: self.load(["multi.hbm"]))
        if not ok:
            return
        feeds1 = self.inputs_for(rt, "m_nv12", "1")
        feeds2 = self.inputs_for(rt, "m_nv12", "2")
        ok, r1 = self.attempt("held", lambda: rt.run(feeds1, model_name="m_nv12"))
        if not ok:
            return
        first = array_record(r1["m_nv12"]["out"])
        self.attempt(None, lambda: rt.run(feeds2, model_name="m_nv12"))
        after_run = array_record(r1["m_nv12"]["out"])
        del rt
        gc.collect()
        after_del = array_record(r1["m_nv12"]["out"])
        arr = r1["m_nv12"]["out"]
        self.put("held", {"unchanged after a later run": after_run == first,
                          "unchanged after the runtime is deleted": after_del == first,
                          "writeable": bool(arr.flags.writeable), "owndata": bool(arr.flags.owndata)})

    def scheduling(self) -> None:
        m = "m_second"
        cases: List[Tuple[str, Dict[str, Any]]] = [("default", {})]
        cases += [(f"priority={p}", {"priority": {m: p}}) for p in (0, 1, 100, 254, 255, 256, -1)]
        cases += [(f"custom_id={c}", {"custom_id": {m: c}})
                  for c in (0, 5, -5, 2**31, 2**63 - 1, -(2**63), 2**63)]
        cases += [(f"bpu_cores={c}", {"bpu_cores": {m: c}})
                  for c in ([0], [1], [2], [3], [0, 1], [3, 0], [0, 1, 2, 3], [], [-1], [4], [-2], [0, 0])]
        cases += [("device_id=0", {"device_id": {m: 0}}), ("device_id=-1", {"device_id": {m: -1}})]
        cases += [("priority=200,bpu_cores=[1],custom_id=7", {"priority": {m: 200}, "bpu_cores": {m: [1]}, "custom_id": {m: 7}}),
                  ("unknown model", {"priority": {"no_such_model": 1}}),
                  ("priority not a dict", {"priority": 5}),
                  ("bpu_cores not a list", {"bpu_cores": {m: 1}}),
                  ("priority a str", {"priority": {m: "high"}}),
                  ("valid priority with invalid bpu_cores", {"priority": {m: 9}, "bpu_cores": {m: [7]}})]
        for name, kwargs in cases:
            self.sched_case(name, kwargs)
        # Two models with their own settings, run together.
        ok, rt = self.attempt("sched[two models]", lambda: self.load(["multi.hbm", "second.hbm"]))
        if ok:
            self.outcome("sched[two models].set", lambda: rt.set_scheduling_params(
                priority={"m_add": 200, "m_second": 100}, bpu_cores={"m_add": [0, 1], "m_second": [2]},
                custom_id={"m_add": 3, "m_second": -4}))
            self.put("sched[two models].read", to_json(rt.sched_params))
            feeds = {k: self.inputs_for(rt, k) for k in ("m_add", "m_second")}
            self.double.reset()
            self.outcome("sched[two models].run", lambda: rt.run(feeds))
            self.scenario_log("log[sched two models]", RUN_LOG_KEYS)
            del rt
        self.child_case("sched[device_id=1]", "device_id=1")

    def sched_case(self, name: str, kwargs: Dict[str, Any]) -> None:
        ok, rt = self.attempt(f"sched[{name}]", lambda: self.load(["second.hbm"]))
        if not ok:
            return
        if kwargs:
            self.outcome(f"sched[{name}].set", lambda: rt.set_scheduling_params(**kwargs))
        self.outcome(f"sched[{name}].read", lambda: rt.sched_params, to_json)
        self.double.reset()
        feeds = self.inputs_for(rt, "m_second")
        self.outcome(f"sched[{name}].run", lambda: rt.run(feeds), lambda r: array_record(r["m_second"]["y"]))
        summary, normalized = summarize_log(self.double.log())
        self.put(f"sched[{name}].submitted", summary["submits"], "\n".join(normalized))
        del rt

    def child_case(self, item: str, case: str) -> None:
        """A case that may end the process, in a child interpreter: its JSON line and exit."""
        prefix = os.environ.get("VDIFF_CHILD_PREFIX", "").split()
        cmd = prefix + [sys.executable, os.path.abspath(__file__), "--child", case,
                        "--models", self.models, "--lib-dir", self.lib_dir, "--side", self.side]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        items = json.loads(lines[-1]) if lines else {}
        status = proc.returncode if proc.returncode >= 0 else f"signal {-proc.returncode}"
        self.put(item + ".exit", {"status": status, "ended by a signal": proc.returncode < 0},
                 (proc.stderr.strip().splitlines() or [""])[-1][:400])
        for k, v in items.get("items", {}).items():
            self.put(f"{item}.{k}", v, items.get("notes", {}).get(k))

    def errors(self) -> None:
        # Loading.
        load_cases = [("invalid file", ["invalid.hbm"]), ("missing file", ["no_such_file.hbm"]),
                      ("duplicate model name", ["multi.hbm", "dup_name.hbm"]),
                      ("same file twice", ["second.hbm", "second.hbm"])]
        for name, files in load_cases:
            self.double.reset()
            self.outcome(f"error[load {name}]", lambda: self.load(files), lambda rt: {"loaded": list(rt.model_names)})
            self.scenario_log(f"log[error load {name}]")
        self.outcome("error[load empty list]", lambda: self.HB([]), lambda rt: {"loaded": list(rt.model_names)})
        self.outcome("error[load a directory]", lambda: self.HB(self.models), lambda rt: {"loaded": list(rt.model_names)})
        self.outcome("error[load int]", lambda: self.HB(123), lambda rt: {"loaded": list(rt.model_names)})
        onnx = "/tmp/vdiff_not_a_model.onnx"
        with open(onnx, "wb") as fh:
            fh.write(b"not an onnx model")
        self.outcome("error[load .onnx garbage]", lambda: self.HB(onnx), lambda rt: {"loaded": list(rt.model_names)})
        os.unlink(onnx)
        # Running.
        ok, rt = self.attempt("error[load for run errors]", lambda: self.load(["multi.hbm"]))
        if not ok:
            return
        feeds = {m: self.inputs_for(rt, m) for m in rt.model_names}
        add = feeds["m_add"]
        a = add["a"]
        run_cases: List[Tuple[str, Callable[[], Any]]] = [
            ("wrong dtype", lambda: rt.run({"a": a.astype(np.float64), "b": add["b"]}, model_name="m_add")),
            ("wrong shape", lambda: rt.run({"a": a.reshape(3, 2), "b": add["b"]}, model_name="m_add")),
            ("wrong rank", lambda: rt.run({"a": a.reshape(1, 2, 3), "b": add["b"]}, model_name="m_add")),
            ("missing input", lambda: rt.run({"a": a}, model_name="m_add")),
            ("extra input", lambda: rt.run({"a": a, "b": add["b"], "c": a}, model_name="m_add")),
            ("unknown input name", lambda: rt.run({"a": a, "x": add["b"]}, model_name="m_add")),
            ("unknown model_name", lambda: rt.run(add, model_name="no_such_model")),
            ("no model_name with several models", lambda: rt.run(add)),
            ("one array for a two-input model", lambda: rt.run(a, model_name="m_add")),
            ("multi form, unknown model", lambda: rt.run({"m_add": add, "no_such_model": add})),
            ("multi form, a model's inputs wrong", lambda: rt.run({"m_add": {"a": a}, "m_rows": feeds["m_rows"]})),
            ("a list instead of an array", lambda: rt.run({"a": a.tolist(), "b": add["b"]}, model_name="m_add")),
            ("None", lambda: rt.run(None)),
            ("no argument", lambda: rt.run()),
        ]
        for name, call in run_cases:
            self.double.reset()
            self.outcome(f"error[run {name}]", call, self.result_shape)
            self.scenario_log(f"log[error run {name}]")
        # Accepted inputs that need care: non-contiguous, dynamic shapes.
        t = np.ascontiguousarray(a.T).T  # same values, Fortran order
        self.outcome("run[non-contiguous input]", lambda: rt.run({"a": t, "b": add["b"]}, model_name="m_add"),
                     lambda r: array_record(r["m_add"]["y"]))
        x = feeds["m_dyn"]["x"]
        for cols in (DYNAMIC_DIM, 7, 1):
            xin = np.resize(x, (1, cols)).astype(np.float32)
            self.outcome(f"run[m_dyn x=[1,{cols}]]", lambda: rt.run({"x": xin}, model_name="m_dyn"),
                         lambda r: {k: array_record(v) for k, v in r["m_dyn"].items()})
        del rt
        ok, rt = self.attempt("error[load bad_stride.hbm]", lambda: self.load(["bad_stride.hbm"]))
        if ok:
            x = np.arange(6, dtype=np.uint8).reshape(2, 3)
            self.double.reset()
            self.outcome("error[run bad_stride.hbm]", lambda: rt.run(x), self.result_shape)
            self.scenario_log("log[error run bad_stride.hbm]")
            del rt

    @staticmethod
    def result_shape(r: Any) -> Any:
        if isinstance(r, dict):
            return {m: {o: array_record(v) for o, v in outs.items()} for m, outs in r.items()}
        return {"type": type(r).__name__}


def run_child(args: argparse.Namespace) -> None:
    """--child CASE: prints one JSON line of items (written before the risky call too, so a
    crash still leaves what was seen up to it)."""
    probe = Probe(args.side, args.models, args.lib_dir)
    m = "m_second"

    def emit() -> None:
        print(json.dumps({"items": probe.items, "notes": probe.notes}), flush=True)

    if args.child == "device_id=1":
        rt = probe.load(["second.hbm"])
        probe.outcome("set", lambda: rt.set_scheduling_params(device_id={m: 1}))
        probe.outcome("read", lambda: rt.sched_params, to_json)
        emit()
        probe.double.reset()
        feeds = probe.inputs_for(rt, m)
        probe.outcome("run", lambda: rt.run(feeds), lambda r: array_record(r[m]["y"]))
        summary, normalized = summarize_log(probe.double.log())
        probe.put("submitted", summary["submits"], "\n".join(normalized))
        emit()
    else:
        raise SystemExit(f"unknown child case {args.child!r}")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", required=True, help="name of the package under test (vendor, ours)")
    ap.add_argument("--models", required=True, help="tests/ucp_double/models (a copy of)")
    ap.add_argument("--lib-dir", default=os.environ.get("HBM_UCP_LIB_DIR", ""),
                    help="the double's lib directory (default $HBM_UCP_LIB_DIR)")
    ap.add_argument("--out", help="report file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not args.lib_dir:
        ap.error("--lib-dir or HBM_UCP_LIB_DIR is required")
    if args.child:
        run_child(args)
        return 0
    if not args.out:
        ap.error("--out is required")
    probe = Probe(args.side, args.models, args.lib_dir)
    sections = [("api", probe.api), ("metadata", probe.metadata), ("runs", probe.runs),
                ("held", probe.held), ("scheduling", probe.scheduling), ("errors", probe.errors)]
    for name, fn in sections:
        before = len(probe.items)
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a probe bug; keep what was seen
            probe.put(f"probe[{name}]", {"error": error_record(e)}, traceback.format_exc()[-1500:])
        print(f"{name}: {len(probe.items) - before} items", flush=True)
    hbm = probe.hbm
    info = {
        "python": sys.version.split()[0], "machine": platform.machine(), "numpy": np.__version__,
        "package": os.path.dirname(os.path.abspath(hbm.__file__)),
        "package_version": str(getattr(hbm, "__version__", "")),
        "dist": _dist_version(hbm),
    }
    report = {"schema": SCHEMA, "side": args.side, "info": info, "items": probe.items, "notes": probe.notes}
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)
    print(f"{args.side}: {len(probe.items)} items -> {args.out}")
    return 0


def _dist_version(hbm: Any) -> str:
    base = os.path.dirname(os.path.dirname(os.path.abspath(hbm.__file__)))
    for entry in sorted(os.listdir(base)):
        if entry.endswith(".dist-info"):
            return entry[: -len(".dist-info")]
    return ""


if __name__ == "__main__":
    sys.exit(main())
