"""Pieces the command line's commands share: dtype names, user errors, version reports,
JSON output."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Sequence

import numpy as np

if TYPE_CHECKING:  # for annotations; the commands import the runtime when they run
    from ._runtime import HB_HBMRuntime

# hbDNNDataType name -> numpy dtype, as the vendor's examples write it (S4/U4 take a byte).
NUMPY_DTYPES: Dict[str, "type[np.generic]"] = {
    "S8": np.int8, "U8": np.uint8, "F16": np.float16, "S16": np.int16, "U16": np.uint16,
    "F32": np.float32, "S32": np.int32, "U32": np.uint32, "F64": np.float64, "S64": np.int64,
    "U64": np.uint64, "BOOL8": np.bool_, "S4": np.int8, "U4": np.uint8,
}


class CliError(Exception):
    """A mistake of the caller (bad option, file or input): printed as ``error: <message>``
    on stderr, exit status 1, no traceback."""


def numpy_dtype(hb_name: str) -> np.dtype[Any]:
    """The numpy dtype of a tensor whose hbDNNDataType is named ``hb_name``."""
    return np.dtype(NUMPY_DTYPES[hb_name])


def open_runtime(paths: Sequence[str]) -> HB_HBMRuntime:
    """Loads the model files together; a missing file is named before any engine loads."""
    from ._runtime import HB_HBMRuntime

    for path in paths:
        if not os.path.exists(path):
            raise CliError(f"model file '{path}' does not exist")
        if os.path.isdir(path):
            raise CliError(f"model file '{path}' is a directory")
    return HB_HBMRuntime(list(paths) if len(paths) > 1 else paths[0])


def engine_names(rt: HB_HBMRuntime) -> Dict[str, str]:
    """Model name -> the engine that runs it ("openvino" on the host CPU, "ucp" on the BPU)."""
    return dict(zip(rt.model_names, rt._engine_names()))


def versions(rt: HB_HBMRuntime) -> Dict[str, Any]:
    """The "versions" object of the JSON reports (docs/cli.md)."""
    from ._hbm_ext import host_cores
    from ._version import __version__

    return {
        "hbm_runtime": __version__,
        "runtime": str(rt.version),
        "engines": rt.engine_versions,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count() or 0,
        "host_cores": host_cores(),
    }


def sched_dict(rt: HB_HBMRuntime, model: str) -> Dict[str, Any]:
    """A model's scheduling parameters as a JSON object."""
    s = rt.sched_params[model]
    return {"priority": s.priority, "customId": s.customId, "bpu_cores": list(s.bpu_cores),
            "deviceId": s.deviceId}


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity (a model's scales may hold them): those become null.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def print_json(obj: Dict[str, Any]) -> None:
    """Prints one JSON object (strict JSON: non-finite floats as null) on stdout."""
    sys.stdout.write(json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n")


def dims_text(dims: List[int]) -> str:
    """``[1, 3, 32, 32]``."""
    return "[" + ", ".join(str(d) for d in dims) + "]"
