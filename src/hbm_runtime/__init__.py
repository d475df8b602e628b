"""hbm_runtime: run compiled .hbm models on the RDK S100 BPU, and .onnx models on any CPU,
with one API."""

from __future__ import annotations

import atexit as _atexit
import threading as _threading

from . import _hbm_ext
# The vendor's module path (hbm_runtime.HB_HBMRuntime is a module there too); imported before
# the class of that name below, which then takes the attribute, as in the vendor package.
from . import HB_HBMRuntime as _vendor_module_path  # noqa: F401
from ._errors import (EngineUnavailableError, HBMRuntimeError, InvalidArgumentError, ModelFileNotFoundError,
                      RuntimeClosedError)
from ._hbm_ext import hbDNNDataType, hbDNNQuantiType, host_cores, set_host_cores
from ._nv12 import bgr_to_nv12, rgb_to_nv12
from ._quantize import dequantize, quantize
from ._result import RunResult
from ._runtime import HB_HBMRuntime
from ._types import QuantParams, SchedParam
from ._version import __version__


def _enum_repr(self: object) -> str:
    return f"<{type(self).__name__}.{self.name}: {self.value}>"  # type: ignore[attr-defined]


def _enum_str(self: object) -> str:
    return f"{type(self).__name__}.{self.name}"  # type: ignore[attr-defined]


for _enum in (hbDNNDataType, hbDNNQuantiType):
    _enum.__repr__ = _enum_repr  # type: ignore[method-assign]
    _enum.__str__ = _enum_str  # type: ignore[method-assign]
    _enum.__format__ = lambda self, spec: str(self) if not spec else format(int(self), spec)  # type: ignore[method-assign]

_hbm_ext._set_result_type(RunResult)
# run() on this thread polls for Ctrl-C while it waits (Python delivers signals only here).
_hbm_ext._set_main_thread(_threading.main_thread().ident or 0)
# Finish queued work while the interpreter can still run its callbacks; from then on, daemon
# threads still inside a call wait for the process to end instead of being ended mid-call.
_atexit.register(_hbm_ext._at_exit)

__all__ = [
    "HB_HBMRuntime",
    "QuantParams",
    "SchedParam",
    "hbDNNDataType",
    "hbDNNQuantiType",
    "HBMRuntimeError",
    "EngineUnavailableError",
    "RuntimeClosedError",
    "ModelFileNotFoundError",
    "InvalidArgumentError",
    "RunResult",
    "set_host_cores",
    "host_cores",
    "bgr_to_nv12",
    "rgb_to_nv12",
    "dequantize",
    "quantize",
    "__version__",
]
