"""The README's Python blocks, run in order in one namespace against the BPU test double
(README_cn.md has the same blocks: tests/test_readme_cn.py). The free names the prose implies
(`per_model_inputs`, `x`, `frame`, `rt`, `y_plane`, `uv_plane`) are defined first; the files
the blocks open are the double's models, copied under the names the blocks use. Afterwards
every result the blocks computed is checked against the double's own definition of the model."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

from ucp_support import (YOLO, YOLO_FILE, assert_outputs_equal, expected_outputs, model_file,  # noqa: F401
                         parse_model_file, ucp, ucp_double)

README = Path(__file__).resolve().parent.parent / "README.md"
LANENET = "lanenet256x512"


def python_blocks(text: str):
    """(first line number, code) of every ```python block."""
    blocks, lines, start, code = [], text.splitlines(), None, []
    for i, line in enumerate(lines, 1):
        if start is None and line.strip() == "```python":
            start, code = i + 1, []
        elif start is not None and line.strip() == "```":
            blocks.append((start, "\n".join(code) + "\n"))
            start = None
        elif start is not None:
            code.append(line)
    return blocks


def _named_copy(src: str, name: str, dst: Path) -> None:
    """The double's model file `src` with its (single) model renamed `name`."""
    text = Path(src).read_text()
    text, n = re.subn(r"^model \S+$", f"model {name}", text, flags=re.M)
    assert n == 1
    dst.write_text(text)


def test_readme_python_blocks_run_on_the_double(ucp, tmp_path, monkeypatch):
    if not README.is_file():
        pytest.skip("README.md is not next to the tests (installed package)")
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 5, "the README's Python blocks were not found"
    monkeypatch.chdir(tmp_path)
    for name in (LANENET, YOLO):
        _named_copy(model_file(f"{name}.hbm"), name, tmp_path / f"{name}.hbm")
    for name in ("model1", "model2"):
        _named_copy(model_file("second.hbm"), name, tmp_path / f"{name}.hbm")

    rng = np.random.default_rng(7)
    second = parse_model_file(model_file("second.hbm")).models["m_second"]
    ns = {
        "per_model_inputs": {m: {"x": rng.integers(0, 255, 8, dtype=np.uint8)} for m in ("model1", "model2")},
        "x": rng.integers(0, 255, 8, dtype=np.uint8),
        "frame": rng.integers(0, 256, (672, 672, 3), dtype=np.uint8),
        "y_plane": rng.integers(0, 256, (1, 672, 672, 1), dtype=np.uint8),
        "uv_plane": rng.integers(0, 256, (1, 336, 336, 2), dtype=np.uint8),
    }
    printed = io.StringIO()
    results = []  # the namespace's main names after each block (later blocks reuse them)
    with contextlib.redirect_stdout(printed):
        for line, code in blocks:
            if "input_buffers(\"yolov5x_672x672_nv12\")" in code:
                ns["rt"] = ns["model"]  # the Board section's runtime: the NV12 model opened above
            try:
                exec(compile(code, f"{README}:{line}", "exec"), ns)
            except Exception as e:
                raise AssertionError(f"README.md block at line {line} failed: {e!r}") from e
            results.append({k: ns.get(k) for k in ("outputs", "results", "out", "value", "y", "uv")})
    lines = printed.getvalue().splitlines()
    yolo = parse_model_file(YOLO_FILE).models[YOLO]

    # block 1: the lanenet-like model on ones
    lanenet = parse_model_file(model_file(f"{LANENET}.hbm")).models[LANENET]
    assert_outputs_equal(results[0]["outputs"][LANENET],
                         expected_outputs(lanenet, {"input": np.ones((1, 3, 256, 512), np.float32)}))
    # block 2: the NV12 model on ones, printed in name order; two models together; model_name=
    assert [ln for ln in lines if ln.startswith("Output: ")] == [
        "Output: 1310, shape=(1, 42, 42, 255)", "Output: 1312, shape=(1, 21, 21, 255)",
        "Output: output, shape=(1, 84, 84, 255)"]
    for m in ("model1", "model2"):
        assert_outputs_equal(results[1]["results"][m], expected_outputs(second, ns["per_model_inputs"][m]), m)
    assert list(results[1]["outputs"]) == ["model1"]
    assert_outputs_equal(results[1]["outputs"]["model1"], expected_outputs(second, {"x": ns["x"]}))
    assert any(ln.startswith(f"{YOLO} data_uv NONE") for ln in lines)
    # block 3: scheduling of the two-model runtime
    sched = ns["models"].sched_params
    assert (sched["model1"].priority, sched["model1"].bpu_cores) == (200, [0, 1])
    assert (sched["model2"].priority, sched["model2"].bpu_cores) == (100, [0])
    assert "200" in lines
    # block 4: NV12 conversion into new arrays and in place into the device buffers, run,
    # dequantize ('output', the last in name order, is per-channel SCALE without zero point)
    cv2 = pytest.importorskip("cv2")
    i420 = cv2.cvtColor(ns["frame"], cv2.COLOR_BGR2YUV_I420)
    want_y = i420[:672].reshape(1, 672, 672, 1)
    want_uv = np.stack([i420[672:672 + 168].reshape(336, 336), i420[672 + 168:].reshape(336, 336)], -1)[None]
    np.testing.assert_array_equal(results[3]["y"], want_y)
    np.testing.assert_array_equal(results[3]["uv"], want_uv)
    want = expected_outputs(yolo, {"data_y": want_y, "data_uv": want_uv})
    assert_outputs_equal(results[3]["out"], want)
    scale = ns["model"].output_quants[YOLO]["output"].scale.reshape(1, 1, 1, -1)
    np.testing.assert_array_equal(results[3]["value"], want["output"].astype(np.float32) * scale)
    # block 5: planes written into the device buffers, run
    assert_outputs_equal(results[4]["out"][YOLO],
                         expected_outputs(yolo, {"data_y": ns["y_plane"], "data_uv": ns["uv_plane"]}))
