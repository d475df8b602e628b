"""The command line (`python -m hbm_runtime info|demo`, bench in test_cli_bench.py) and the host
engine's unavailable-library error: subprocesses with their own environment, and `info`'s long
descriptions, --full and --json run in-process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import hbm_runtime
import models
from hbm_runtime import HB_HBMRuntime
from hbm_runtime.__main__ import main

from models import qdq


def _run(*args, env=None, check=True):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_demo_runs_the_bundled_model_and_matches_onnxruntime():
    out = _run("-m", "hbm_runtime", "demo", "--runs", "20").stdout
    model = os.path.join(os.path.dirname(hbm_runtime.__file__), "models", "demo_classifier.onnx")
    shown = re.search(r"model demo_classifier from (\S+)", out).group(1)
    assert os.path.realpath(shown) == os.path.realpath(model)
    assert re.search(r"time per run over 20 runs: median [0-9.]+ us", out)
    # The demo feeds np.random.default_rng(0).random(shape): recompute it with onnxruntime.
    x = np.random.default_rng(0).random([1, 3, 32, 32]).astype(np.float32)
    ref = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert f"argmax = {int(np.argmax(ref))}" in out
    printed = re.search(r"values\[:10\] = \[([^\]]*)\]", out).group(1).split()
    np.testing.assert_allclose([float(v) for v in printed], ref.reshape(-1)[:10], atol=1e-4)


def test_demo_model_is_what_the_generator_script_makes(tmp_path):
    model = os.path.join(os.path.dirname(hbm_runtime.__file__), "models", "demo_classifier.onnx")
    script = os.path.join(os.path.dirname(__file__), "..", "tools", "make_demo_model.py")
    if not os.path.exists(script):
        pytest.skip("source tree not available")
    sys.path.insert(0, os.path.dirname(script))
    try:
        import make_demo_model
    finally:
        sys.path.pop(0)
    assert make_demo_model.build().SerializeToString() == onnx.load(model).SerializeToString()


def test_info_prints_every_kind_of_metadata(tmp_path):
    path = qdq(str(tmp_path / "qdq.onnx"))
    out = _run("-m", "hbm_runtime", "info", path).stdout
    with HB_HBMRuntime(path) as rt:
        name = rt.model_names[0]
        assert f"model {name}" in out
        for kind in ("input", "output"):
            for t in getattr(rt, f"{kind}_names")[name]:
                shape = getattr(rt, f"{kind}_shapes")[name][t]
                dtype = getattr(rt, f"{kind}_dtypes")[name][t].name
                strides = getattr(rt, f"{kind}_strides")[name][t]
                assert f"{t}: shape={shape} dtype={dtype} strides={strides}" in out
                q = getattr(rt, f"{kind}_quants")[name][t]
                if q.quant_type != 0:
                    assert f"quant: SCALE axis={q.axis} scale={q.scale.tolist()}" in out
        assert "sched: priority=0 customId=0 bpu_cores=[-1] deviceId=0" in out


def test_info_on_a_missing_file_fails_cleanly(tmp_path):
    proc = _run("-m", "hbm_runtime", "info", str(tmp_path / "nope.onnx"), check=False)
    assert proc.returncode == 1
    assert "nope.onnx" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_openvino_is_engine_unavailable(tmp_path):
    path = qdq(str(tmp_path / "qdq.onnx"))
    code = (
        "import json, hbm_runtime\n"
        "try:\n"
        f"    hbm_runtime.HB_HBMRuntime({path!r})\n"
        "except hbm_runtime.EngineUnavailableError as e:\n"
        "    print(json.dumps([isinstance(e, RuntimeError), str(e)]))\n"
    )
    proc = _run("-c", code, env={"HBM_OPENVINO_LIB_DIR": str(tmp_path / "no-openvino-here")})
    is_runtime_error, message = json.loads(proc.stdout)
    assert is_runtime_error
    assert "pip install openvino" in message and "HBM_OPENVINO_LIB_DIR" in message
    assert "no-openvino-here" in message  # says where it looked


# ---- info: long descriptions, --full, --json ----------------------------------------------------

# Like a PP-OCR recognizer: its character list (6,625 entries, one a line) as the description.
LONG_CHARS = [chr(0x4E00 + i) for i in range(6623)] + ["a", " "]
LONG_DOC = "\n".join(LONG_CHARS)
LONG_PROPS = {"character": "".join(LONG_CHARS[:300]), "author": "tests"}
LONG_INPUT_DOC = "first line\nsecond line " + "x" * 400


@pytest.fixture(scope="module")
def long_desc_path(tmp_path_factory):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "ocr_rec",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4], doc_string=LONG_INPUT_DOC)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4], doc_string="short")])
    return models._save(graph, tmp_path_factory.mktemp("long") / "ocr_rec.onnx", doc=LONG_DOC, props=LONG_PROPS)


def _line(out, prefix):
    (line,) = [ln for ln in out.splitlines() if ln.startswith(prefix)]
    return line


def test_info_cuts_long_descriptions(capsys, long_desc_path):
    assert main(["info", long_desc_path]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 20  # not 6,625 lines
    desc = _line(out, "  desc: ")
    m = re.fullmatch(r"  desc: (.*) … \((\d+) more characters; --full shows all\)", desc)
    assert m, desc
    shown, more = m.group(1), int(m.group(2))
    # Newlines are shown escaped; what is shown plus what is left out is the whole description.
    assert shown.startswith("一\\n丁\\n丂\\n")
    assert shown.replace("\\n", "\n") + LONG_DOC[len(shown.replace("\\n", "\n")):] == LONG_DOC
    assert len(shown.replace("\\n", "\n")) + more == len(LONG_DOC)
    assert len(desc) <= 120  # the default width when stdout is not a terminal (CJK count double)
    with HB_HBMRuntime(long_desc_path) as rt:
        file_desc = rt.hbm_descs[long_desc_path]
    file_line = _line(out, f"file {long_desc_path}: ")
    assert file_line.startswith(f'file {long_desc_path}: {{"character": "一丁丂')
    more_file = int(re.search(r"… \((\d+) more characters; --full shows all\)$", file_line).group(1))
    assert file_line.count("丁") == 1 and more_file < len(file_desc)
    tensor_desc = _line(out, "      desc: first line")
    assert tensor_desc.startswith("      desc: first line\\nsecond line xxx") and "--full shows all" in tensor_desc
    assert "      desc: short" in out  # short ones are whole


def test_info_width_option(capsys, long_desc_path):
    assert main(["info", long_desc_path, "--width", "200"]) == 0
    wide = _line(capsys.readouterr().out, "  desc: ")
    assert main(["info", long_desc_path, "--width", "80"]) == 0
    narrow = _line(capsys.readouterr().out, "  desc: ")
    more = [int(re.search(r"\((\d+) more characters", d).group(1)) for d in (wide, narrow)]
    assert more[0] < more[1]


def test_info_full_shows_everything(capsys, long_desc_path):
    assert main(["info", long_desc_path, "--full"]) == 0
    out = capsys.readouterr().out
    assert "more characters" not in out
    # The description's lines, continuation lines indented under the label.
    assert "  desc: " + LONG_DOC.replace("\n", "\n    ") in out
    assert "      desc: " + LONG_INPUT_DOC.replace("\n", "\n        ") in out
    with HB_HBMRuntime(long_desc_path) as rt:
        assert f"file {long_desc_path}: {rt.hbm_descs[long_desc_path]}" in out


def test_info_json_holds_all_metadata(capsys, long_desc_path, tmp_path):
    qdq_path = qdq(str(tmp_path / "qdq.onnx"))
    assert main(["info", long_desc_path, qdq_path, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    record = json.loads(out)
    assert set(record) == {"schema", "versions", "files", "models"}
    assert record["schema"] == "hbm_runtime.info/1"
    with HB_HBMRuntime([long_desc_path, qdq_path]) as rt:
        assert record["versions"]["runtime"] == str(rt.version)
        assert record["versions"]["engines"] == rt.engine_versions
        assert record["files"] == [{"path": p, "desc": d} for p, d in rt.hbm_descs.items()]
        assert [m["name"] for m in record["models"]] == rt.model_names
        for m in record["models"]:
            name = m["name"]
            assert set(m) == {"name", "engine", "desc", "sched", "inputs", "outputs"}
            assert m["engine"] == "openvino"
            assert m["desc"] == rt.model_descs[name]
            s = rt.sched_params[name]
            assert m["sched"] == {"priority": s.priority, "customId": s.customId, "bpu_cores": s.bpu_cores,
                                  "deviceId": s.deviceId}
            for kind in ("input", "output"):
                tensors = m[f"{kind}s"]
                assert [t["name"] for t in tensors] == getattr(rt, f"{kind}_names")[name]
                for t in tensors:
                    n = t["name"]
                    assert set(t) == {"name", "dtype", "numpy_dtype", "shape", "strides", "desc", "quant"}
                    assert t["dtype"] == getattr(rt, f"{kind}_dtypes")[name][n].name
                    assert t["shape"] == getattr(rt, f"{kind}_shapes")[name][n]
                    assert t["strides"] == getattr(rt, f"{kind}_strides")[name][n]
                    assert t["desc"] == getattr(rt, f"{kind}_descs")[name][n]
                    q = getattr(rt, f"{kind}_quants")[name][n]
                    if q.quant_type == 0:
                        assert t["quant"] is None
                    else:
                        assert t["quant"] == {"type": "SCALE", "axis": q.axis, "scale": q.scale.tolist(),
                                              "zero_point": q.zero_point.tolist()}
    assert record["models"][0]["desc"] == LONG_DOC  # whole, never cut
    quantized = [t for m in record["models"] for t in m["inputs"] + m["outputs"] if t["quant"]]
    assert quantized and {t["numpy_dtype"] for t in quantized} <= {"int8", "uint8"}


def test_info_shows_the_engine(capsys, tmp_path):
    path = qdq(str(tmp_path / "qdq.onnx"))
    assert main(["info", path]) == 0
    assert "  engine: openvino\n" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["info"], "the following arguments are required: MODEL"),
    (["info", "m.onnx", "--width", "0"], "argument --width: expected a whole number >= 1, got 0"),
    (["nope"], "invalid choice: 'nope'"),
    ([], "the following arguments are required"),
    (["demo", "--runs", "0"], "argument --runs: expected a whole number >= 1, got 0"),
])
def test_bad_command_lines_exit_1(capsys, args, message):
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert out == "" and message in err and "usage:" in err


def test_console_script_entry_point_is_main():
    import importlib.metadata

    eps = [ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == "hbm-runtime"]
    if not eps:
        pytest.skip("hbm_runtime is not installed (console scripts come with the installed package)")
    assert eps[0].value == "hbm_runtime.__main__:main"


def test_usage_names_the_console_script(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/bin/hbm-runtime"])
    assert main(["bench"]) == 1
    assert "usage: hbm-runtime bench" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", [os.path.join(os.path.dirname(hbm_runtime.__file__), "__main__.py")])
    assert main(["bench"]) == 1
    assert "usage: python -m hbm_runtime bench" in capsys.readouterr().err
