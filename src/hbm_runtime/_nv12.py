"""BGR/RGB images to NV12 planes."""

from __future__ import annotations

from typing import Any


def bgr_to_nv12(image: Any, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def rgb_to_nv12(image: Any, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError
