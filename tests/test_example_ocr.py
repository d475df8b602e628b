"""examples/ocr_pipeline.py against rapidocr-onnxruntime 1.4.4 on the same image.

The example runs the PP-OCR models shipped in the rapidocr-onnxruntime wheel through
hbm_runtime, with its own pre- and post-processing; here rapidocr's own pipeline (onnxruntime
and its own code) reads the same rendered image, and both must find the same lines.

rapidocr-onnxruntime is not installed: it requires the GUI build of OpenCV, which clashes with
opencv-python-headless. Its wheel is downloaded once with pip (the example's own download
code) into $HBM_RUNTIME_TEST_CACHE (default ~/.cache/hbm_runtime, the example's default
cache), unpacked there and imported from that folder; its remaining imports (onnxruntime,
pyclipper, shapely, PyYAML, Pillow) must be installed, else the comparison is skipped. Without
a cached wheel and without a reachable package registry, everything here is skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("hbm_runtime")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Rendered lines: upright, upside down (the direction classifier must turn it), tilted (the
# perspective crop must straighten it).
UPRIGHT = ["Charging dock 2024", "SHELF B7 RACK 31415"]
UPSIDE_DOWN = "Upside down 987"
TILTED = "Tilted text 42"
RENDERED = UPRIGHT + [UPSIDE_DOWN, TILTED]


def _import_example():
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module("ocr")  # imports every submodule
    finally:
        sys.path.remove(str(EXAMPLES))


ocr = _import_example()
from ocr.models import ModelFetchError  # noqa: E402


def _text_patch(text: str, scale: float, thickness: int) -> np.ndarray:
    """Black text on white, with a margin around it."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (w, h), base = cv2.getTextSize(text, font, scale, thickness)
    patch = np.full((h + base + 40, w + 40, 3), 255, np.uint8)
    cv2.putText(patch, text, (20, 20 + h), font, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return patch


def _paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    h, w = patch.shape[:2]
    region = canvas[y:y + h, x:x + w]
    np.minimum(region, patch, out=region)  # dark text wins over white


def render_test_image() -> np.ndarray:
    """A 720x480 BGR page with the lines of RENDERED."""
    canvas = np.full((480, 720, 3), 255, np.uint8)
    _paste(canvas, _text_patch(UPRIGHT[0], 1.4, 3), 20, 15)
    _paste(canvas, _text_patch(UPRIGHT[1], 1.2, 2), 20, 105)
    _paste(canvas, cv2.rotate(_text_patch(UPSIDE_DOWN, 1.2, 2), cv2.ROTATE_180), 200, 195)
    tilted = _text_patch(TILTED, 1.2, 2)
    h, w = tilted.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 7, 1.0)  # 7 degrees counter-clockwise
    big_w, big_h = w + 20, h + int(w * 0.13) + 20
    turn[:, 2] += ((big_w - w) / 2, (big_h - h) / 2)
    tilted = cv2.warpAffine(tilted, turn, (big_w, big_h), flags=cv2.INTER_LINEAR,
                            borderValue=(255, 255, 255))
    _paste(canvas, tilted, 60, 300)
    return canvas


@pytest.fixture(scope="module")
def wheel_dir() -> Path:
    cache = os.environ.get("HBM_RUNTIME_TEST_CACHE") or str(ocr.models.default_cache_dir())
    try:
        return ocr.models.unpacked_wheel(cache)
    except ModelFetchError as exc:
        pytest.skip(f"no cached rapidocr-onnxruntime wheel in {cache} and it cannot be downloaded: {exc}")


@pytest.fixture(scope="module")
def models(wheel_dir):
    return ocr.ensure_models(wheel_dir / "rapidocr_onnxruntime" / "models")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return render_test_image()


@pytest.fixture(scope="module")
def ours(models, image):
    with ocr.OcrPipeline(models) as pipe:
        runtime = pipe.runtime
        setup = {
            "count": runtime.model_count,
            "names": runtime.model_names,
            "priority": {n: p.priority for n, p in runtime.sched_params.items()},
            "stage_names": dict(pipe.names),
        }
        result = pipe(image)
    return setup, result


@pytest.fixture(scope="module")
def theirs(wheel_dir, image) -> List[Tuple[np.ndarray, str, float]]:
    for dep in ("onnxruntime", "pyclipper", "shapely", "yaml", "PIL"):
        pytest.importorskip(dep, reason=f"rapidocr_onnxruntime needs {dep}")
    sys.path.insert(0, str(wheel_dir))
    try:
        rapidocr = importlib.import_module("rapidocr_onnxruntime")
    finally:
        sys.path.remove(str(wheel_dir))
    assert Path(str(rapidocr.__file__)).resolve().is_relative_to(wheel_dir.resolve())
    found, _elapsed = rapidocr.RapidOCR()(image)
    return [(np.asarray(box, np.float32), text, float(score)) for box, text, score in (found or [])]


