"""The differences between the vendor's hbm_runtime package and ours that the differential
accepts: the one place that lists them, each with its reason.

``INTENTIONAL``: ours differs on purpose. ``KNOWN``: a difference that is a defect of ours,
known and to be fixed; the differential still fails on it (unless run with
``--accept-known``), but names it as known instead of unexpected.

compare.py lets an entry cover a differing item when one of the entry's patterns matches the
item id (``*`` matches any text; everything else, ``[`` included, is literal) AND either
- one of its (vendor, ours) value pairs fits: exact JSON values, or ANY / MISSING; or
- its ``normalize(item, value)`` makes the two values equal (e.g. ignoring one aspect).
An entry names the values it accepts exactly, so if either side changes in another way the
item is reported again instead of being silently accepted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Pattern, Tuple


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING = _Marker("MISSING")  # the item is absent from that side's report
ANY = _Marker("ANY")  # any value present (the other side's value is what the entry is about)
NO_ERROR = _Marker("NO_ERROR")  # any value present that is not the record of an exception


def _err(*raised: str) -> dict:
    """The probe's record of an exception whose builtin classes are ``raised``."""
    return {"error": {"raised": list(raised), "except RuntimeError": "RuntimeError" in raised,
                      "except ValueError": "ValueError" in raised, "except TypeError": "TypeError" in raised}}


# What each package raises (see probe.error_record).
VENDOR_RUNTIME_ERROR = _err("RuntimeError")
VENDOR_TYPE_ERROR = _err("TypeError")
OUR_RUNTIME_ERROR = _err("RuntimeError")  # HBMRuntimeError, EngineUnavailableError
OUR_INVALID_ARGUMENT = _err("ValueError", "RuntimeError")  # hbm_runtime.InvalidArgumentError
OUR_FILE_NOT_FOUND = _err("FileNotFoundError", "OSError", "ValueError", "RuntimeError")  # ModelFileNotFoundError


