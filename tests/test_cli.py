"""The command line (`python -m hbm_runtime info|demo`) and the host engine's
unavailable-library error, each in a subprocess with its own environment."""

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

import hbm_runtime
from hbm_runtime import HB_HBMRuntime

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