def _env() -> dict:
    """This process's environment, with the hbm_runtime imported here first on PYTHONPATH."""
    env = dict(os.environ)
    package_parent = str(Path(str(importlib.import_module("hbm_runtime").__file__)).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def test_runtime_holds_three_models_detector_first(models, ours):
    setup, _ = ours
    assert setup["count"] == 3
    assert setup["names"] == [Path(p).stem for p in (models.det, models.cls, models.rec)]
    stage = setup["stage_names"]
    prio = setup["priority"]
    assert prio[stage["det"]] == ocr.PRIORITY["det"] == max(prio.values())
    assert prio[stage["det"]] > prio[stage["cls"]] and prio[stage["det"]] > prio[stage["rec"]]
    assert [prio[stage[s]] for s in ("det", "cls", "rec")] == [ocr.PRIORITY[s] for s in ("det", "cls", "rec")]


def test_same_lines_as_rapidocr(ours, theirs):
    _, result = ours
    our_texts = [line.text for line in result.lines]
    their_texts = [text for _, text, _ in theirs]
    assert our_texts == their_texts
    for line, (box, _, score) in zip(result.lines, theirs):
        # same boxes up to a pixel, same confidence up to engine rounding
        assert np.abs(line.box - box).max() <= 1.0, (line.text, line.box.tolist(), box.tolist())
        assert abs(line.score - score) < 0.02, (line.text, line.score, score)


def test_reads_the_rendered_text(ours, theirs):
    _, result = ours
    our_texts = {line.text.replace(" ", "") for line in result.lines}
    their_texts = {text.replace(" ", "") for _, text, _ in theirs}
    read_by_them = [t for t in RENDERED if t.replace(" ", "") in their_texts]
    # the image is readable: most lines, the upside-down one included, come out right ...
    assert len(read_by_them) >= 3, their_texts
    assert UPSIDE_DOWN in read_by_them, their_texts
    # ... and whatever rapidocr reads right, we read right
    assert [t for t in read_by_them if t.replace(" ", "") not in our_texts] == []
    assert all(0.5 <= line.score <= 1.0 for line in result.lines)
    assert set(result.stage_ms) == {"det", "crop", "cls", "rec", "total"}
    assert set(result.infer_ms) == {"det", "cls", "rec"}


def test_command_line_json(models, image, tmp_path, ours):
    _, result = ours
    path = tmp_path / "page.png"
    assert cv2.imwrite(str(path), image)  # PNG: the same pixels come back
    proc = subprocess.run([sys.executable, str(EXAMPLES / "ocr_pipeline.py"), str(path),
                           "--models", str(Path(models.det).parent), "--json"],
                          capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["model_count"] == 3
    assert [(m["stage"], m["priority"]) for m in report["models"]] == list(ocr.PRIORITY.items())
    assert [line["text"] for line in report["lines"]] == [line.text for line in result.lines]
    for printed, line in zip(report["lines"], result.lines):
        assert np.array_equal(np.array(printed["box"], np.float32), line.box)
    assert set(report["stage_ms"]) == {"det", "crop", "cls", "rec", "total"}


def test_command_line_text(models, image, tmp_path, ours, capsys):
    _, result = ours
    path = tmp_path / "page.png"
    assert cv2.imwrite(str(path), image)
    spec = importlib.util.spec_from_file_location("example_ocr_pipeline", EXAMPLES / "ocr_pipeline.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(script)
    finally:
        sys.path[:] = saved
    assert script.main([str(path), "--models", str(Path(models.det).parent)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("models (3 in one HB_HBMRuntime")
    assert out[1].split() == ["det", Path(models.det).stem, "priority", str(ocr.PRIORITY["det"])]
    printed = [ln for ln in out if ln.startswith("  [(")]
    assert [ln.split("  ", 3)[-1] for ln in printed] == [line.text for line in result.lines]
    for stage in ("det", "crop", "cls", "rec", "total"):
        assert any(ln.split()[:1] == [stage] for ln in out[-5:]), out


def test_missing_models_folder_is_a_clear_error(tmp_path):
    (tmp_path / "only_det.onnx").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="'cls'"):
        ocr.ensure_models(tmp_path)
    proc = subprocess.run([sys.executable, str(EXAMPLES / "ocr_pipeline.py"), str(tmp_path / "none.png"),
                           "--models", str(tmp_path)], capture_output=True, text=True, timeout=60,
                          env=_env())
    assert proc.returncode == 2 and "cannot read image" in proc.stderr


def test_cached_wheel_with_wrong_hash_is_refused(tmp_path):
    (tmp_path / ocr.models.WHEEL_NAME).write_bytes(b"not the wheel")
    with pytest.raises(ValueError, match="SHA-256"):
        ocr.models.unpacked_wheel(tmp_path)


def test_unclip_matches_polygon_offsetting():
    """The example's self-contained unclip against pyclipper's round-join offset (what
    rapidocr uses): the minimum-area rectangles fitted to both grown polygons are equal."""
    pyclipper = pytest.importorskip("pyclipper")
    from ocr.detect import _min_area_box, unclip

    rng = np.random.default_rng(7)
    for _ in range(300):
        rect = (tuple(rng.uniform(20, 600, 2)), (rng.uniform(3, 300), rng.uniform(3, 60)),
                rng.uniform(-90, 90))
        box, _ = _min_area_box(cv2.boxPoints(rect))
        x, y = box[:, 0].astype(np.float64), box[:, 1].astype(np.float64)
        area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        distance = area * 1.6 / np.linalg.norm(box - np.roll(box, -1, axis=0), axis=1).sum()
        offset = pyclipper.PyclipperOffset()
        offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        theirs = np.array(offset.Execute(distance), np.float32).reshape(-1, 2)
        ours = unclip(box, 1.6)
        assert np.array_equal(_min_area_box(ours)[0], _min_area_box(theirs)[0]), (rect, ours, theirs)