def _compile(pattern: str) -> Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern) + r"\Z")


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass
class Intentional:
    key: str  # short id, shown in the diff
    summary: str  # one line: what differs
    reason: str  # why ours differs (on purpose, or what is to be fixed)
    items: List[str]  # item id patterns ('*' = any text)
    vendor: Any = None  # the vendor's value (JSON), ANY or MISSING; with ours, the first pair
    ours: Any = None
    more: List[Tuple[Any, Any]] = field(default_factory=list)  # further (vendor, ours) pairs
    normalize: Optional[Callable[[str, Any], Any]] = None  # or: equal after this
    _res: List[Pattern[str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._res = [_compile(p) for p in self.items]

    @property
    def pairs(self) -> List[Tuple[Any, Any]]:
        first = [] if self.vendor is None and self.ours is None else [(self.vendor, self.ours)]
        return first + list(self.more)

    def covers(self, item: str, vendor: Any, ours: Any) -> bool:
        if not any(r.match(item) for r in self._res):
            return False
        if any(_fits(v, vendor) and _fits(o, ours) for v, o in self.pairs):
            return True
        if self.normalize is not None and vendor is not MISSING and ours is not MISSING:
            return _text(self.normalize(item, vendor)) == _text(self.normalize(item, ours))
        return False


def _fits(expected: Any, value: Any) -> bool:
    if expected is ANY:
        return value is not MISSING
    if expected is NO_ERROR:
        return value is not MISSING and not (isinstance(value, dict) and "error" in value)
    if expected is MISSING or value is MISSING:
        return expected is value
    return _text(expected) == _text(value)


# ---- normalizations ------------------------------------------------------------------------


def _min_64_bytes(item: str, summary: Any) -> Any:
    """A log summary with every buffer size as ours allocates it: at least 64 bytes."""
    if not isinstance(summary, dict):
        return summary
    out = dict(summary)
    if "mallocs" in out:
        out["mallocs"] = sorted([max(b, 64), c] for b, c in out["mallocs"])
    if "flushes" in out:
        out["flushes"] = sorted([f, max(b, 64)] for f, b in out["flushes"])
    return out


def _ignore_order(item: str, value: Any) -> Any:
    """Dict keys sorted at every level; for the lists of names (a run's output names, the
    models of a result) the names sorted too."""
    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: walk(v[k]) for k in sorted(v)}
        if isinstance(v, list):
            if names and v and all(isinstance(x, str) for x in v):
                return sorted(v)
            return [walk(x) for x in v]
        return v
    names = item.endswith(".keys") or item.endswith(".result")
    return walk(value)


_SECOND_DEFAULT = {"priority": 0, "customId": 0, "bpu_cores": [-1], "deviceId": 0}


def _second(**changes: Any) -> dict:
    """sched_params of second.hbm's only model with ``changes``."""
    return {"m_second": dict(_SECOND_DEFAULT, **changes)}


def _submitted(priority: int = 0, backend: str = "0x80") -> list:
    return [{"priority": str(priority), "custom_id": "0", "backend": backend, "device": "0"}]


INTENTIONAL: List[Intentional] = [
    Intentional(
        key="value-error",
        summary="bad arguments and unsupported models: the vendor raises RuntimeError, ours "
                "InvalidArgumentError (a ValueError and a RuntimeError)",
        reason="The API manual specifies ValueError for inputs whose name, shape or dtype does not "
               "fit the model. InvalidArgumentError derives from both ValueError and RuntimeError, "
               "so code written for the vendor's package (except RuntimeError) still catches it.",
        items=["error[*]", "sched[*].set", "sched[*].run", "run[bad_stride.hbm].*"],
        vendor=VENDOR_RUNTIME_ERROR, ours=OUR_INVALID_ARGUMENT,
    ),
    Intentional(
        key="file-not-found",
        summary="a missing model file: the vendor raises RuntimeError (from the library), ours "
                "ModelFileNotFoundError (FileNotFoundError + ValueError + RuntimeError)",
        reason="The path is checked before any engine loads, so a mistyped path is reported as "
               "such (never as a missing BPU library); it stays catchable as RuntimeError.",
        items=["error[load missing file]"],
        vendor=VENDOR_RUNTIME_ERROR, ours=OUR_FILE_NOT_FOUND,
    ),
    Intentional(
        key="out-of-range-int",
        summary="a scheduling number out of its C type's range (custom_id 2**63, device_id -1): "
                "the vendor raises TypeError (its argument conversion), ours InvalidArgumentError",
        reason="A number out of range is a bad value, reported like every other out-of-range "
               "scheduling value (priority 256, core 4): ValueError naming the model and the value.",
        items=["sched[custom_id=9223372036854775808].set", "sched[device_id=-1].set"],
        vendor=VENDOR_TYPE_ERROR, ours=OUR_INVALID_ARGUMENT,
    ),
    Intentional(
        key="version-callable",
        summary="HB_HBMRuntime.version(): the vendor's static property is a plain str (calling it "
                "raises TypeError); ours is a str that is also callable",
        reason="The vendor's own type stub declares version() as a static method; ours supports "
               "both spellings (HB_HBMRuntime.version and HB_HBMRuntime.version()), same text.",
        items=["api.version()"],
        vendor=VENDOR_TYPE_ERROR, ours=NO_ERROR,
    ),
    Intentional(
        key="quantparams-constructor",
        summary="QuantParams(): the vendor's class has no constructor (TypeError); ours can be "
                "constructed (empty scale and zero point, quant_type NONE)",
        reason="Ours adds dequantize()/quantize() on QuantParams, and building one by hand is how "
               "they are used on data that did not come from a model.",
        items=["api.QuantParams()"],
        vendor=VENDOR_TYPE_ERROR, ours=NO_ERROR,
    ),
    Intentional(
        key="multi-run-model-order",
        summary="the models of a several-model run() result: the vendor's come in an order that "
                "is neither load order, name order nor its dicts' hash order (m_add, m_nv12, "
                "m_types, m_rows, m_second); ours in the order of the input dict (m_add, m_nv12, "
                "m_rows, m_types, m_second)",
        reason="Not explained by any order the vendor uses elsewhere; it may be the order in "
               "which its tasks finished, which would vary from run to run (not verified: one "
               "probe run). Each model's own outputs are identical, keys in the vendor's order; "
               "a multi-model result is read by model name.",
        items=["run[*].all.result"],
        normalize=_ignore_order,
    ),
    Intentional(
        key="any-core-spelling",
        summary="'any BPU core': the vendor shows [-1] by default but refuses bpu_cores=[-1], "
                "accepts [] and then shows [] (SchedParam() defaults to []); ours accepts both "
                "and always shows [-1]",
        reason="One spelling of 'any core' in what ours reports, the one both packages show by "
               "default, so sched_params read back can be passed to set_scheduling_params again. "
               "Both submit the same backend mask (0x80) for [] and by default.",
        items=["sched[bpu_cores=[]].read", "sched[bpu_cores=[-1]].set", "api.SchedParam()"],
        vendor=_second(bpu_cores=[]), ours=_second(),
        more=[(VENDOR_RUNTIME_ERROR, "ok"),
              ({"priority": 0, "customId": 0, "bpu_cores": [], "deviceId": 0},
               {"priority": 0, "customId": 0, "bpu_cores": [-1], "deviceId": 0})],
    ),
    Intentional(
        key="sched-plain-values",
        summary="set_scheduling_params with one value for every model (priority=5) or an int "
                "core (bpu_cores={m: 1}): the vendor raises TypeError, ours applies it",
        reason="An extension: a plain value applies to every model, an int to that one core; "
               "every dict form the vendor accepts behaves the same in both.",
        items=["sched[priority not a dict].*", "sched[bpu_cores not a list].*"],
        vendor=VENDOR_TYPE_ERROR, ours="ok",
        more=[(_second(), _second(priority=5)), (_submitted(), _submitted(priority=5)),
              (_second(), _second(bpu_cores=[1])), (_submitted(), _submitted(backend="0x2"))],
    ),
    Intentional(
        key="sched-validate-first",
        summary="set_scheduling_params(priority=9, bpu_cores=[7]): the vendor applies the "
                "priority, then fails on the cores; ours fails and changes nothing",
        reason="Every value is validated before anything changes, so a failed call leaves the "
               "scheduling parameters as they were.",
        items=["sched[valid priority with invalid bpu_cores].read",
               "sched[valid priority with invalid bpu_cores].submitted"],
        vendor=_second(priority=9), ours=_second(),
        more=[(_submitted(priority=9), _submitted())],
    ),
    Intentional(
        key="device-id-abort",
        summary="device_id=1 on the double's single device: the vendor's process aborts (an "
                "uncaught C++ exception in its worker thread), ours raises a catchable "
                "HBMRuntimeError",
        reason="A library failure must never end the process; the error names the model, the "
               "tensor, the call and the library's code.",
        items=["sched[device_id=1].exit", "sched[device_id=1].run", "sched[device_id=1].submitted"],
        vendor={"status": "signal 6", "ended by a signal": True}, ours={"status": 0, "ended by a signal": False},
        more=[(MISSING, OUR_RUNTIME_ERROR), (MISSING, [])],
    ),
    Intentional(
        key="dynamic-input",
        summary="a model with a dynamic (-1) input dim (multi.hbm's m_dyn): the vendor cannot run "
                "it (it allocates the reported alignedByteSize, 0 for such inputs, and "
                "hbUCPMallocCached(0) fails); ours sizes the buffer from the input given",
        reason="Ours computes each buffer's size from the shape and strides of the run's input "
               "instead of trusting alignedByteSize, so models with dynamic input dims run.",
        items=["run[multi.hbm].m_dyn.*", "run[m_dyn x=*", "log[run multi.hbm].m_dyn.*"],
        vendor=VENDOR_RUNTIME_ERROR, ours=MISSING,
        more=[(MISSING, NO_ERROR), (VENDOR_RUNTIME_ERROR, NO_ERROR),
              ({"submits": [], "infers": 0, "errors": ["error hbUCPMallocCached"]}, NO_ERROR)],
    ),
    Intentional(
        key="validate-before-allocating",
        summary="a run whose inputs are incomplete (a missing input, or one model's inputs wrong "
                "in a multi-model run): the vendor allocates and CLEAN-flushes the inputs it got "
                "before failing and leaves those buffers allocated; ours fails before allocating",
        reason="Every input of every model of the call is checked before any buffer is allocated "
               "or any task submitted, so a failed call costs nothing and leaks nothing.",
        items=["log[error run missing input]", "log[error run multi form, a model's inputs wrong]"],
        vendor={"mallocs": [[24, 1]], "flushes": [["CLEAN", 24]], "submits": [], "infers": 0, "errors": [],
                "live_mems_after": [24], "unreleased_tasks": 0},
        ours={"mallocs": [], "flushes": [], "submits": [], "infers": 0, "errors": [],
              "live_mems_after": [], "unreleased_tasks": 0},
        more=[({"mallocs": [[12, 1], [15, 1], [24, 1], [384, 1]], "flushes": [["CLEAN", 15], ["CLEAN", 24]],
                "submits": [], "infers": 0, "errors": [], "live_mems_after": [12, 15, 24, 384],
                "unreleased_tasks": 0},
               {"mallocs": [], "flushes": [], "submits": [], "infers": 0, "errors": [],
                "live_mems_after": [], "unreleased_tasks": 0})],
    ),
    Intentional(
        key="min-buffer-64",
        summary="buffer sizes: the vendor allocates and flushes exactly alignedByteSize (e.g. 8 "
                "bytes), ours at least 64 bytes per buffer",
        reason="Every buffer of ours covers whole 64-byte cache lines, so a flush of one buffer "
               "never cleans or invalidates a line shared with another allocation.",
        items=["log[lifecycle *]"],
        normalize=_min_64_bytes,
    ),
    Intentional(
        key="buffer-reuse",
        summary="three runs of one model: the vendor allocates and frees its buffers on every run "
                "(6 allocations), ours allocates them once per runtime and reuses them, "
                "invalidating the output buffer before each reuse (2 allocations, 5 INVALIDATE)",
        reason="Allocating cached device memory per run is slow on a board; ours keeps each "
               "model's buffers for the runtime's life. Results are copied out, so results "
               "held by the caller stay valid (item 'held' is identical).",
        items=["log[repeat second.hbm x3]"],
        vendor={"mallocs": [[8, 1]] * 6, "flushes": [["CLEAN", 8]] * 3 + [["INVALIDATE", 8]] * 3,
                "submits": _submitted() * 3, "infers": 3, "errors": [], "live_mems_after": [],
                "unreleased_tasks": 0},
        ours={"mallocs": [[64, 1]] * 2, "flushes": [["CLEAN", 64]] * 3 + [["INVALIDATE", 64]] * 5,
              "submits": _submitted() * 3, "infers": 3, "errors": [], "live_mems_after": [],
              "unreleased_tasks": 0},
    ),
]

# Defects of ours: reported as known (not unexpected); the differential fails on them unless
# run with --accept-known.
KNOWN: List[Intentional] = [
    # Empty since key order was fixed: ours now keys its dicts in the vendor's order (the
    # iteration order of a std::unordered_map filled in model order), see model_info.h.
]
