"""``python -m hbm_runtime bench``: report schema and sanity, threads and run counts, inputs
from .npy files, dynamic shapes, scheduling options, errors, progress, Ctrl-C, and a .hbm
model through the UCP test double."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import models
from hbm_runtime import HB_HBMRuntime
from hbm_runtime.__main__ import main
from ucp_support import model_file, ucp, ucp_double  # noqa: F401

DEMO = os.path.join(os.path.dirname(sys.modules["hbm_runtime"].__file__), "models", "demo_classifier.onnx")

TOP_KEYS = {"schema", "interrupted", "files", "config", "versions", "models", "runs", "runs_per_thread",
            "elapsed_ms", "throughput_per_s", "latency_ms"}
CONFIG_KEYS = {"model_name", "threads", "runs", "seconds", "warmup", "priority", "cores", "seed"}
VERSION_KEYS = {"hbm_runtime", "runtime", "engines", "python", "numpy", "platform", "machine", "cpu_count",
                "host_cores"}
MODEL_KEYS = {"name", "engine", "sched", "inputs", "stages_ms", "cores"}
STAGE_KEYS = {"queued", "prepare", "infer", "finish", "total"}
LATENCY_KEYS = {"min", "p50", "p90", "p99", "max", "mean"}


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench_models")
    return {
        "single": models.single(d / "single.onnx"),  # x float32 [1, 16]
        "tiny": models.tiny(d / "tiny.onnx"),  # a, b float32
        "dyn": models.dynamic_batch(d / "dyn.onnx"),  # x float32 [-1, 3, 4, 5]
        "dtypes": models.dtypes(d / "dtypes.onnx"),  # in_<TYPE> [2, 3] of every dtype
    }


@pytest.fixture
def run_calls(monkeypatch):
    """Every HB_HBMRuntime.run call the command makes: (thread id, args, kwargs)."""
    calls = []
    lock = threading.Lock()
    original = HB_HBMRuntime.run

    def run(self, *args, **kwargs):
        with lock:
            calls.append((threading.get_ident(), args, kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HB_HBMRuntime, "run", run)
    return calls


def bench_json(capsys, *args):
    code = main(["bench", *args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""  # no progress: stderr is not a terminal
    return json.loads(out)


def check_report(r, runs=None, threads=1):
    """Schema keys and the relations every report must satisfy."""
    assert set(r) == TOP_KEYS
    assert r["schema"] == "hbm_runtime.bench/1"
    assert r["interrupted"] is False
    assert set(r["config"]) == CONFIG_KEYS
    assert set(r["versions"]) == VERSION_KEYS
    assert r["versions"]["numpy"] == np.__version__
    assert r["config"]["threads"] == threads
    assert len(r["runs_per_thread"]) == threads
    assert sum(r["runs_per_thread"]) == r["runs"]
    if runs is not None:
        assert r["runs"] == runs
    lat = r["latency_ms"]
    assert set(lat) == LATENCY_KEYS
    assert all(isinstance(v, float) and v >= 0 for v in lat.values())
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    assert isinstance(r["elapsed_ms"], float) and r["elapsed_ms"] > 0
    assert r["throughput_per_s"] == pytest.approx(r["runs"] / (r["elapsed_ms"] / 1e3))
    for m in r["models"]:
        assert set(m) == MODEL_KEYS
        assert set(m["stages_ms"]) == STAGE_KEYS
        st = m["stages_ms"]
        assert all(isinstance(v, float) and v >= 0 for v in st.values())
        assert st["infer"] > 0
        assert st["infer"] <= st["total"]
        # Every timed run of every benchmarked model left its timings (one core each).
        assert sum(m["cores"].values()) == r["runs"]
        assert all(isinstance(int(c), int) for c in m["cores"])


# ---- report ------------------------------------------------------------------------------------


def test_json_report_counts_runs_and_threads(capsys, paths, run_calls):
    r = bench_json(capsys, paths["single"], "--runs", "10", "--threads", "3", "--warmup", "2")
    check_report(r, runs=10, threads=3)
    assert r["runs_per_thread"] == [4, 3, 3]
    assert r["config"] == {"model_name": None, "threads": 3, "runs": 10, "seconds": None, "warmup": 2,
                           "priority": None, "cores": None, "seed": 0}
    assert r["files"] == [paths["single"]]
    (m,) = r["models"]
    assert m["name"] == "single" and m["engine"] == "openvino"
    assert m["inputs"] == [{"name": "x", "dtype": "F32", "numpy_dtype": "float32", "shape": [1, 16],
                            "source": "random"}]
    assert m["sched"] == {"priority": 0, "customId": 0, "bpu_cores": [-1], "deviceId": 0}
    # One check run on the calling thread, then 2 warm-up runs per thread and the 10 timed runs,
    # made by 3 other threads.
    assert len(run_calls) == 1 + 3 * 2 + 10
    main_thread = threading.get_ident()
    assert run_calls[0][0] == main_thread
    workers = {ident for ident, _, _ in run_calls[1:]}
    assert len(workers) == 3 and main_thread not in workers
    with HB_HBMRuntime(paths["single"]) as rt:
        assert r["versions"]["runtime"] == str(rt.version)
        assert r["versions"]["engines"] == rt.engine_versions


def test_text_report(capsys, paths):
    assert main(["bench", paths["single"], "--runs", "6", "--threads", "2", "--warmup", "0"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "model single: engine openvino, priority 0, bpu_cores [-1]" in out
    assert "  input x: float32 [1, 16] from random" in out
    assert re.search(r"^6 runs on 2 threads in [0-9.]+ m?s \(after 0 warm-up runs per thread\): [0-9.]+ runs/s$",
                     out, re.M), out
    lat = re.search(r"^latency ms: min ([0-9.]+)  p50 ([0-9.]+)  p90 ([0-9.]+)  p99 ([0-9.]+)  max ([0-9.]+)  "
                    r"mean ([0-9.]+)$", out, re.M)
    assert lat, out
    values = [float(v) for v in lat.groups()[:5]]
    assert values == sorted(values)
    assert re.search(r"^  single  queued [0-9.]+  prepare [0-9.]+  infer [0-9.]+  finish [0-9.]+  total [0-9.]+  "
                     r"\(runs per core: ", out, re.M), out


def test_seconds_runs_every_thread_until_the_time_is_up(capsys, paths):
    r = bench_json(capsys, paths["single"], "--seconds", "0.2", "--threads", "2", "--warmup", "1")
    check_report(r, threads=2)
    assert r["config"]["seconds"] == 0.2 and r["config"]["runs"] is None
    assert all(n >= 1 for n in r["runs_per_thread"])
    # Threads start runs until 0.2 s have passed, so timing lasts at least that long.
    assert r["elapsed_ms"] >= 200


def test_several_models_run_together_or_one_by_name(capsys, paths, run_calls):
    r = bench_json(capsys, paths["single"], paths["tiny"], "--runs", "4", "--warmup", "0")
    check_report(r, runs=4)
    assert [m["name"] for m in r["models"]] == ["single", "tiny"]
    assert [i["name"] for i in r["models"][1]["inputs"]] == list(models.TINY_INPUTS)
    assert set(run_calls[-1][1][0]) == {"single", "tiny"}  # {model: {input: array}}: both per call

    run_calls.clear()
    r = bench_json(capsys, paths["single"], paths["tiny"], "--runs", "3", "--warmup", "0", "--model-name", "tiny")
    check_report(r, runs=3)
    assert [m["name"] for m in r["models"]] == ["tiny"]
    assert r["config"]["model_name"] == "tiny"
    _, args, kwargs = run_calls[-1]
    assert set(args[0]) == set(models.TINY_INPUTS)
    assert "tiny" in list(args[1:]) + list(kwargs.values())


def test_priority_and_cores_are_applied(capsys, paths):
    r = bench_json(capsys, paths["single"], "--runs", "5", "--warmup", "1", "--priority", "7", "--cores", "1")
    check_report(r, runs=5)
    (m,) = r["models"]
    assert m["sched"]["priority"] == 7 and m["sched"]["bpu_cores"] == [1]
    assert r["config"]["priority"] == 7 and r["config"]["cores"] == [1]
    from hbm_runtime import host_cores

    assert m["cores"] == {str(1 % host_cores()): 5}  # only on the virtual core chosen

    r = bench_json(capsys, paths["single"], paths["tiny"], "--runs", "2", "--warmup", "0", "--model-name", "single",
                   "--cores", "0,1")
    assert r["config"]["cores"] == [0, 1]
    assert r["models"][0]["sched"]["bpu_cores"] == [0, 1]


# ---- inputs --------------------------------------------------------------------------------------


def test_random_inputs_fit_every_dtype_and_follow_the_seed(capsys, paths, run_calls):
    r = bench_json(capsys, paths["dtypes"], "--runs", "1", "--warmup", "0")
    check_report(r, runs=1)
    fed = run_calls[0][1][0]
    assert set(fed) == {f"in_{t}" for t in models.DTYPES}
    for t, (_, dtype) in models.DTYPES.items():
        a = fed[f"in_{t}"]
        assert a.dtype == np.dtype(dtype) and list(a.shape) == models.DTYPES_SHAPE, t
        assert a.flags.c_contiguous
        if t in ("S32", "U32", "S64", "U64"):
            assert set(np.unique(a).tolist()) <= {0, 1}, t
        elif a.dtype.kind == "f":
            assert (a >= 0).all() and (a < 1).all(), t
    again = bench_json(capsys, paths["dtypes"], "--runs", "1", "--warmup", "0")
    assert again["runs"] == 1
    same = run_calls[2][1][0]
    other_seed = bench_json(capsys, paths["dtypes"], "--runs", "1", "--warmup", "0", "--seed", "5")
    assert other_seed["config"]["seed"] == 5
    other = run_calls[4][1][0]
    for name in fed:
        np.testing.assert_array_equal(fed[name], same[name])
    assert not np.array_equal(fed["in_F32"], other["in_F32"])


def test_input_from_npy_is_what_runs(capsys, paths, tmp_path, run_calls):
    x = np.arange(16, dtype=np.float32).reshape(1, 16) / 16
    npy = tmp_path / "x.npy"
    np.save(npy, x)
    r = bench_json(capsys, paths["single"], "--input", f"x={npy}", "--runs", "3", "--warmup", "0")
    check_report(r, runs=3)
    assert r["models"][0]["inputs"][0]["source"] == str(npy)
    assert len(run_calls) == 4
    for _, args, _ in run_calls:
        np.testing.assert_array_equal(args[0]["x"], x)


def test_input_names_across_models(capsys, paths, tmp_path, run_calls):
    # "single" and "dyn" both have an input "x": the plain name is ambiguous.
    npy = tmp_path / "x.npy"
    np.save(npy, np.ones((1, 16), np.float32))
    code = main(["bench", paths["single"], paths["dyn"], "--input", f"x={npy}", "--runs", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "'single', 'dyn' all have an input 'x': write MODEL:x" in err
    r = bench_json(capsys, paths["single"], paths["dyn"], "--input", f"single:x={npy}", "--runs", "1",
                   "--warmup", "0")
    sources = {m["name"]: m["inputs"][0]["source"] for m in r["models"]}
    assert sources == {"single": str(npy), "dyn": "random"}
    np.testing.assert_array_equal(run_calls[-1][1][0]["single"]["x"], np.ones((1, 16), np.float32))


def test_dynamic_dims_default_to_one_or_take_shape_or_file(capsys, paths, tmp_path, run_calls):
    r = bench_json(capsys, paths["dyn"], "--runs", "1", "--warmup", "0")
    assert r["models"][0]["inputs"][0]["shape"] == [1, 3, 4, 5]
    r = bench_json(capsys, paths["dyn"], "--runs", "1", "--warmup", "0", "--shape", "x=3,3,4,5")
    assert r["models"][0]["inputs"][0]["shape"] == [3, 3, 4, 5]
    assert run_calls[-1][1][0]["x"].shape == (3, 3, 4, 5)
    npy = tmp_path / "batch2.npy"
    np.save(npy, np.zeros((2, 3, 4, 5), np.float32))
    r = bench_json(capsys, paths["dyn"], "--runs", "1", "--warmup", "0", "--input", f"x={npy}")
    assert r["models"][0]["inputs"][0]["shape"] == [2, 3, 4, 5]


@pytest.mark.parametrize("array, expected", [
    (np.zeros((1, 16), np.float64), "--input x={npy}: model 'single' input 'x' takes float32 (F32), "
                                    "the file holds float64 [1, 16]"),
    (np.zeros((1, 8), np.float32), "--input x={npy}: model 'single' input 'x' has shape [1, 16] (-1: any size), "
                                   "the file holds [1, 8] (dimension 1 must be 16)"),
    (np.zeros((16,), np.float32), "--input x={npy}: model 'single' input 'x' has shape [1, 16] (-1: any size), "
                                  "the file holds 1 dimensions [16]"),
])
def test_npy_that_does_not_fit_is_refused(capsys, paths, tmp_path, array, expected):
    npy = tmp_path / "bad.npy"
    np.save(npy, array)
    assert main(["bench", paths["single"], "--input", f"x={npy}", "--runs", "1"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == "error: " + expected.format(npy=npy)


def test_unreadable_input_files(capsys, paths, tmp_path):
    text = tmp_path / "x.txt"
    text.write_text("not an array")
    npz = tmp_path / "x.npz"
    np.savez(npz, x=np.zeros((1, 16), np.float32))
    cases = [
        (f"x={text}", f"cannot read '{text}' as a .npy file"),
        (f"x={npz}", f"'{npz}' is a .npz archive"),
        (f"x={tmp_path / 'missing.npy'}", "missing.npy' does not exist"),
        ("y=whatever.npy", "no input 'y' in the benchmarked model(s); inputs are model 'single': 'x'"),
        ("x", "--input 'x': expected NAME=VALUE"),
    ]
    for spec, message in cases:
        assert main(["bench", paths["single"], "--input", spec, "--runs", "1"]) == 1, spec
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (spec, err)


@pytest.mark.parametrize("spec, message", [
    ("x=3,3,4,6", "dimension 3 must be 5"),
    ("x=3,3,4", "has shape [-1, 3, 4, 5] (-1: any size), got 3 dimensions [3, 3, 4]"),
    ("x=a,b", "expected dimensions like 1,3,224,224, got 'a,b'"),
    ("x=-2,3,4,5", "dimensions must be >= 0"),
])
def test_bad_shapes(capsys, paths, spec, message):
    assert main(["bench", paths["dyn"], "--shape", spec, "--runs", "1"]) == 1
    err = capsys.readouterr().err
    assert message in err, err


# ---- command line errors -------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    ([], "the following arguments are required: MODEL"),
    (["{missing}"], "model file '{missing}' does not exist"),
    (["{single}", "--threads", "0"], "argument --threads: expected a whole number >= 1, got 0"),
    (["{single}", "--runs", "x"], "argument --runs: expected a whole number >= 1, got 'x'"),
    (["{single}", "--runs", "5", "--seconds", "1"], "argument --seconds: not allowed with argument --runs"),
    (["{single}", "--seconds", "0"], "argument --seconds: expected a number of seconds > 0, got '0'"),
    (["{single}", "--warmup", "-1"], "argument --warmup: expected a whole number >= 0, got -1"),
    (["{single}", "--runs", "2", "--threads", "3"], "--runs 2 is less than --threads 3"),
    (["{single}", "--cores", "a"], "argument --cores: expected core ids like 0 1 or 0,1, got 'a'"),
    (["{single}", "--cores", ","], "argument --cores: expected core ids like 0 1 or 0,1, got ','"),
    (["{single}", "--cores", "9", "--runs", "1"], "bpu_cores of model 'single'"),
    (["{single}", "--priority", "300", "--runs", "1"], "priority of model 'single': 300"),
    (["{single}", "--model-name", "nope"], "--model-name nope: no such model; loaded: single"),
    (["{single}", "--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_errors_exit_1_with_a_message(capsys, paths, tmp_path, args, message):
    fill = {"single": paths["single"], "missing": str(tmp_path / "missing.onnx")}
    args = [a.format(**fill) for a in args]
    assert main(["bench", *args, "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert message.format(**fill) in err, err
    assert "Traceback" not in err


# ---- progress and Ctrl-C (subprocesses) ------------------------------------------------------------


def _cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "hbm_runtime", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_subprocess_json_stdout_is_one_object_and_stderr_is_quiet():
    proc = _cli("bench", DEMO, "--runs", "5", "--warmup", "1", "--json")
    check_report(json.loads(proc.stdout), runs=5)
    assert proc.stderr == ""


def test_progress_goes_to_stderr_only(capsys, paths):
    assert main(["bench", paths["single"], "--runs", "5", "--warmup", "1", "--json", "--progress"]) == 0
    out, err = capsys.readouterr()
    check_report(json.loads(out), runs=5)
    lines = err.splitlines()
    assert lines[0] == "bench: warming up (1 runs per thread, 1 thread(s))"
    assert re.fullmatch(r"bench: 5/5 runs, [0-9.]+ s", lines[-1]), err


def test_bad_command_line_in_a_subprocess_exits_1():
    proc = _cli("bench", DEMO, "--threads", "none", check=False)
    assert proc.returncode == 1
    assert "argument --threads: expected a whole number >= 1, got 'none'" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


# Python leaves SIGINT ignored in a child started with it ignored (background jobs): restore
# the KeyboardInterrupt handler, then run the command line as `python -m hbm_runtime` does.
_WITH_SIGINT = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "from hbm_runtime.__main__ import main; sys.exit(main(sys.argv[1:]))")


def test_ctrl_c_reports_what_was_measured_and_exits_130():
    proc = subprocess.Popen([sys.executable, "-c", _WITH_SIGINT, "bench", DEMO, "--seconds", "120", "--threads", "2",
                             "--warmup", "1", "--json", "--progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = 0
        lines = []
        while seen == 0:  # progress lines (one a second) until timed runs were counted
            line = proc.stderr.readline()
            assert line, f"the benchmark ended early: {''.join(lines)}"
            lines.append(line)
            m = re.match(r"bench: (\d+) runs", line)
            seen = int(m.group(1)) if m else 0
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    r = json.loads(out)
    assert r["interrupted"] is True
    assert r["runs"] >= seen and sum(r["runs_per_thread"]) == r["runs"] and len(r["runs_per_thread"]) == 2
    lat = r["latency_ms"]
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert f"interrupted: the report covers the {r['runs']} runs finished before Ctrl-C" in err
    assert "Traceback" not in err


# ---- a .hbm model on the BPU engine (UCP test double) ------------------------------------------------


def test_hbm_model_through_the_double(capsys, ucp):
    second = model_file("second.hbm")  # m_second: U8 [8] -> x + 1
    r = bench_json(capsys, second, "--runs", "6", "--threads", "2", "--warmup", "1", "--priority", "100",
                   "--cores", "1")
    check_report(r, runs=6, threads=2)
    (m,) = r["models"]
    assert m["name"] == "m_second" and m["engine"] == "ucp"
    assert m["inputs"] == [{"name": "x", "dtype": "U8", "numpy_dtype": "uint8", "shape": [8], "source": "random"}]
    assert m["sched"]["priority"] == 100 and m["sched"]["bpu_cores"] == [1]
    assert m["cores"] == {"-1": 6}  # the device's scheduler chose
    assert "ucp" in r["versions"]["engines"]
    # What reached the device: the check run, one warm-up run per thread, the 6 timed runs,
    # each with priority 100 on core 1 only.
    submits = ucp.events("submit")
    assert len(submits) == 1 + 2 * 1 + 6
    assert {(s.int("priority"), s.int("backend")) for s in submits} == {(100, 0x2)}
    assert {s.int("core") for s in ucp.events("start")} == {1}


def test_hbm_nv12_inputs_and_info_lists(capsys, ucp):
    yolo = model_file("yolov5x_672x672_nv12.hbm")
    r = bench_json(capsys, yolo, "--runs", "1", "--warmup", "0")
    check_report(r, runs=1)
    assert [(i["name"], i["numpy_dtype"], i["shape"]) for i in r["models"][0]["inputs"]] == [
        ("data_y", "uint8", [1, 672, 672, 1]), ("data_uv", "uint8", [1, 336, 336, 2])]
    # info: the 255 per-channel scales of "output" are cut unless --full; --json has them all.
    assert main(["info", yolo]) == 0
    out = capsys.readouterr().out
    assert "(247 more values; --full shows all)" in out
    assert main(["info", yolo, "--full"]) == 0
    full = capsys.readouterr().out
    assert "more values" not in full
    with HB_HBMRuntime(yolo) as rt:
        scales = rt.output_quants["yolov5x_672x672_nv12"]["output"].scale.tolist()
    assert f"scale={scales}" in full
    assert main(["info", yolo, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    (model,) = record["models"]
    assert model["engine"] == "ucp"
    assert model["outputs"][0]["quant"]["scale"] == scales
