"""``doctor``: what works on this machine and what to do about what does not.

It reports Python, numpy, the package, the CPU, which engines load (with their libraries,
versions and, for the BPU, the tensor-properties layout the engine detects), the environment
variables the runtime reads, and the host engine's model cache; then every problem with a
line saying how to fix it. Engines are loaded in child processes, so a broken library (one
that fails to load, or even crashes its process) is reported instead of ending the doctor.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import platform
import re
import signal
import stat
import subprocess
import sys
import sysconfig
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._cli_common import CliError, print_json

DOCTOR_SCHEMA = "hbm_runtime.doctor/1"
MIN_OPENVINO = (2026, 4)
MIN_NUMPY = (1, 22)
PROBE_TIMEOUT = 120.0  # seconds per engine check (a library that hangs must not hang the doctor)
# Where the board keeps its sample models: the smallest .hbm there is used to see the BPU
# engine load a model when none is given.
BOARD_MODEL_DIR = "/opt/hobot/model/s100/basic"
# hbDNNTensorProperties size in bytes of each layout (dims -> bytes).
LAYOUT_BYTES = {10: 176, 8: 152}
_MARK = "HBM_RUNTIME_DOCTOR_PROBE "

ENGINES = ("openvino", "ucp")
ENGINE_TITLES = {"openvino": "host engine (openvino, .onnx on the CPU)", "ucp": "BPU engine (ucp, .hbm)"}
HOST_FIX = "pip install 'openvino>=2026.4'  (or: pip install 'hbm-runtime-universal[host]')"
BPU_FIX = ("on the board: sudo apt-get install -y hobot-dnn; elsewhere set HBM_UCP_LIB_DIR to the "
           "directory holding libdnn.so and libhbucp.so")

# Variables the runtime reads: name -> what it does. Checked like the runtime parses them.
PACKAGE_ENV: Dict[str, str] = {
    "HBM_RUNTIME_CACHE_DIR": "compiled-model cache of the host engine (unset: off)",
    "HBM_RUNTIME_HOST_CORES": "virtual cores of the host scheduler, 1..64 (unset: the CPU count)",
    "HBM_RUNTIME_SPIN_US": "microseconds a waiting thread polls before sleeping, 0..1000000 (unset: 100)",
    "HBM_OPENVINO_LIB_DIR": "the only folder searched for libopenvino_c.so",
    "HBM_RUNTIME_OPENVINO_PACKAGE_LIBS": "libs folder of the openvino package (set by hbm_runtime itself)",
    "HBM_UCP_LIB_DIR": "the only directory searched for libdnn.so and libhbucp.so",
    "HBM_UCP_TIMEOUT_MS": "timeout of a BPU inference in ms, 0 = wait forever (unset: 0)",
    "HBM_UCP_POOL_SETS": "pooled buffer sets per BPU model, 0..1024 (unset: 4)",
}
OTHER_ENV: Dict[str, str] = {
    "LD_LIBRARY_PATH": "searched first for libraries given by name (libdnn.so, libhbucp.so, libopenvino_c.so)",
    "LD_PRELOAD": "libraries loaded into every process first",
    "OMP_NUM_THREADS": "OpenMP threads (numpy's BLAS, pre/post-processing libraries)",
    "OPENBLAS_NUM_THREADS": "OpenBLAS threads (numpy)",
    "MKL_NUM_THREADS": "MKL threads (numpy built with MKL)",
    "HWLOC_THISSYSTEM": "set to 1: OpenVINO pins inference threads (hbm_runtime turns that off otherwise)",
}
# Whole-number variables: (min, max, what the runtime does with a bad value).
_RANGES: Dict[str, Tuple[int, int, str]] = {
    "HBM_RUNTIME_HOST_CORES": (1, 64, "ignored (the CPU count is used)"),
    "HBM_RUNTIME_SPIN_US": (0, 1000000, "ignored (100 us is used)"),
    "HBM_UCP_TIMEOUT_MS": (0, 2**31 - 1, "refused: every .hbm model load fails"),
    "HBM_UCP_POOL_SETS": (0, 1024, "refused: every .hbm model load fails"),
}


class _Report:
    def __init__(self) -> None:
        self.problems: List[Dict[str, str]] = []
        self.notes: List[Dict[str, str]] = []

    def problem(self, what: str, fix: str) -> None:
        self.problems.append({"what": what, "fix": fix})

    def note(self, what: str, fix: str = "") -> None:
        self.notes.append({"what": what, "fix": fix})


# ---- Python, numpy, package, platform, CPU ------------------------------------------------------


def _python(rep: _Report) -> Dict[str, Any]:
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    out = {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "soabi": sysconfig.get_config_var("SOABI"),
        "free_threaded": free_threaded,
    }
    if out["implementation"] != "CPython":
        rep.problem(f"Python is {out['implementation']}: hbm_runtime's extension is built for CPython",
                    "use CPython 3.10 or newer")
    if free_threaded:
        rep.problem("this Python is a free-threaded build: hbm_runtime has no build for it",
                    "use a regular (GIL) CPython 3.10 or newer")
    return out


def _version_tuple(text: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:2])


def _numpy(rep: _Report) -> Dict[str, Any]:
    import numpy as np

    out = {"version": np.__version__, "path": os.path.dirname(os.path.abspath(np.__file__))}
    if _version_tuple(np.__version__) < MIN_NUMPY:
        rep.problem(f"numpy {np.__version__} is older than 1.22", "pip install -U 'numpy>=1.22'")
    return out


def _package(rep: _Report) -> Dict[str, Any]:
    from . import _hbm_ext
    from ._version import __version__

    out = {
        "version": __version__,
        "path": os.path.dirname(os.path.abspath(__file__)),
        "extension": os.path.abspath(_hbm_ext.__file__),
        "extension_version": str(getattr(_hbm_ext, "__version__", "")),
    }
    if out["extension_version"] and out["extension_version"] != __version__:
        rep.problem(f"the extension {out['extension']} was built from version {out['extension_version']}, "
                    f"the Python files are version {__version__}",
                    "reinstall the package: pip install --force-reinstall hbm-runtime-universal")
    return out


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return ""


def _platform() -> Dict[str, Any]:
    libc, libc_version = platform.libc_ver()
    return {
        "system": platform.platform(),
        "machine": platform.machine(),
        "libc": f"{libc} {libc_version}".strip() or None,
        "board": _read("/proc/device-tree/model") or None,
    }


# Flags that matter here: the NV12 kernel's x86 versions (SSE4.1, AVX2), what OpenVINO's CPU
# plugin uses for speed (AVX-512, VNNI, AMX), and on Arm NEON (asimd), fp16 and dot products.
_X86_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni",
              "avx512_bf16", "amx_tile")
_ARM_FLAGS = ("asimd", "fphp", "asimdhp", "asimddp", "sve", "i8mm", "bf16")


# Arm Ltd. cores by /proc/cpuinfo "CPU part" (the RDK S100's application cores are Cortex-A78AE).
_ARM_PARTS = {"0xd03": "Arm Cortex-A53", "0xd05": "Arm Cortex-A55", "0xd08": "Arm Cortex-A72",
              "0xd0b": "Arm Cortex-A76", "0xd41": "Arm Cortex-A78", "0xd42": "Arm Cortex-A78AE",
              "0xd4b": "Arm Cortex-A78C", "0xd0c": "Arm Neoverse-N1", "0xd40": "Arm Neoverse-V1",
              "0xd49": "Arm Neoverse-N2"}


def _cpu() -> Dict[str, Any]:
    from . import _hbm_ext

    arch = platform.machine()
    text = _read("/proc/cpuinfo")
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    present = set((fields.get("flags") or fields.get("Features") or "").split())
    wanted = _ARM_FLAGS if arch in ("aarch64", "arm64") else _X86_FLAGS
    flags = [f for f in wanted if f in present]
    model = fields.get("model name") or fields.get("Hardware") or ""
    if not model and "CPU implementer" in fields:
        part = fields.get("CPU part", "?")
        known = _ARM_PARTS.get(part.lower()) if fields["CPU implementer"].lower() == "0x41" else None
        model = known or f"implementer {fields['CPU implementer']}, part {part}"
    if arch in ("x86_64", "AMD64"):
        # The loader picks the NV12 kernel's version for the CPU (see ops/nv12.cpp).
        kernel = "avx2" if "avx2" in present else "sse4.1" if "sse4_1" in present else "baseline (sse2)"
    elif arch in ("aarch64", "arm64"):
        kernel = "neon"
    else:
        kernel = "portable"
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    return {
        "arch": arch,
        "model": model or None,
        "cpu_count": os.cpu_count() or 0,
        "usable_cpus": usable,
        "host_cores": _hbm_ext.host_cores(),
        "flags": flags,
        "nv12_kernel": kernel,
    }


# ---- environment and cache ----------------------------------------------------------------------


def _environment(rep: _Report) -> Dict[str, Optional[str]]:
    env = {name: os.environ.get(name) for name in (*PACKAGE_ENV, *OTHER_ENV)}
    for name, (lo, hi, effect) in _RANGES.items():
        value = env[name]
        if not value:
            continue  # unset and empty are the same to the runtime
        if not (re.fullmatch(r"\s*[+-]?\d+", value) and lo <= int(value) <= hi):
            rep.problem(f"{name}='{value}' is not a whole number in {lo}..{hi}: {effect}",
                        f"unset {name}, or set it to a whole number in {lo}..{hi}")
    libs = env["HBM_RUNTIME_OPENVINO_PACKAGE_LIBS"]
    if libs and not glob.glob(os.path.join(libs, "libopenvino_c.so*")):
        rep.problem(f"HBM_RUNTIME_OPENVINO_PACKAGE_LIBS='{libs}' holds no libopenvino_c.so (hbm_runtime sets this "
                    "variable itself; a stale value hides the openvino package)",
                    "unset HBM_RUNTIME_OPENVINO_PACKAGE_LIBS")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if env[name] is not None:
            rep.note(f"{name}={env[name]} applies to the libraries that read it (numpy's BLAS, OpenCV); "
                     "the host engine's parallelism is HBM_RUNTIME_HOST_CORES")
    return env


def _cache(rep: _Report) -> Dict[str, Any]:
    root = os.environ.get("HBM_RUNTIME_CACHE_DIR") or None
    out: Dict[str, Any] = {"dir": root, "state": "off", "entries": 0, "bytes": 0, "writable": None}
    if root is None:
        return out
    out["dir"] = os.path.abspath(root)
    if not os.path.exists(root):
        parent = os.path.dirname(os.path.abspath(root))
        while parent and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        out["writable"] = os.access(parent, os.W_OK)
        if out["writable"]:
            out["state"] = "missing"  # created at the first .onnx load
        else:
            out["state"] = "unusable"
            rep.problem(f"HBM_RUNTIME_CACHE_DIR='{root}' does not exist and cannot be created "
                        f"({parent} is not writable): .onnx models are compiled without the cache",
                        f"mkdir -p '{root}' as a user who may, or point HBM_RUNTIME_CACHE_DIR at a writable directory")
        return out
    if not os.path.isdir(root):
        out["state"] = "unusable"
        rep.problem(f"HBM_RUNTIME_CACHE_DIR='{root}' is not a directory: .onnx models are compiled without the cache",
                    "point HBM_RUNTIME_CACHE_DIR at a directory")
        return out
    out["writable"] = os.access(root, os.W_OK | os.X_OK)
    entries = 0
    total = 0
    for entry in _listdir(root):
        path = os.path.join(root, entry)
        if entry.startswith(".tmp-") or not os.path.isdir(path):
            continue
        entries += 1
        for dirpath, _, files in os.walk(path):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
    out["entries"], out["bytes"] = entries, total
    out["state"] = "ready" if out["writable"] else "read-only"
    if not out["writable"]:
        rep.note(f"HBM_RUNTIME_CACHE_DIR='{root}' is read-only: models already in it load from it, "
                 "others are compiled without the cache",
                 f"chmod u+w '{root}' (or run as its owner) to let new models be cached")
    try:
        mode = os.stat(root).st_mode
    except OSError:
        mode = 0
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        rep.problem(f"HBM_RUNTIME_CACHE_DIR='{root}' is writable by every user: compiled files are loaded "
                    "without verification", f"chmod o-w '{root}'")
    return out


def _listdir(path: str) -> List[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


# ---- the engine checks, each in a child process -------------------------------------------------


def _openvino_package() -> Dict[str, Any]:
    """The openvino Python package as the runtime finds it (without importing it)."""
    out: Dict[str, Any] = {"installed": False, "version": None, "path": None, "libs": None}
    try:
        spec = importlib.util.find_spec("openvino")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return out
    out["installed"] = True
    out["path"] = list(spec.submodule_search_locations)[0]
    for location in spec.submodule_search_locations:
        libs = os.path.join(location, "libs")
        if os.path.isdir(libs):
            out["libs"] = libs
            break
    try:
        from importlib import metadata

        out["version"] = metadata.version("openvino")
    except Exception:  # no or broken metadata: the library's own version is reported anyway
        pass
    return out


def _search(engine: str) -> List[str]:
    """Where the engine looks for its libraries, in order (as the engine's loader does)."""
    if engine == "openvino":
        given = os.environ.get("HBM_OPENVINO_LIB_DIR")
        if given:
            return [os.path.join(given, "libopenvino_c.so*") + "  (HBM_OPENVINO_LIB_DIR: only there)"]
        places = []
        libs = os.environ.get("HBM_RUNTIME_OPENVINO_PACKAGE_LIBS") or _openvino_package()["libs"]
        if libs:
            places.append(os.path.join(libs, "libopenvino_c.so*") + "  (the openvino package)")
        places.append("libopenvino_c.so on the loader path (LD_LIBRARY_PATH, ld.so.cache, /lib, /usr/lib)")
        return places
    given = os.environ.get("HBM_UCP_LIB_DIR")
    if given:
        return [f"{os.path.join(given, 'libhbucp.so')}, {os.path.join(given, 'libdnn.so')}  (HBM_UCP_LIB_DIR: only there)"]
    return ["libhbucp.so, libdnn.so on the loader path (LD_LIBRARY_PATH, ld.so.cache, /lib, /usr/lib)",
            "/usr/hobot/lib/libhbucp.so, /usr/hobot/lib/libdnn.so", "/usr/lib/libhbucp.so, /usr/lib/libdnn.so"]


_CHILD = """
import importlib.util, os, sys
where = sys.argv[1]
spec = importlib.util.find_spec("hbm_runtime")
if spec is None or not spec.origin or os.path.dirname(os.path.dirname(os.path.abspath(spec.origin))) != where:
    sys.path.insert(0, where)
from hbm_runtime._cli_doctor import _probe_main
_probe_main(sys.argv[2])
"""


def _start_probe(engine: str, models: List[str]) -> "subprocess.Popen[str]":
    where = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    request = json.dumps({"engine": engine, "models": models})
    env = dict(os.environ)
    env.pop("HBM_RUNTIME_CACHE_DIR", None)  # the checks leave the model cache alone
    return subprocess.Popen([sys.executable, "-c", _CHILD, where, request], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")


def _finish_probe(proc: "subprocess.Popen[str]", engine: str, timeout: float) -> Dict[str, Any]:
    """The child's answer, or what became of it (crash, no answer in time)."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        return {"crashed": f"loading it gave no answer within {timeout:g} s (a library hangs?)",
                "stderr": stderr[-2000:]}
    for line in reversed(stdout.splitlines()):
        if line.startswith(_MARK):
            answer: Dict[str, Any] = json.loads(line[len(_MARK):])
            return answer
    rc = proc.returncode
    if rc is not None and rc < 0:
        try:
            how = f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            how = f"was killed by signal {-rc}"
    else:
        how = f"exited with status {rc}"
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return {"crashed": f"the process loading it {how} before answering"
                       + (f": {tail}" if tail else ""), "stderr": stderr[-2000:]}


def _probe_main(request_text: str) -> None:
    """Entry of the child process: loads one engine (and models) and prints what happened."""
    request = json.loads(request_text)
    try:
        answer = _probe(request["engine"], list(request["models"]))
    except BaseException as e:  # anything at all: the parent reports it
        answer = {"error": f"{type(e).__name__}: {e}", "version": None}
    sys.stdout.write(_MARK + json.dumps(answer) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # No unloading: some libraries crash at process exit, which is not what is checked here.
    os._exit(0)


def _loaded_libraries(prefixes: Sequence[str]) -> Dict[str, str]:
    """Library file name prefix -> the file this process mapped for it (/proc/self/maps)."""
    found: Dict[str, str] = {}
    for line in _read("/proc/self/maps").splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or not parts[5].startswith("/"):
            continue
        path = parts[5]
        base = os.path.basename(path)
        for prefix in prefixes:
            if prefix not in found and (base == prefix or base.startswith(prefix + ".")):
                found[prefix] = path
    return found


def _probe(engine: str, models: List[str]) -> Dict[str, Any]:
    import numpy as np

    import hbm_runtime
    from hbm_runtime import _hbm_ext, _runtime
    from hbm_runtime._errors import EngineUnavailableError

    answer: Dict[str, Any] = {"version": None, "error": None, "models": []}
    if engine == "openvino":
        _runtime._point_at_openvino()  # what HB_HBMRuntime does first
        answer["package_libs"] = os.environ.get("HBM_RUNTIME_OPENVINO_PACKAGE_LIBS")
        from ._cli_demo import DEMO_MODEL

        demo = str(DEMO_MODEL)
        try:
            with hbm_runtime.HB_HBMRuntime(demo) as rt:
                name = rt.model_names[0]
                feeds = {n: np.zeros([d if d > 0 else 1 for d in rt.input_shapes[name][n]],
                                     dtype=_numpy_dtype(rt.input_dtypes[name][n].name))
                         for n in rt.input_names[name]}
                outputs = rt.run(feeds)[name]
                answer["demo"] = {"path": demo, "ok": True, "outputs": len(outputs), "error": None}
        except Exception as e:
            if isinstance(e, EngineUnavailableError) or "openvino" not in dict(_hbm_ext._engine_versions()):
                answer["error"] = str(e)  # the engine itself did not load
            else:
                answer["demo"] = {"path": demo, "ok": False, "error": str(e)}
    else:
        versions = dict(_hbm_ext._engine_versions(probe_devices=True))
        if "ucp" not in versions:
            try:  # the engine's own message: what it tried, and why each failed
                _hbm_ext._Runtime(["doctor-probe.hbm"], engine="ucp")
            except Exception as e:
                answer["error"] = str(e)
    answer["version"] = dict(_hbm_ext._engine_versions()).get(engine)
    names = ("libopenvino_c.so",) if engine == "openvino" else ("libhbucp.so", "libdnn.so")
    answer["libraries"] = _loaded_libraries(names)
    if answer["version"] is None:
        return answer
    for path in models:
        record: Dict[str, Any] = {"path": path, "ok": False, "names": [], "error": None, "layout": None}
        try:
            with hbm_runtime.HB_HBMRuntime(path) as rt:
                record["names"] = rt.model_names
            record["ok"] = True
        except Exception as e:
            record["error"] = str(e)
        if engine == "ucp" and record["ok"]:
            layout = getattr(_hbm_ext, "_ucp_props_layout", None)
            if layout is None:
                record["layout_error"] = "this build of hbm_runtime cannot report the layout"
            else:
                try:
                    record["layout"] = int(layout([path]))
                except Exception as e:
                    record["layout_error"] = str(e)
        answer["models"].append(record)
    return answer


def _numpy_dtype(hb_name: str) -> Any:
    from ._cli_common import numpy_dtype

    return numpy_dtype(hb_name)


# ---- reading the engines' answers ---------------------------------------------------------------


def _tried(message: str) -> List[Dict[str, str]]:
    """The "Tried:" list of an engine's load error: each place and why it failed."""
    _, sep, rest = message.partition("\nTried:")
    if not sep:
        return []
    out = []
    for line in rest.splitlines():
        line = line.strip()
        if not line:
            continue
        path, _, why = line.partition(": ")
        if why.startswith(path + ": "):
            why = why[len(path) + 2:]  # dlerror() repeats the path
        out.append({"path": path, "error": why})
    return out


def _not_found(why: str) -> bool:
    return "No such file or directory" in why


def _ucp_versions(version: str) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    m = re.match(r"^libdnn (.*) / libhbucp (.*?)(?: \(SoC (.*)\))?$", version)
    return (m.group(1), m.group(2), m.group(3)) if m else (None, None, None)


def _engine_record(engine: str, answer: Dict[str, Any], expected: bool, rep: _Report) -> Dict[str, Any]:
    title = "host engine" if engine == "openvino" else "BPU engine"
    rec: Dict[str, Any] = {
        "status": "ok",
        "expected": expected,
        "version": None,
        "engine_version": answer.get("version"),
        "libraries": [],
        "search": _search(engine),
        "tried": [],
        "error": answer.get("error") or answer.get("crashed"),
        "models": [],
    }
    found = answer.get("libraries") or {}
    if engine == "openvino":
        package = _openvino_package()
        rec["package"] = package
        if rec["engine_version"]:
            rec["version"] = rec["engine_version"].replace("OpenVINO ", "", 1)
        rec["libraries"] = [{"name": "libopenvino_c.so", "path": found.get("libopenvino_c.so"),
                             "version": rec["version"]}]
    else:
        dnn, ucp, soc = _ucp_versions(rec["engine_version"] or "")
        rec["version"] = dnn
        rec["soc"] = soc
        rec["libraries"] = [{"name": "libdnn.so", "path": found.get("libdnn.so"), "version": dnn},
                            {"name": "libhbucp.so", "path": found.get("libhbucp.so"), "version": ucp}]
        rec["layout"] = None
    if "crashed" in answer:
        rec["status"] = "broken"
        rec["stderr"] = answer.get("stderr") or ""
        rep.problem(f"{title}: {answer['crashed']}", _broken_fix(engine))
        return rec
    if rec["engine_version"] is None:
        message = rec["error"] or "the engine did not load (no message)"
        rec["tried"] = _tried(message)
        missing = bool(rec["tried"]) and all(_not_found(t["error"]) for t in rec["tried"])
        rec["status"] = "missing" if missing else "broken"
        _engine_problem(engine, rec, message, expected, rep)
        return rec
    # The engine loads: version requirements, then each model.
    if engine == "openvino":
        if _version_tuple(rec["version"] or "") < MIN_OPENVINO:
            rep.problem(f"host engine: OpenVINO {rec['version']} is older than 2026.4, which hbm_runtime needs",
                        "pip install -U 'openvino>=2026.4'")
        demo = answer.get("demo")
        if demo is not None:
            rec["demo"] = demo
            if not demo["ok"]:
                rec["status"] = "failed"
                rep.problem(f"host engine: OpenVINO loads but the bundled demo model fails: {demo['error']}",
                            "pip install --force-reinstall 'openvino>=2026.4'")
    layouts = set()
    for m in answer.get("models", []):
        record = {"path": m["path"], "ok": m["ok"], "names": m["names"], "error": m["error"]}
        if engine == "ucp":
            record["layout"] = m.get("layout")
            if m.get("layout") is not None:
                layouts.add(m["layout"])
            elif m.get("layout_error"):
                record["layout_error"] = m["layout_error"]
        rec["models"].append(record)
        if not m["ok"]:
            rep.problem(f"{title}: model '{m['path']}' does not load: {m['error']}",
                        f"the message above is the engine's (python -m hbm_runtime info '{m['path']}' gives it too); "
                        + ("recompile the model for this board's toolchain if the file is damaged or from another one"
                           if engine == "ucp" else "re-export the model if the file is damaged"))
    if engine == "ucp" and len(layouts) == 1:
        dims = layouts.pop()
        rec["layout"] = {"dims": dims, "props_bytes": LAYOUT_BYTES.get(dims)}
    return rec


def _broken_fix(engine: str) -> str:
    if engine == "openvino":
        return "pip install --force-reinstall 'openvino>=2026.4'"
    return ("reinstall the board's libraries (sudo apt-get install --reinstall -y hobot-dnn), or set "
            "HBM_UCP_LIB_DIR to a directory holding working libdnn.so and libhbucp.so")


def _engine_problem(engine: str, rec: Dict[str, Any], message: str, expected: bool, rep: _Report) -> None:
    first = message.splitlines()[0] if message else ""
    if engine == "openvino":
        given = os.environ.get("HBM_OPENVINO_LIB_DIR")
        package = rec["package"]
        if rec["status"] == "missing":
            if given:
                rep.problem(f"host engine: libopenvino_c.so not found in HBM_OPENVINO_LIB_DIR={given}",
                            "point HBM_OPENVINO_LIB_DIR at the folder holding libopenvino_c.so, or unset it "
                            "to use the openvino Python package")
            elif package["installed"]:
                rep.problem(f"host engine: the openvino package at {package['path']} has no libopenvino_c.so"
                            " (too old, or a partial install)", "pip install --force-reinstall 'openvino>=2026.4'")
            elif expected:
                rep.problem("host engine: OpenVINO not found (needed to run .onnx models on the CPU): "
                            "install openvino>=2026.4", HOST_FIX)
            else:
                rep.note("host engine: OpenVINO is not installed, so .onnx models cannot run here", HOST_FIX)
            return
        where = next((t for t in rec["tried"] if not _not_found(t["error"])), None)
        what = f"{where['path']} cannot be loaded: {where['error']}" if where else first
        rep.problem(f"host engine: {what}", _broken_fix(engine) + (
            "; or unset HBM_OPENVINO_LIB_DIR to use the openvino package" if given else ""))
        return
    given = os.environ.get("HBM_UCP_LIB_DIR")
    if rec["status"] == "missing":
        lib = "libdnn.so" if "cannot load libdnn.so" in first else "libhbucp.so"
        places = f"in HBM_UCP_LIB_DIR={given}" if given else "(searched the loader path, /usr/hobot/lib, /usr/lib)"
        what = f"BPU engine: {lib} not found {places}"
        fix = (f"set HBM_UCP_LIB_DIR to the directory holding libdnn.so and libhbucp.so (on the board "
               f"/usr/hobot/lib), or unset it to search the default places" if given else BPU_FIX)
        if expected:
            rep.problem(what, fix)
        else:
            rep.note(f"{what}: .hbm models run only on an RDK S100 board", fix)
        return
    symbol = re.search(r"symbol '([^']+)' is missing from (\S+)", first)
    where = next((t for t in rec["tried"] if not _not_found(t["error"])), None)
    if symbol:
        what = f"{symbol.group(2)} lacks {symbol.group(1)} (a library version hbm_runtime does not support)"
    elif where:
        what = f"{where['path']} cannot be loaded: {where['error']}"
    else:
        what = first or "the engine did not load"
    rep.problem(f"BPU engine: {what}", _broken_fix(engine))


def _board_model() -> List[str]:
    files = [f for f in glob.glob(os.path.join(BOARD_MODEL_DIR, "*.hbm")) if os.path.isfile(f)]
    return [min(files, key=lambda f: (os.path.getsize(f), f))] if files else []


def doctor_record(models: Sequence[str] = (), timeout: float = PROBE_TIMEOUT) -> Dict[str, Any]:
    """Everything the doctor checks: the ``hbm_runtime.doctor/1`` object (docs/cli.md)."""
    for path in models:
        if not os.path.isfile(path):
            raise CliError(f"model file '{path}' does not exist or is not a file")
    onnx_models = [m for m in models if m.lower().endswith(".onnx")]
    hbm_models = [m for m in models if m.lower().endswith(".hbm")]
    other = [m for m in models if not m.lower().endswith((".onnx", ".hbm"))]
    if other:
        raise CliError(f"'{other[0]}': unsupported model file type; supported: .onnx (openvino), .hbm (ucp)")
    rep = _Report()
    record: Dict[str, Any] = {"schema": DOCTOR_SCHEMA, "ok": False, "working_engines": []}
    # The engine checks run meanwhile, in their own processes.
    board_model = [] if hbm_models else _board_model()
    procs = {"openvino": _start_probe("openvino", onnx_models),
             "ucp": _start_probe("ucp", hbm_models or board_model)}
    record["python"] = _python(rep)
    record["numpy"] = _numpy(rep)
    record["package"] = _package(rep)
    record["platform"] = _platform()
    record["cpu"] = _cpu()
    record["environment"] = _environment(rep)
    record["cache"] = _cache(rep)
    arch = record["cpu"]["arch"]
    expected = {
        "openvino": arch in ("x86_64", "AMD64") or bool(os.environ.get("HBM_OPENVINO_LIB_DIR"))
        or _openvino_package()["installed"] or bool(onnx_models),
        "ucp": arch in ("aarch64", "arm64") or bool(os.environ.get("HBM_UCP_LIB_DIR")) or bool(hbm_models),
    }
    engines: Dict[str, Any] = {}
    for engine in ENGINES:
        answer = _finish_probe(procs[engine], engine, timeout)
        engines[engine] = _engine_record(engine, answer, expected[engine], rep)
    ucp = engines["ucp"]
    if ucp["status"] == "ok" and ucp["layout"] is None and not ucp["models"]:
        rep.note("BPU engine: the tensor-properties layout is detected when a model loads",
                 "give a .hbm model to see it: python -m hbm_runtime doctor MODEL.hbm")
    record["engines"] = engines
    record["working_engines"] = [e for e in ENGINES if engines[e]["status"] == "ok"]
    record["ok"] = bool(record["working_engines"])
    if not record["ok"]:
        rep.problem("no engine works: hbm_runtime cannot run any model here",
                    "make one of the engines above work (see its fix)")
    record["problems"] = rep.problems
    record["notes"] = rep.notes
    return record


# ---- text ---------------------------------------------------------------------------------------


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _text(r: Dict[str, Any]) -> str:
    py, pkg, cpu, plat = r["python"], r["package"], r["cpu"], r["platform"]
    lines = [
        f"python    {py['version']} ({py['implementation']}, {py['soabi']}) {py['executable']}",
        f"numpy     {r['numpy']['version']} at {r['numpy']['path']}",
        f"package   hbm_runtime {pkg['version']} at {pkg['path']} (extension {os.path.basename(pkg['extension'])})",
        f"platform  {plat['system']}" + (f", {plat['board']}" if plat["board"] else ""),
        f"cpu       {cpu['arch']}, {cpu['model'] or 'model unknown'}: {cpu['cpu_count']} CPUs, "
        f"{cpu['usable_cpus']} usable, {cpu['host_cores']} host cores",
        f"          flags: {' '.join(cpu['flags']) or 'none of interest'}; NV12 conversion: {cpu['nv12_kernel']} code",
        "engines",
    ]
    for engine in ENGINES:
        e = r["engines"][engine]
        status = {"ok": "OK", "missing": "not found", "broken": "BROKEN", "failed": "FAILED"}[e["status"]]
        lines.append(f"  {ENGINE_TITLES[engine]}: {status}" + (f", {e['engine_version']}" if e["engine_version"] else ""))
        for lib in e["libraries"]:
            if lib["path"]:
                lines.append(f"    {lib['name']}: {lib['path']}" + (f" ({lib['version']})" if lib["version"] else ""))
        if engine == "openvino":
            p = e["package"]
            lines.append(f"    openvino package: {p['version'] or 'version unknown'} at {p['path']}"
                         if p["installed"] else "    openvino package: not installed")
            if "demo" in e:
                d = e["demo"]
                lines.append("    demo model: loaded and ran" if d["ok"] else f"    demo model: FAILED: {d['error']}")
        else:
            if e.get("soc"):
                lines.append(f"    SoC: {e['soc']}")
            if e["layout"]:
                lines.append(f"    tensor properties layout: {e['layout']['dims']}-dim "
                             f"({e['layout']['props_bytes']}-byte hbDNNTensorProperties)")
        for m in e["models"]:
            state = "loads" if m["ok"] else f"FAILS: {m['error']}"
            extra = f" ({', '.join(m['names'])})" if m["names"] else ""
            if m.get("layout"):
                extra += f", layout {m['layout']}-dim"
            elif m.get("layout_error"):
                extra += f", layout unknown: {m['layout_error']}"
            lines.append(f"    model {m['path']}: {state}{extra}")
        if e["status"] != "ok":
            if e["tried"]:
                lines.append("    tried:")
                lines.extend(f"      {t['path']}: {t['error']}" for t in e["tried"])
            else:
                lines.append("    looks in: " + "; ".join(e["search"]))
                if e["error"]:
                    lines.append("    error: " + e["error"].splitlines()[0])
                for line in e.get("stderr", "").strip().splitlines()[-3:]:
                    lines.append(f"    stderr: {line}")
    env = r["environment"]
    set_vars = [n for n in (*PACKAGE_ENV, *OTHER_ENV) if env[n] is not None]
    lines.append("environment" + ("" if set_vars else ": none of the variables hbm_runtime reads is set"))
    for n in set_vars:
        meaning = PACKAGE_ENV.get(n) or OTHER_ENV[n]
        lines.append(f"  {n}={env[n]}  ({meaning})")
    c = r["cache"]
    if c["state"] == "off":
        lines.append("model cache  off (set HBM_RUNTIME_CACHE_DIR to keep compiled .onnx models between runs)")
    elif c["state"] == "missing":
        lines.append(f"model cache  {c['dir']}: not created yet (the first .onnx load creates it)")
    elif c["state"] in ("ready", "read-only"):
        lines.append(f"model cache  {c['dir']}: {c['state']}, {c['entries']} model{'' if c['entries'] == 1 else 's'}, "
                     f"{_size(c['bytes'])}")
    else:
        lines.append(f"model cache  {c['dir']}: unusable")
    for kind in ("problems", "notes"):
        items = r[kind]
        if items:
            lines.append(f"{kind} ({len(items)}):")
            for item in items:
                lines.append(f"  - {item['what']}")
                if item["fix"]:
                    lines.append(f"    fix: {item['fix']}")
    working = r["working_engines"]
    lines.append(f"result: working engines: {', '.join(working)}" if working else "result: no engine works")
    return "\n".join(lines)


def doctor(models: Sequence[str] = (), as_json: bool = False) -> int:
    """Prints the report; exit status 0 when at least one engine works, else 1."""
    record = doctor_record(models)
    if as_json:
        print_json(record)
    else:
        print(_text(record))
    return 0 if record["ok"] else 1
