"""The OCR pipeline: three PP-OCR models in one HB_HBMRuntime, and the steps between them.

    image -> detector -> DB boxes -> upright crops -> direction classifier (turn 180 degrees
    where it says so) -> recognizer -> CTC greedy decoding -> [(box, text, score), ...]

Scheduling is set as on a robot, where the detector runs on every camera frame and must not
wait behind the per-box work of earlier frames: detector 200, classifier 150, recognizer 100.
Priorities decide which queued work runs first when models compete for the BPU (or for the
host engine's worker threads), e.g. frames read from several threads or with ``run_async``;
a single call sequence like the one below runs one model at a time anyway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import cv2
import numpy as np

from hbm_runtime import HB_HBMRuntime

from .detect import DetParams, boxes_from_prob, det_input, reading_order
from .models import OcrModels
from .recognize import BATCH, character_list, cls_batch, crop_upright, ctc_greedy, rec_batches, should_flip

PRIORITY = {"det": 200, "cls": 150, "rec": 100}
TEXT_SCORE = 0.5        # lines recognised with a lower mean probability are dropped
MAX_SIDE = 2000         # larger images are scaled down first
MIN_SIDE = 30           # smaller ones are scaled up
MIN_HEIGHT = 30         # images this low, or
MAX_RATIO = 8           # wider than 8:1, get black bands above and below for the detector


@dataclass
class TextLine:
    box: np.ndarray     # (4, 2) float32 corners in the input image: tl, tr, br, bl
    text: str
    score: float        # mean probability of the decoded characters


@dataclass
class OcrResult:
    lines: List[TextLine]
    # per stage ("det", "crop", "cls", "rec", "total"): wall time in ms, pre/post-processing included
    stage_ms: Dict[str, float] = field(default_factory=dict)
    # per model stage ("det", "cls", "rec"): time spent inside the models in ms (run().timings)
    infer_ms: Dict[str, float] = field(default_factory=dict)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")


def _resize32(image: np.ndarray, ratio: float) -> np.ndarray:
    h, w = image.shape[:2]
    nh, nw = int(round(int(h * ratio) / 32) * 32), int(round(int(w * ratio) / 32) * 32)
    if nh <= 0 or nw <= 0:
        raise ValueError(f"image of {w}x{h} pixels is too small to read")
    return cv2.resize(image, (nw, nh))


class OcrPipeline:
    """``OcrPipeline(models)(image_bgr) -> OcrResult``; ``models`` as from ``ensure_models()``.

    All three models are loaded by one ``HB_HBMRuntime([det, cls, rec])`` (``.runtime``), with
    the priorities of PRIORITY. The recognizer's character list is read from its ONNX
    metadata (``runtime.hbm_descs``)."""

    def __init__(self, models: OcrModels, *, text_score: float = TEXT_SCORE,
                 det_params: DetParams = DetParams()) -> None:
        self.text_score = text_score
        self.det_params = det_params
        paths = [str(models.det), str(models.cls), str(models.rec)]
        self.runtime = HB_HBMRuntime(paths)
        self.det_name, self.cls_name, self.rec_name = self.runtime.model_names
        self.names = {"det": self.det_name, "cls": self.cls_name, "rec": self.rec_name}
        self.runtime.set_scheduling_params(
            priority={self.names[stage]: p for stage, p in PRIORITY.items()})
        self.chars = character_list(self.runtime.hbm_descs[paths[2]])

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> "OcrPipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, stage: str, x: np.ndarray, infer_ms: Dict[str, float]) -> np.ndarray:
        """Runs one model on ``x`` and returns its (single) output; adds its inference time."""
        name = self.names[stage]
        result = self.runtime.run(x, model_name=name)
        infer_ms[stage] = infer_ms.get(stage, 0.0) + result.timings[name]["infer_us"] / 1000.0
        (out,) = result[name].values()
        return out

    def _prepare(self, image: np.ndarray) -> Tuple[np.ndarray, float, float, int]:
        """Scales over-large and tiny images and pads very flat ones for the detector.
        Returns the image and how to map its coordinates back: x * sx, (y - top) * sy."""
        h, w = image.shape[:2]
        sx = sy = 1.0
        if max(h, w) > MAX_SIDE:
            image = _resize32(image, MAX_SIDE / max(h, w))
        if min(image.shape[:2]) < MIN_SIDE:
            image = _resize32(image, MIN_SIDE / min(image.shape[:2]))
        if image.shape[:2] != (h, w):
            sy, sx = h / image.shape[0], w / image.shape[1]
        ph, pw = image.shape[:2]
        top = 0
        if ph <= MIN_HEIGHT or pw / ph > MAX_RATIO:
            top = abs(max(int(pw / MAX_RATIO), MIN_HEIGHT) * 2 - ph) // 2
            image = cv2.copyMakeBorder(image, top, top, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        return image, sx, sy, top

    def __call__(self, image: np.ndarray) -> OcrResult:
        t_start = time.perf_counter()
        stage_ms: Dict[str, float] = {}
        infer_ms: Dict[str, float] = {}
        raw = _as_bgr(np.asarray(image))
        img, sx, sy, top = self._prepare(raw)

        # detection
        t0 = time.perf_counter()
        x = det_input(img, self.det_params)
        boxes: List[np.ndarray] = []
        if x is not None:
            prob = self._run("det", x, infer_ms)
            boxes = reading_order(boxes_from_prob(prob, img.shape[:2], self.det_params))
        stage_ms["det"] = (time.perf_counter() - t0) * 1000.0

        # crops, upright
        t0 = time.perf_counter()
        crops = [crop_upright(img, b) for b in boxes]
        stage_ms["crop"] = (time.perf_counter() - t0) * 1000.0

        # direction: turn upside-down lines
        t0 = time.perf_counter()
        for start in range(0, len(crops), BATCH):
            probs = self._run("cls", cls_batch(crops[start:start + BATCH]), infer_ms)
            for i in np.flatnonzero(should_flip(probs)):
                crops[start + i] = cv2.rotate(crops[start + i], cv2.ROTATE_180)
        stage_ms["cls"] = (time.perf_counter() - t0) * 1000.0

        # recognition
        t0 = time.perf_counter()
        texts: List[Tuple[str, float]] = [("", 0.0)] * len(crops)
        for idx, batch in rec_batches(crops):
            for i, decoded in zip(idx, ctc_greedy(self._run("rec", batch, infer_ms), self.chars)):
                texts[i] = decoded
        stage_ms["rec"] = (time.perf_counter() - t0) * 1000.0

        lines = []
        h, w = raw.shape[:2]
        for box, (text, score) in zip(boxes, texts):
            if score < self.text_score:
                continue
            b = box.astype(np.float32).copy()
            b[:, 1] -= top
            b[:, 0] *= sx
            b[:, 1] *= sy
            b[:, 0] = np.clip(b[:, 0], 0, w)
            b[:, 1] = np.clip(b[:, 1], 0, h)
            lines.append(TextLine(b, text, score))
        stage_ms["total"] = (time.perf_counter() - t_start) * 1000.0
        return OcrResult(lines, stage_ms, infer_ms)

