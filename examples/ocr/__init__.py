"""OCR on hbm_runtime: PP-OCR text detection, direction classification and recognition in one
``HB_HBMRuntime``, with the pre- and post-processing written out in plain numpy and OpenCV.

``examples/ocr_pipeline.py`` is the command line; ``models`` finds or downloads the models,
``detect`` decodes text boxes, ``recognize`` turns boxes into strings, ``pipeline`` ties the
three models together.
"""

from .models import OcrModels, ensure_models
from .pipeline import PRIORITY, OcrPipeline, OcrResult, TextLine

__all__ = ["OcrModels", "OcrPipeline", "OcrResult", "PRIORITY", "TextLine", "ensure_models"]
