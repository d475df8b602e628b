"""Everything between a text box and its string: cutting the box out upright, the inputs of
the direction classifier and of the recognizer, and CTC greedy decoding.

Parameters are rapidocr-onnxruntime 1.4.4's defaults: classifier inputs 3x48x192, a crop is
turned 180 degrees when the classifier says "180" with a probability above 0.9; recognizer
inputs 48 pixels high and at least 320 wide, as wide as the widest crop of the batch needs
(crops keep their aspect ratio and are padded with zeros on the right); batches of 6.
"""

from __future__ import annotations

import json
import math
from typing import List, Sequence, Tuple

import cv2
import numpy as np

CLS_SHAPE = (3, 48, 192)     # channels, height, width of the direction classifier's input
CLS_THRESH = 0.9             # "180" needs at least this probability to turn a crop
REC_HEIGHT = 48              # recognizer input height
REC_MIN_WIDTH = 320          # recognizer input width for ratios up to 320/48
BATCH = 6                    # crops per classifier / recognizer run


def crop_upright(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Cuts the quadrilateral ``box`` (top-left, top-right, bottom-right, bottom-left) out of
    ``image`` as an axis-aligned rectangle (a perspective warp); a crop at least 1.5 times
    taller than wide is a vertical line and is turned 90 degrees counter-clockwise."""
    pts = box.astype(np.float32)
    width = int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3])))
    height = int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2])))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    warp = cv2.getPerspectiveTransform(pts, target)
    crop = cv2.warpPerspective(image, warp, (width, height),
                               borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    if crop.shape[0] >= 1.5 * crop.shape[1]:
        crop = np.rot90(crop)
    return crop


def _fit_height(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """``crop`` scaled to ``height`` keeping its aspect ratio (at most ``width`` wide),
    normalised to [-1, 1], CHW, zero-padded on the right to ``width``."""
    h, w = crop.shape[:2]
    scaled_w = min(width, int(math.ceil(height * w / float(h))))
    scaled = cv2.resize(crop, (scaled_w, height)).astype(np.float32)
    chw = (scaled.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    out = np.zeros((chw.shape[0], height, width), dtype=np.float32)
    out[:, :, :scaled_w] = chw
    return out


def cls_batch(crops: Sequence[np.ndarray]) -> np.ndarray:
    """``(N, 3, 48, 192)`` float32 classifier input for ``crops``."""
    _, h, w = CLS_SHAPE
    return np.stack([_fit_height(c, h, w) for c in crops])


def should_flip(probs: np.ndarray) -> np.ndarray:
    """Which crops to turn 180 degrees, from the classifier's ``(N, 2)`` output (labels
    "0" and "180"): "180" is the most likely and its probability is above CLS_THRESH."""
    probs = np.asarray(probs)
    return (probs.argmax(axis=1) == 1) & (probs[:, 1] > CLS_THRESH)


def rec_batches(crops: Sequence[np.ndarray]) -> List[Tuple[np.ndarray, np.ndarray]]:
    """The recognizer's input batches: ``[(indices, (n, 3, 48, W) float32), ...]``.

    Crops go by increasing width/height ratio, in batches of BATCH; each batch is as wide as
    its widest crop needs (at least REC_MIN_WIDTH), so similar crops share a width and
    little padding is computed."""
    ratios = np.array([c.shape[1] / float(c.shape[0]) for c in crops])
    order = np.argsort(ratios)
    batches = []
    for start in range(0, len(crops), BATCH):
        idx = order[start:start + BATCH]
        max_ratio = max(REC_MIN_WIDTH / REC_HEIGHT, float(ratios[idx].max()))
        width = int(REC_HEIGHT * max_ratio)
        batches.append((idx, np.stack([_fit_height(crops[i], REC_HEIGHT, width) for i in idx])))
    return batches


def character_list(file_desc: str) -> List[str]:
    """The recognizer's class labels from its ONNX ``metadata_props`` (the ``character``
    key, one character a line), as hbm_runtime gives them: ``rt.hbm_descs[path]``, a JSON
    object. Class 0 is the CTC blank and the last class is a space, which the list omits."""
    if not file_desc:
        raise ValueError("the recognition model has no metadata_props; it needs a 'character' "
                         "entry with its character list")
    props = json.loads(file_desc)
    if "character" not in props:
        raise ValueError(f"the recognition model's metadata_props have no 'character' entry "
                         f"(keys: {sorted(props)})")
    return ["<blank>"] + props["character"].splitlines() + [" "]


def ctc_greedy(probs: np.ndarray, chars: Sequence[str]) -> List[Tuple[str, float]]:
    """Decodes the recognizer's ``(N, T, C)`` softmax output: the most likely class per
    time step, repeats merged, blanks (class 0) dropped. Returns ``(text, score)`` per row,
    the score being the mean probability of the kept steps (0.0 for an empty text)."""
    probs = np.asarray(probs)
    if probs.shape[-1] != len(chars):
        raise ValueError(f"the recognizer has {probs.shape[-1]} classes but its character list "
                         f"gives {len(chars)}")
    best = probs.argmax(axis=2)
    best_p = probs.max(axis=2)
    out = []
    for ids, ps in zip(best, best_p):
        keep = np.ones(len(ids), dtype=bool)
        keep[1:] = ids[1:] != ids[:-1]
        keep &= ids != 0
        text = "".join(chars[i] for i in ids[keep])
        score = float(np.mean(ps[keep].astype(np.float64))) if keep.any() else 0.0
        out.append((text, score))
    return out
