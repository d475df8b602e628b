"""The runnable examples in examples/: each script runs as a child process on small sizes,
and what it prints (``--json``) is checked against references computed here: OpenCV's NV12
conversion with onnxruntime on the same model, the BPU test double's documented ops, and
onnxruntime on each async request's own input."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

from ucp_support import build_double, expected_outputs, parse_model_file, python_env

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NV12_SCRIPT = EXAMPLES / "nv12_camera_loop.py"
ASYNC_SCRIPT = EXAMPLES / "async_multi_model.py"


def load_example(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(script: Path, *args: str, env: Dict[str, str] | None = None) -> Dict[str, Any]:
    """Runs an example with --json; fails on a non-zero exit; returns the printed object."""
    proc = subprocess.run([sys.executable, str(script), *args, "--json"], capture_output=True,
                          text=True, timeout=120, env=env if env is not None else python_env())
    assert proc.returncode == 0, (f"{script.name} {' '.join(args)} exited with {proc.returncode}\n"
                                  f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return json.loads(proc.stdout)


def cv2_nv12(frame: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """OpenCV's BGR -> I420 with U and V interleaved: (1, H, W, 1) and (1, H/2, W/2, 2)."""
    cv2 = pytest.importorskip("cv2")
    h, w = frame.shape[:2]
    i420 = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).reshape(-1)
    y = i420[: h * w].reshape(1, h, w, 1)
    uv = i420[h * w:].reshape(2, h * w // 4).T.reshape(1, h // 2, w // 2, 2)
    return y, uv


def reference_top_k(scores: np.ndarray, k: int) -> List[List[float]]:
    """Highest first, equal scores by class index (what the example documents)."""
    flat = scores.reshape(-1)
    order = sorted(range(flat.size), key=lambda i: (-float(flat[i]), i))[:k]
    return [[i, float(flat[i])] for i in order]


# ---- NV12 camera loop ----------------------------------------------------------------------------


class HostReference:
    """onnxruntime on the host model the example builds (seeded: the same file), fed with
    OpenCV's NV12 planes, dequantized with the scale and zero point read from the file."""

    def __init__(self, ex: ModuleType, directory: Path, h: int, w: int) -> None:
        onnx = pytest.importorskip("onnx")
        ort = pytest.importorskip("onnxruntime")
        from onnx import numpy_helper

        path = ex.build_nv12_classifier(str(directory / "nv12_classifier.onnx"), h, w)
        inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
        self.scale, self.zero_point = np.float32(inits["out_scale"]), np.float32(inits["out_zp"])
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def top_k(self, frame: np.ndarray, k: int) -> List[List[float]]:
        y, uv = cv2_nv12(frame)
        (q,) = self.session.run(["logits"], {"y": y, "uv": uv})
        assert q.dtype == np.int8
        return reference_top_k((q.astype(np.float32) - self.zero_point) * self.scale, k)


def test_nv12_loop_topk_matches_onnxruntime_on_the_same_frames(tmp_path):
    pytest.importorskip("cv2")
    ex = load_example(NV12_SCRIPT)
    h, w, frames, k = 32, 48, 4, 4
    report = run_script(NV12_SCRIPT, "--frames", str(frames), "--size", f"{h}x{w}", "--topk", str(k))
    ref = HostReference(ex, tmp_path, h, w)

    assert report["input_memory"] == "host arrays"  # the host engine has no device inputs
    assert (report["height"], report["width"], report["frames"]) == (h, w, frames)
    assert report["output_dtype"] == "S8"
    assert report["quant"] == {"type": "SCALE", "scale": [float(ref.scale)],
                               "zero_point": [int(ref.zero_point)]}
    assert [r["frame"] for r in report["results"]] == list(range(frames))
    for r in report["results"]:
        assert r["topk"] == ref.top_k(ex.synthetic_frame(r["frame"], h, w), k), f"frame {r['frame']}"
    assert len({json.dumps(r["topk"]) for r in report["results"]}) > 1, \
        "every frame gave the same top-k: the frames do not reach the model"
    assert set(report["timings"]) == {"convert", "run", "dequantize", "topk"}
    for stage, t in report["timings"].items():
        assert 0 <= t["mean_ms"] and 0 <= t["p90_ms"], stage


def test_nv12_loop_reads_and_resizes_a_video_file(tmp_path):
    """--source: frames decoded by OpenCV, resized to the model's size (INTER_AREA); the
    video is shorter than --frames, so the loop stops at its end."""
    cv2 = pytest.importorskip("cv2")
    ex = load_example(NV12_SCRIPT)
    h, w, k = 32, 48, 3
    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 40))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG .avi files")
    rng = np.random.default_rng(3)
    for i in range(3):
        frame = np.full((40, 64, 3), 40 * i, np.uint8)
        frame[8:32, 10 + 12 * i:30 + 12 * i] = rng.integers(0, 256, 3, dtype=np.uint8)
        writer.write(frame)
    writer.release()
    capture = cv2.VideoCapture(video)
    decoded = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        decoded.append(cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA))
    capture.release()
    if len(decoded) != 3:
        pytest.skip(f"this OpenCV build reads {len(decoded)} of the 3 frames written")

    report = run_script(NV12_SCRIPT, "--source", video, "--frames", "10", "--size", f"{h}x{w}",
                        "--topk", str(k))
    ref = HostReference(ex, tmp_path, h, w)
    assert report["frames"] == 3
    for r, frame in zip(report["results"], decoded):
        assert r["topk"] == ref.top_k(frame, k), f"frame {r['frame']}"


