"""Quantize and dequantize arrays with a scale and zero point."""

from __future__ import annotations

from typing import Any


def dequantize(q: Any, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def quantize(x: Any, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError
