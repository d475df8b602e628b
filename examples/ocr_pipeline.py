"""End-to-end OCR on hbm_runtime: the PP-OCR models of rapidocr-onnxruntime 1.4.4 (text
detection, text direction, text recognition) loaded together in one HB_HBMRuntime, with every
step between them in this example's own code (examples/ocr/):

1. detection: the image scaled so that its shorter side is 736 pixels (multiples of 32), the
   DB detector's probability map thresholded at 0.3, contours fitted with minimum-area
   rectangles, boxes scored (>= 0.5) and grown by ``area * 1.6 / perimeter`` (unclip);
2. each box cut out upright with a perspective warp, in reading order;
3. the direction classifier (3x48x192 inputs): a crop it calls "180" with a probability
   above 0.9 is turned 180 degrees;
4. recognition (48 pixels high, as wide as the batch's widest crop needs, at least 320) and
   CTC greedy decoding with the character list stored in the recognition model's ONNX
   metadata (``metadata_props["character"]``, read through ``HB_HBMRuntime.hbm_descs``);
   lines with a mean character probability below 0.5 are dropped.

The parameters are rapidocr-onnxruntime's defaults, so both read the same text from the same
image (the test suite checks that). The three models share one runtime with the priorities a
robot would give them: detector 200, classifier 150, recognizer 100 (``set_scheduling_params``).
The models run on the host CPU (OpenVINO); on an RDK S100 they would first have to be
converted to ``.hbm`` with fixed input sizes, which this example does not cover.

Usage::

    python examples/ocr_pipeline.py IMAGE [--models DIR] [--cache DIR] [--json]

Prints each recognised line (box corners, score, text), then the time of each stage (and,
in brackets, the time spent inside the model). Without --models the models come from the
rapidocr-onnxruntime 1.4.4 wheel, downloaded once with
``pip download rapidocr-onnxruntime==1.4.4 --no-deps`` into the cache folder (default
``~/.cache/hbm_runtime``), checked against its pinned SHA-256 and unpacked there.

Needs numpy, hbm_runtime and OpenCV (``opencv-python-headless`` is enough); pip to download
the models.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocr import PRIORITY, OcrPipeline, ensure_models  # noqa: E402
from ocr.models import ModelFetchError, default_cache_dir  # noqa: E402


def read_image(image: Any, models: Any) -> Dict[str, Any]:
    """Loads the models into one runtime, reads ``image`` (BGR array) and returns what the
    command prints: ``models`` (stage, model name, priority), ``load_ms``, ``lines``
    (``box``, ``text``, ``score``), ``stage_ms`` and ``infer_ms``."""
    t0 = time.perf_counter()
    with OcrPipeline(models) as pipe:
        load_ms = (time.perf_counter() - t0) * 1000.0
        sched = pipe.runtime.sched_params
        loaded = [{"stage": stage, "model": pipe.names[stage], "priority": sched[pipe.names[stage]].priority}
                  for stage in PRIORITY]
        count = pipe.runtime.model_count
        result = pipe(image)
    return {
        "model_count": count,
        "models": loaded,
        "load_ms": load_ms,
        "lines": [{"box": line.box.tolist(), "text": line.text, "score": line.score}
                  for line in result.lines],
        "stage_ms": result.stage_ms,
        "infer_ms": result.infer_ms,
    }


def print_report(report: Dict[str, Any]) -> None:
    print(f"models ({report['model_count']} in one HB_HBMRuntime, loaded in {report['load_ms']:.0f} ms):")
    for m in report["models"]:
        print(f"  {m['stage']}  {m['model']}  priority {m['priority']}")
    print(f"{len(report['lines'])} line(s):")
    for line in report["lines"]:
        corners = " ".join(f"({x:.0f},{y:.0f})" for x, y in line["box"])
        print(f"  [{corners}]  {line['score']:.3f}  {line['text']}")
    print("timings (ms, wall; in brackets the time inside the model):")
    for stage in ("det", "crop", "cls", "rec", "total"):
        infer = report["infer_ms"].get(stage)
        extra = f" [{infer:.1f}]" if infer is not None else ""
        print(f"  {stage:<5} {report['stage_ms'][stage]:8.1f}{extra}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Reads the text in an image with PP-OCR models run by hbm_runtime.")
    parser.add_argument("image", help="image file (anything OpenCV reads)")
    parser.add_argument("--models", metavar="DIR",
                        help="folder with the detection, classifier and recognition .onnx files "
                             "(names containing det, cls, rec); default: the rapidocr-onnxruntime "
                             "1.4.4 wheel's, downloaded into the cache folder")
    parser.add_argument("--cache", metavar="DIR", default=None,
                        help=f"where the wheel is downloaded and unpacked (default {default_cache_dir()})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)

    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        print(f"error: cannot read image {args.image}", file=sys.stderr)
        return 2
    try:
        models = ensure_models(args.models, args.cache)
    except (ModelFetchError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    report = read_image(image, models)
    if args.json:
        json.dump(report, sys.stdout)
        print()
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