def test_nv12_loop_writes_the_planes_in_place_on_the_host(tmp_path):
    pytest.importorskip("cv2")
    pytest.importorskip("onnx")
    import hbm_runtime

    ex = load_example(NV12_SCRIPT)
    path = ex.build_nv12_classifier(str(tmp_path / "cls.onnx"), 16, 24)
    rng = np.random.default_rng(5)
    with hbm_runtime.HB_HBMRuntime(path) as rt:
        name = rt.model_names[0]
        y_name, uv_name = ex.nv12_input_names(rt, name)
        planes, on_device = ex.input_planes(rt, name)
        assert not on_device and (y_name, uv_name) == ("y", "uv")
        y_plane, uv_plane = planes[y_name], planes[uv_name]
        for _ in range(2):
            frame = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
            ex.convert_frame(frame, planes, y_name, uv_name)
            assert planes[y_name] is y_plane and planes[uv_name] is uv_plane
            want_y, want_uv = cv2_nv12(frame)
            np.testing.assert_array_equal(y_plane, want_y)
            np.testing.assert_array_equal(uv_plane, want_uv)


def _double_lib_dir() -> Path:
    if not os.environ.get("HBM_UCP_DOUBLE_DIR") and shutil.which("cmake") is None:
        pytest.skip("building the BPU test double needs cmake")
    return build_double(10).lib_dir


def _nv12_double_model(tmp_path: Path, h: int, w: int) -> Tuple[Path, int, float, int]:
    """An NV12 "classifier" for the test double: logits[k] = y[k] + uv[k mod H*W/2] over
    every Y element (so every byte of both planes reaches some logit), S32 with a scale."""
    classes, scale, zero = h * w, 0.5, 3
    path = tmp_path / "nv12_cls.hbm"
    path.write_text("\n".join([
        "HBM-TEST-DOUBLE 1",
        "model nv12_cls",
        f"input data_y U8 shape=1,{h},{w},1 strides=-1,-1,1,1",
        f"input data_uv U8 shape=1,{h // 2},{w // 2},2 strides=-1,-1,2,1",
        f"output logits S32 shape=1,{classes}",
        f"quant scale={scale} zero={zero}",
        "op sum in=data_y,data_uv",
        "",
    ]))
    return path, classes, scale, zero


