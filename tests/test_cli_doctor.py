"""`python -m hbm_runtime doctor`: the host engine as installed, hidden, or pointed at nothing;
the BPU engine through the UCP test double (both layouts), with missing, empty, garbage and
crashing libraries; the environment and the model cache. Every run is a fresh process with
its own environment (the engines read theirs once per process)."""

from __future__ import annotations

import ctypes.util
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import hbm_runtime
from hbm_runtime.__main__ import main
from ucp_support import build_double, model_file, parse_model_file, python_env, run_python

SCHEMA_KEYS = {"schema", "ok", "working_engines", "python", "numpy", "package", "platform", "cpu",
               "environment", "cache", "engines", "problems", "notes"}
ENGINE_KEYS = {"status", "expected", "version", "engine_version", "libraries", "search", "tried", "error",
               "models"}
HOST_FIX = "pip install 'openvino>=2026.4'"


def _doctor(*args, env):
    proc = subprocess.run([sys.executable, "-m", "hbm_runtime", "doctor", *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _doctor_json(*args, env):
    proc = _doctor("--json", *args, env=env)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["schema"] == "hbm_runtime.doctor/1"
    assert (proc.returncode == 0) == report["ok"] == bool(report["working_engines"])
    return proc.returncode, report


def _problem(report, *words):
    """The one problem whose text holds every word."""
    found = [p for p in report["problems"] if all(w in p["what"] for w in words)]
    assert len(found) == 1, (words, report["problems"])
    return found[0]


def _no_bpu(tmp_path, **extra):
    """An environment where the BPU engine finds nothing (an empty HBM_UCP_LIB_DIR)."""
    empty = tmp_path / "no-bpu-libs"
    empty.mkdir(exist_ok=True)
    return python_env(empty, **extra)


# ---- the host engine --------------------------------------------------------------------------


def test_host_engine_reported_with_the_version_openvino_gives(tmp_path):
    openvino = pytest.importorskip("openvino")
    env = python_env()
    for key in ("HBM_OPENVINO_LIB_DIR", "HBM_RUNTIME_CACHE_DIR"):
        env.pop(key, None)
    rc, r = _doctor_json(env=env)
    assert rc == 0 and r["ok"] and "openvino" in r["working_engines"]
    assert set(r) == SCHEMA_KEYS
    host = r["engines"]["openvino"]
    assert ENGINE_KEYS <= set(host)
    assert host["status"] == "ok" and host["expected"] is True and host["error"] is None
    assert host["version"] == openvino.get_version()
    assert host["engine_version"] == "OpenVINO " + openvino.get_version()
    (lib,) = host["libraries"]
    package_libs = os.path.join(os.path.dirname(openvino.__file__), "libs")
    assert os.path.dirname(lib["path"]) == package_libs and os.path.basename(lib["path"]).startswith("libopenvino_c.so")
    assert host["package"]["installed"] and host["package"]["libs"] == package_libs
    assert host["demo"]["ok"] is True and host["demo"]["outputs"] >= 1
    # The rest of the report describes this interpreter and package.
    assert r["python"]["version"] == platform.python_version()
    assert r["python"]["executable"] == sys.executable
    assert r["numpy"]["version"] == np.__version__
    assert r["package"]["version"] == hbm_runtime.__version__
    assert os.path.samefile(r["package"]["path"], os.path.dirname(hbm_runtime.__file__))
    assert r["cpu"]["cpu_count"] == os.cpu_count() and r["cpu"]["arch"] == platform.machine()
    assert r["cpu"]["host_cores"] >= 1
    assert set(r["environment"]) >= {"HBM_RUNTIME_CACHE_DIR", "HBM_UCP_LIB_DIR", "LD_LIBRARY_PATH", "OMP_NUM_THREADS"}
    assert r["cache"] == {"dir": None, "state": "off", "entries": 0, "bytes": 0, "writable": None}
    # The text form says the same.
    proc = _doctor(env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"host engine (openvino, .onnx on the CPU): OK, OpenVINO {openvino.get_version()}" in proc.stdout
    assert f"libopenvino_c.so: {lib['path']}" in proc.stdout


HIDE_OPENVINO = textwrap.dedent("""
    # Makes the openvino package invisible to every interpreter started with this on PYTHONPATH.
    import sys

    class _HideOpenVINO:
        def find_spec(self, name, path=None, target=None):
            if name == "openvino" or name.startswith("openvino."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _HideOpenVINO())
""")


def _openvino_on_loader_path() -> bool:
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    return ctypes.util.find_library("openvino_c") is not None or any(
        glob.glob(os.path.join(d, "libopenvino_c.so*")) for d in dirs)


def test_hidden_host_engine_is_reported_missing_with_the_fix(tmp_path):
    if _openvino_on_loader_path():
        pytest.skip("libopenvino_c.so is on the loader path: it cannot be hidden")
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(HIDE_OPENVINO)
    env = _no_bpu(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(hide), env["PYTHONPATH"]])
    for key in ("HBM_OPENVINO_LIB_DIR", "HBM_RUNTIME_OPENVINO_PACKAGE_LIBS"):
        env.pop(key, None)
    rc, r = _doctor_json(env=env)
    assert rc == 1 and r["working_engines"] == []
    host = r["engines"]["openvino"]
    assert host["status"] == "missing" and host["version"] is None and host["package"]["installed"] is False
    assert host["tried"] and all("No such file" in t["error"] for t in host["tried"])
    problem = _problem(r, "host engine", "OpenVINO not found")
    assert HOST_FIX in problem["fix"]
    assert _problem(r, "no engine works")
    proc = _doctor(env=env)
    assert proc.returncode == 1
    assert "host engine (openvino, .onnx on the CPU): not found" in proc.stdout
    assert f"fix: {HOST_FIX}" in proc.stdout
    assert proc.stdout.rstrip().endswith("result: no engine works")


def test_host_engine_pointed_at_an_empty_folder(tmp_path):
    nowhere = tmp_path / "no-openvino-here"
    nowhere.mkdir()
    rc, r = _doctor_json(env=_no_bpu(tmp_path, HBM_OPENVINO_LIB_DIR=str(nowhere)))
    assert rc == 1
    host = r["engines"]["openvino"]
    assert host["status"] == "missing"
    assert [t["path"] for t in host["tried"]] == [str(nowhere / "libopenvino_c.so")]
    problem = _problem(r, "libopenvino_c.so not found in HBM_OPENVINO_LIB_DIR=" + str(nowhere))
    assert "HBM_OPENVINO_LIB_DIR" in problem["fix"]


# ---- the BPU engine, through the test double --------------------------------------------------

DOUBLE_FACTS = textwrap.dedent("""
    import ctypes, json, os, sys
    lib_dir = sys.argv[1]
    ucp = ctypes.CDLL(os.path.join(lib_dir, "libhbucp.so"), mode=ctypes.RTLD_GLOBAL)
    dnn = ctypes.CDLL(os.path.join(lib_dir, "libdnn.so"))
    for f in (ucp.hbUCPGetVersion, dnn.hbDNNGetVersion):
        f.restype = ctypes.c_char_p
    print(json.dumps({"dnn": dnn.hbDNNGetVersion().decode(), "ucp": ucp.hbUCPGetVersion().decode(),
                      "dims": ucp.hbTestDouble_dims()}))
""")


@pytest.mark.parametrize("dims", [10, 8])
def test_bpu_engine_found_with_path_versions_and_layout(dims, tmp_path):
    build = build_double(dims)
    lib_dir = str(build.lib_dir)
    facts = json.loads(run_python("import sys; sys.argv = ['', %r]\n" % lib_dir + DOUBLE_FACTS,
                                  python_env()).stdout)
    assert facts["dims"] == dims
    files = ["yolov5x_672x672_nv12.hbm", "multi.hbm"]
    rc, r = _doctor_json(*[model_file(f) for f in files], env=python_env(build.lib_dir))
    assert rc == 0 and "ucp" in r["working_engines"]
    bpu = r["engines"]["ucp"]
    assert bpu["status"] == "ok" and bpu["expected"] is True and bpu["error"] is None
    libs = {lib["name"]: lib for lib in bpu["libraries"]}
    assert os.path.samefile(libs["libdnn.so"]["path"], build.lib_dir / "libdnn.so")
    assert os.path.samefile(libs["libhbucp.so"]["path"], build.lib_dir / "libhbucp.so")
    assert libs["libdnn.so"]["version"] == bpu["version"] == facts["dnn"]
    assert libs["libhbucp.so"]["version"] == facts["ucp"]
    assert bpu["layout"] == {"dims": dims, "props_bytes": {10: 176, 8: 152}[dims]}
    assert [m["path"] for m in bpu["models"]] == [model_file(f) for f in files]
    for m, f in zip(bpu["models"], files):
        assert m["ok"] and m["error"] is None and m["layout"] == dims
        assert m["names"] == list(parse_model_file(model_file(f)).models)
    assert not [p for p in r["problems"] if "BPU" in p["what"]]
    proc = _doctor(model_file(files[0]), env=python_env(build.lib_dir))
    assert proc.returncode == 0
    assert f"tensor properties layout: {dims}-dim" in proc.stdout
    assert f"libdnn.so: {libs['libdnn.so']['path']} ({facts['dnn']})" in proc.stdout


def test_a_model_that_does_not_load_is_a_problem(tmp_path):
    build = build_double(10)
    good, bad = model_file("second.hbm"), model_file("invalid.hbm")
    rc, r = _doctor_json(good, bad, env=python_env(build.lib_dir))
    assert rc == 0  # the engine works; the file does not
    ok, failed = r["engines"]["ucp"]["models"]
    assert ok["ok"] and not failed["ok"] and failed["layout"] is None
    assert "hbDNNInitializeFromFiles" in failed["error"]
    problem = _problem(r, f"model '{bad}' does not load")
    assert failed["error"] in problem["what"] and problem["fix"]


_KIND_ARG = {"libhbucp.so": "ucp", "libdnn.so": "dnn"}


def _lib_dir(tmp_path, name, ucp="double", dnn="double"):
    """A library directory: each of libhbucp.so / libdnn.so the double's, absent, empty or garbage."""
    d = tmp_path / name
    d.mkdir()
    double = build_double(10).lib_dir
    for lib, kind in (("libhbucp.so", ucp), ("libdnn.so", dnn)):
        if kind == "double":
            shutil.copy(double / lib, d / lib)
        elif kind == "empty":
            (d / lib).write_bytes(b"")
        elif kind == "garbage":
            (d / lib).write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return d


@pytest.mark.parametrize("missing", ["libhbucp.so", "libdnn.so"])
def test_missing_bpu_library(missing, tmp_path):
    d = _lib_dir(tmp_path, "libs", **{_KIND_ARG[missing]: "absent"})
    rc, r = _doctor_json(env=python_env(d))
    bpu = r["engines"]["ucp"]
    assert bpu["status"] == "missing" and bpu["version"] is None
    assert bpu["tried"] == [{"path": str(d / missing), "error": "cannot open shared object file: No such file or directory"}]
    problem = _problem(r, f"BPU engine: {missing} not found in HBM_UCP_LIB_DIR={d}")
    assert "HBM_UCP_LIB_DIR" in problem["fix"]
    assert "ucp" not in r["working_engines"]


@pytest.mark.parametrize("lib,kind", [("libdnn.so", "empty"), ("libhbucp.so", "garbage")])
def test_broken_bpu_library(lib, kind, tmp_path):
    d = _lib_dir(tmp_path, "libs", **{_KIND_ARG[lib]: kind})
    rc, r = _doctor_json(env=python_env(d))
    bpu = r["engines"]["ucp"]
    assert bpu["status"] == "broken" and bpu["version"] is None
    (tried,) = bpu["tried"]
    assert tried["path"] == str(d / lib) and "No such file" not in tried["error"]
    problem = _problem(r, f"BPU engine: {d / lib} cannot be loaded: {tried['error']}")
    assert "hobot-dnn" in problem["fix"] and "HBM_UCP_LIB_DIR" in problem["fix"]
    proc = _doctor(env=python_env(d))
    assert "BPU engine (ucp, .hbm): BROKEN" in proc.stdout
    assert f"{d / lib}: {tried['error']}" in proc.stdout


def test_bpu_library_missing_a_symbol(tmp_path):
    broken = build_double(10).broken_dir
    rc, r = _doctor_json(env=python_env(broken))
    bpu = r["engines"]["ucp"]
    assert bpu["status"] == "broken"
    problem = _problem(r, f"{broken / 'libdnn.so'} lacks hbDNN")
    symbol = problem["what"].split(" lacks ")[1].split()[0]
    # The symbol named is really absent from that library (and present in the complete one).
    check = ("import ctypes, sys; print([hasattr(ctypes.CDLL(sys.argv[1] + '/libdnn.so'), sys.argv[2]) "
             "for _ in [ctypes.CDLL(sys.argv[1] + '/libhbucp.so', mode=ctypes.RTLD_GLOBAL)]][0])")
    for lib_dir, present in ((broken, "False"), (build_double(10).lib_dir, "True")):
        proc = subprocess.run([sys.executable, "-c", check, str(lib_dir), symbol], capture_output=True, text=True)
        assert proc.stdout.strip() == present, (lib_dir, proc.stderr)
    assert "hobot-dnn" in problem["fix"]


def test_a_library_that_kills_its_process_is_reported(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the crashing library")
    d = tmp_path / "crash"
    d.mkdir()
    (d / "crash.c").write_text("#include <stdlib.h>\n"
                               "__attribute__((constructor)) static void crash(void) { abort(); }\n")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(d / "libhbucp.so"), str(d / "crash.c")], check=True)
    rc, r = _doctor_json(env=python_env(d))
    bpu = r["engines"]["ucp"]
    assert bpu["status"] == "broken"
    assert _problem(r, "BPU engine", "killed by SIGABRT")["fix"]
    # The rest of the report is there: the crash stayed in the child.
    assert r["python"]["version"] == platform.python_version() and r["engines"]["openvino"]["status"] in (
        "ok", "missing")


# ---- environment and model cache --------------------------------------------------------------


def test_bad_environment_values_are_problems(tmp_path):
    rc, r = _doctor_json(env=_no_bpu(tmp_path, HBM_UCP_POOL_SETS="many", HBM_RUNTIME_HOST_CORES="0",
                                     HBM_RUNTIME_SPIN_US="50", HBM_RUNTIME_CACHE_DIR=os.devnull))
    assert r["environment"]["HBM_UCP_POOL_SETS"] == "many"
    assert r["environment"]["HBM_RUNTIME_SPIN_US"] == "50"
    assert "HBM_UCP_POOL_SETS" in _problem(r, "HBM_UCP_POOL_SETS='many'", "0..1024")["fix"]
    assert _problem(r, "HBM_RUNTIME_HOST_CORES='0'", "1..64")
    assert not [p for p in r["problems"] if "HBM_RUNTIME_SPIN_US" in p["what"]]
    assert r["cache"]["state"] == "unusable"
    assert _problem(r, f"HBM_RUNTIME_CACHE_DIR='{os.devnull}' is not a directory")


def test_model_cache_state(tmp_path):
    pytest.importorskip("openvino")
    cache = tmp_path / "cache"
    rc, r = _doctor_json(env=_no_bpu(tmp_path, HBM_RUNTIME_CACHE_DIR=str(cache)))
    assert r["cache"]["state"] == "missing" and r["cache"]["writable"] is True
    assert not cache.exists()  # the doctor's own checks leave the cache alone
    # One model loaded through the cache: one entry.
    demo = os.path.join(os.path.dirname(hbm_runtime.__file__), "models", "demo_classifier.onnx")
    run_python(f"import hbm_runtime; hbm_runtime.HB_HBMRuntime({demo!r}).close()",
               python_env(HBM_RUNTIME_CACHE_DIR=str(cache)))
    rc, r = _doctor_json(env=_no_bpu(tmp_path, HBM_RUNTIME_CACHE_DIR=str(cache)))
    assert r["cache"]["dir"] == str(cache) and r["cache"]["state"] == "ready"
    assert r["cache"]["entries"] == 1 and r["cache"]["bytes"] > os.path.getsize(demo)


def test_model_arguments_are_checked_first(capsys, tmp_path):
    assert main(["doctor", str(tmp_path / "nope.hbm")]) == 1
    assert "nope.hbm' does not exist" in capsys.readouterr().err
    (tmp_path / "model.txt").write_text("")
    assert main(["doctor", str(tmp_path / "model.txt")]) == 1
    assert "unsupported model file type" in capsys.readouterr().err
