"""`import hbm_runtime` loads no engine; OpenVINO is loaded when the first .onnx model is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import hbm_runtime

SCRIPT = textwrap.dedent(
    """
    import json, sys

    def openvino_mapped():
        with open("/proc/self/maps") as f:
            return sorted({line.split()[-1] for line in f if "libopenvino" in line})

    import hbm_runtime
    state = {"after_import": openvino_mapped(), "module_after_import": "openvino" in sys.modules}
    from hbm_runtime import HB_HBMRuntime, hbDNNDataType, QuantParams, SchedParam
    state["after_names"] = openvino_mapped()
    if len(sys.argv) > 1:
        rt = HB_HBMRuntime(sys.argv[1])
        state["after_load"] = openvino_mapped()
        state["models"] = rt.model_names
    print(json.dumps(state))
    """
)


def _run_fresh(*args):
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(hbm_runtime.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_does_not_load_openvino():
    state = _run_fresh()
    assert state["after_import"] == [], state
    assert state["after_names"] == [], state
    assert state["module_after_import"] is False


def test_loading_an_onnx_model_loads_openvino(single_path):
    state = _run_fresh(single_path)
    assert state["after_import"] == [], state
    assert state["after_load"], "no libopenvino mapped after loading an .onnx model"
    assert any("libopenvino" in os.path.basename(p) for p in state["after_load"])
    assert state["models"] == ["single"]