def test_nv12_loop_on_the_bpu_double_uses_input_buffers(tmp_path):
    """The --model .hbm path, through the BPU libraries' test double: the planes go into
    input_buffers (rows padded to 64 bytes, a separate device copy), and what the device
    computes from them gives the printed top-k."""
    pytest.importorskip("cv2")
    lib_dir = _double_lib_dir()
    ex = load_example(NV12_SCRIPT)
    h, w, frames, k = 8, 12, 3, 6
    path, classes, scale, zero = _nv12_double_model(tmp_path, h, w)
    model = parse_model_file(path).models["nv12_cls"]
    env = python_env(lib_dir)

    report = run_script(NV12_SCRIPT, "--model", str(path), "--frames", str(frames), "--topk", str(k),
                        env=env)
    assert report["input_memory"] == "device (input_buffers)"
    assert report["inputs"] == {"y": "data_y", "uv": "data_uv"}
    assert (report["height"], report["width"], report["output_dtype"]) == (h, w, "S32")
    assert [r["frame"] for r in report["results"]] == list(range(frames))
    for r in report["results"]:
        y, uv = cv2_nv12(ex.synthetic_frame(r["frame"], h, w))
        logits = expected_outputs(model, {"data_y": y, "data_uv": uv})["logits"]
        scores = (logits.astype(np.float32) - np.float32(zero)) * np.float32(scale)
        assert r["topk"] == reference_top_k(scores, k), f"frame {r['frame']}"

    # Every byte of both planes, read back from the input buffers and from the device's result.
    rng = np.random.default_rng(9)
    images = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", images)
    code = f"""
import importlib.util, json, sys
import numpy as np
spec = importlib.util.spec_from_file_location("nv12_example", {str(NV12_SCRIPT)!r})
ex = importlib.util.module_from_spec(spec); spec.loader.exec_module(ex)
out = {str(tmp_path)!r}
with ex.HB_HBMRuntime({str(path)!r}) as rt:
    name = rt.model_names[0]
    yn, uvn = ex.nv12_input_names(rt, name)
    planes, on_device = ex.input_planes(rt, name)
    strides = {{n: list(a.strides) for n, a in planes.items()}}
    for i, frame in enumerate(np.load(out + "/frames.npy")):
        ex.convert_frame(frame, planes, yn, uvn)
        np.save(f"{{out}}/y{{i}}.npy", planes[yn]); np.save(f"{{out}}/uv{{i}}.npy", planes[uvn])
        np.save(f"{{out}}/logits{{i}}.npy", rt.run(planes, name)[name]["logits"])
print(json.dumps({{"on_device": on_device, "strides": strides}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    child = json.loads(proc.stdout)
    assert child["on_device"]
    assert child["strides"]["data_y"][1] >= 64 > w, "the device rows are not padded"
    for i, frame in enumerate(images):
        want_y, want_uv = cv2_nv12(frame)
        np.testing.assert_array_equal(np.load(tmp_path / f"y{i}.npy"), want_y)
        np.testing.assert_array_equal(np.load(tmp_path / f"uv{i}.npy"), want_uv)
        want = expected_outputs(model, {"data_y": want_y, "data_uv": want_uv})["logits"]
        assert want.shape == (1, classes)
        np.testing.assert_array_equal(np.load(tmp_path / f"logits{i}.npy"), want)


def test_nv12_loop_text_output_and_argument_errors(capsys):
    pytest.importorskip("onnx")
    ex = load_example(NV12_SCRIPT)
    assert ex.main(["--frames", "3", "--size", "16x24", "--topk", "2"]) == 0
    text = capsys.readouterr().out
    assert "model nv12_classifier (16x24 NV12" in text and "3 frames" in text
    assert sum(line.startswith("frame ") for line in text.splitlines()) == 3
    for stage in ("convert", "run", "dequantize", "topk"):
        assert any(line.split()[:1] == [stage] and len(line.split()) == 3 for line in text.splitlines()), stage
    for bad in (["--frames", "0"], ["--size", "15x24"], ["--size", "18x24"], ["--size", "big"]):
        with pytest.raises(SystemExit) as info:
            ex.main(bad)
        assert info.value.code == 2, bad
    err = capsys.readouterr().err
    assert "must be even" in err and "multiples of 4" in err and "expected HxW" in err


# ---- async, several models ------------------------------------------------------------------------


def _check_async_report(ex: ModuleType, report: Dict[str, Any], per_model: int | None,
                        min_per_model: int) -> None:
    models = report["models"]
    assert set(models) == {ex.DETECTOR, ex.CLASSIFIER}
    counts = {m: v["requests"] for m, v in models.items()}
    assert report["total_requests"] == sum(counts.values())
    for m, v in models.items():
        n = v["requests"]
        if per_model is not None:
            assert n == per_model, m
        assert n >= min_per_model, m
        assert [r["request"] for r in v["results"]] == list(range(n)), f"{m}: requests lost or repeated"
        # Scheduling as the example sets it, read back from the runtime.
        assert v["priority"] == ex.PRIORITIES[m] and v["bpu_cores"] == ex.CORES[m], m
        # Queueing (and the other statistics) are those of this model's own requests.
        queued = np.array([r["queued_us"] for r in v["results"]], np.float64) / 1e3
        assert v["queued"]["mean_ms"] == pytest.approx(queued.mean(), rel=1e-9, abs=1e-9), m
        assert v["queued"]["p90_ms"] == pytest.approx(np.percentile(queued, 90), rel=1e-9, abs=1e-9), m
        assert (queued >= 0).all(), m
        for r in v["results"]:
            # The runtime's queueing and inference happen inside the awaited interval.
            assert r["queued_us"] + r["infer_us"] <= r["end_to_end_us"] + 5, (m, r)
    assert models[ex.CLASSIFIER]["priority"] > models[ex.DETECTOR]["priority"]


def _check_async_results(ex: ModuleType, report: Dict[str, Any], tmp_path: Path) -> None:
    """Each request's reported result is what onnxruntime computes for that request's input."""
    ort = pytest.importorskip("onnxruntime")
    paths = dict(zip((ex.DETECTOR, ex.CLASSIFIER), ex.build_models(str(tmp_path))))
    for m, v in report["models"].items():
        session = ort.InferenceSession(paths[m], providers=["CPUExecutionProvider"])
        input_name, output_name = ex.INPUTS[m][0], ex.RESULT_OUTPUT[m]
        cache: Dict[int, np.ndarray] = {}
        for r in v["results"]:
            key = r["request"] % ex.INPUT_VARIANTS
            if key not in cache:
                x = ex.request_input(m, r["request"])
                cache[key] = session.run([output_name], {input_name: x})[0].reshape(-1)
            ref = cache[key]
            assert abs(ref[r["best"]] - r["best_value"]) <= 1e-4 * max(1.0, abs(r["best_value"])), (m, r)
            assert ref[r["best"]] >= ref.max() - 1e-4 * max(1.0, abs(ref.max())), (m, r, int(ref.argmax()))


def test_async_multi_model_counts_results_and_per_model_queueing(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    ex = load_example(ASYNC_SCRIPT)
    report = run_script(ASYNC_SCRIPT, "--requests", "20", "--concurrency", "3")
    assert report["concurrency"] == 3
    _check_async_report(ex, report, per_model=20, min_per_model=20)
    _check_async_results(ex, report, tmp_path)
    # Inputs differ between requests, and so do the results.
    assert len({r["best"] for r in report["models"][ex.DETECTOR]["results"]}) > 1


def test_async_multi_model_seconds_mode_counts_add_up():
    pytest.importorskip("onnx")
    ex = load_example(ASYNC_SCRIPT)
    report = run_script(ASYNC_SCRIPT, "--seconds", "0.2", "--concurrency", "2")
    # Each client submits at least one request whatever the machine's speed.
    _check_async_report(ex, report, per_model=None, min_per_model=2)
