"""Text detection around a PP-OCR DB (Differentiable Binarization) model: the image scaled for
the network, and the probability map it returns decoded into four-corner text boxes.

The parameters are rapidocr-onnxruntime 1.4.4's defaults: the shorter side scaled up to
736 pixels (sides rounded to multiples of 32), pixels above 0.3 are text, a 2x2 dilation,
boxes whose mean probability is below 0.5 dropped, and each box grown outwards by
``area * 1.6 / perimeter`` ("unclip", since the network predicts shrunken text regions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import cv2
import numpy as np


@dataclass(frozen=True)
class DetParams:
    limit_side_len: int = 736   # the shorter image side is scaled up to this
    thresh: float = 0.3         # probability above which a pixel is text
    box_thresh: float = 0.5     # minimum mean probability inside a box
    unclip_ratio: float = 1.6   # how far boxes grow: area * ratio / perimeter
    max_candidates: int = 1000  # contours looked at, at most
    min_size: int = 3           # boxes whose shorter side is below this are noise
    dilate: bool = True         # 2x2 dilation of the binary map


def _round32(v: int) -> int:
    return int(round(v / 32) * 32)


def det_input(image_bgr: np.ndarray, params: DetParams = DetParams()) -> Optional[np.ndarray]:
    """``(H, W, 3)`` uint8 BGR -> ``(1, 3, H', W')`` float32 in [-1, 1], H' and W' multiples
    of 32 with the shorter side near ``limit_side_len``; None for an image too small."""
    h, w = image_bgr.shape[:2]
    short = min(h, w)
    ratio = params.limit_side_len / short if short < params.limit_side_len else 1.0
    rh, rw = _round32(int(h * ratio)), _round32(int(w * ratio))
    if rh <= 0 or rw <= 0:
        return None
    resized = cv2.resize(image_bgr, (rw, rh))
    x = (resized.astype(np.float32) / 255.0 - 0.5) / 0.5
    return np.ascontiguousarray(x.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)


def _min_area_box(points: np.ndarray) -> Tuple[np.ndarray, float]:
    """Minimum-area rectangle around ``points``: its corners (top-left, top-right,
    bottom-right, bottom-left, as float32) and its shorter side."""
    rect = cv2.minAreaRect(points)
    corners = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
    left, right = corners[:2], corners[2:]
    tl, bl = (left[0], left[1]) if left[1][1] > left[0][1] else (left[1], left[0])
    tr, br = (right[0], right[1]) if right[1][1] > right[0][1] else (right[1], right[0])
    return np.array([tl, tr, br, bl], dtype=np.float32), min(rect[1])


def _mean_score(prob: np.ndarray, box: np.ndarray) -> float:
    """Mean probability inside the quadrilateral ``box`` (computed on its bounding window)."""
    h, w = prob.shape
    x0 = int(np.clip(np.floor(box[:, 0].min()), 0, w - 1))
    x1 = int(np.clip(np.ceil(box[:, 0].max()), 0, w - 1))
    y0 = int(np.clip(np.floor(box[:, 1].min()), 0, h - 1))
    y1 = int(np.clip(np.ceil(box[:, 1].max()), 0, h - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    local = (box - np.array([x0, y0], dtype=np.float32)).astype(np.int32)
    cv2.fillPoly(mask, [local], 1)
    return float(cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], mask)[0])


def _round_half_away(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def unclip(box: np.ndarray, ratio: float, arc_tolerance: float = 0.25) -> np.ndarray:
    """Grows the convex polygon ``box`` (N x 2) outwards by ``d = area * ratio / perimeter``
    with round corners, and returns the grown polygon's vertices (M x 2 float32).

    This is the round-join offset of polygon clipping libraries, done in integer pixel
    coordinates as they do it: ``d`` is computed from the corners as given, the corners are
    then truncated to whole pixels, every edge moves ``d`` along its outward normal, and
    each corner gets an arc of radius ``d`` from one edge's normal to the next one's, in
    steps small enough that the arc strays less than ``arc_tolerance`` pixels from the
    circle; the vertices are rounded to whole pixels.
    """
    exact = box.astype(np.float64).reshape(-1, 2)
    x, y = exact[:, 0], exact[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    perimeter = float(np.linalg.norm(exact - np.roll(exact, -1, axis=0), axis=1).sum())
    pts = np.trunc(exact)
    keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)  # drop repeated corners
    pts = pts[keep] if keep.any() else pts[:1]
    if perimeter == 0.0 or len(pts) < 3:
        return pts.astype(np.float32)
    d = area * ratio / perimeter
    # Orient the corners so that (dy, -dx) of each edge points outwards.
    px, py = pts[:, 0], pts[:, 1]
    if float(np.dot(px, np.roll(py, -1)) - np.dot(py, np.roll(px, -1))) < 0:
        pts = pts[::-1]
    edges = np.roll(pts, -1, axis=0) - pts
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1) / np.linalg.norm(edges, axis=1)[:, None]
    tol = min(arc_tolerance, d * 0.25)
    steps_per_turn = min(np.pi / np.arccos(1.0 - tol / d), d * np.pi)
    step = 2.0 * np.pi / steps_per_turn
    out = []
    for j in range(len(pts)):
        n_in, n_out = normals[j - 1], normals[j]   # edges arriving at and leaving corner j
        turn = np.arctan2(n_in[0] * n_out[1] - n_in[1] * n_out[0], float(np.dot(n_in, n_out)))
        count = max(int(round(steps_per_turn / (2.0 * np.pi) * abs(turn))), 1)
        start = np.arctan2(n_in[1], n_in[0])
        angles = start + np.sign(turn) * step * np.arange(count)
        out.append(pts[j] + d * np.stack([np.cos(angles), np.sin(angles)], axis=1))
        out.append(pts[j] + d * n_out[None, :])
    return _round_half_away(np.concatenate(out)).astype(np.float32)


def _order_clockwise(box: np.ndarray) -> np.ndarray:
    """Corners as top-left, top-right, bottom-right, bottom-left (by x, then y)."""
    by_x = box[np.argsort(box[:, 0]), :]
    left = by_x[:2][np.argsort(by_x[:2, 1]), :]
    right = by_x[2:][np.argsort(by_x[2:, 1]), :]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def boxes_from_prob(prob_map: np.ndarray, image_hw: Tuple[int, int],
                    params: DetParams = DetParams()) -> List[np.ndarray]:
    """Decodes the detector's output (``(1, 1, h, w)`` probabilities) into text boxes in the
    coordinates of an image of ``image_hw``: a list of ``(4, 2)`` float32 arrays, corners
    top-left, top-right, bottom-right, bottom-left."""
    prob = np.asarray(prob_map, dtype=np.float32)[0, 0]
    mh, mw = prob.shape
    ih, iw = image_hw
    text_pixels = (prob > params.thresh).astype(np.uint8)
    bitmap = cv2.dilate(text_pixels, np.ones((2, 2), dtype=np.uint8)) if params.dilate else text_pixels
    # [-2]: the contours, whether findContours returns 2 values (OpenCV >= 4) or 3 (OpenCV 3)
    contours = cv2.findContours(bitmap * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[-2]
    boxes = []
    for contour in contours[:params.max_candidates]:
        box, short = _min_area_box(contour)
        if short < params.min_size:
            continue
        if _mean_score(prob, box) < params.box_thresh:
            continue
        box, short = _min_area_box(unclip(box, params.unclip_ratio))
        if short < params.min_size + 2:
            continue
        # map to image coordinates, whole pixels
        box[:, 0] = np.clip(np.round(box[:, 0] / mw * iw), 0, iw)
        box[:, 1] = np.clip(np.round(box[:, 1] / mh * ih), 0, ih)
        # corners in a fixed order, inside the image; boxes 3 pixels or less across are noise
        box = _order_clockwise(box.astype(np.int32).astype(np.float32))
        box[:, 0] = np.clip(box[:, 0], 0, iw - 1)
        box[:, 1] = np.clip(box[:, 1], 0, ih - 1)
        if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
            continue
        boxes.append(box)
    return boxes


def reading_order(boxes: List[np.ndarray]) -> List[np.ndarray]:
    """Boxes top to bottom, and left to right within a line (top-left corners less than 10
    pixels apart vertically count as one line)."""
    ordered = sorted(boxes, key=lambda b: (float(b[0][1]), float(b[0][0])))
    for i in range(len(ordered) - 1):
        for j in range(i, -1, -1):
            a, b = ordered[j], ordered[j + 1]
            if abs(b[0][1] - a[0][1]) < 10 and b[0][0] < a[0][0]:
                ordered[j], ordered[j + 1] = b, a
            else:
                break
    return ordered
