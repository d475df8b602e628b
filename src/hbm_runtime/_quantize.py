"""Quantize and dequantize arrays with a scale and zero point.

The results are bit-identical to these numpy expressions, where ``s`` is the scale as float32
and ``z`` the zero point as int32, both reshaped to broadcast along ``axis`` (one value: the
whole tensor)::

    # dequantize: float32 arithmetic throughout
    y = (q.astype(np.float32) - z.astype(np.float32)) * s

    # quantize: float32 division, NaN as 0, rint (half to even), the zero point added
    # exactly, saturation to the integer type
    t = x / s
    t = np.where(np.isnan(t), np.float32(0), t)
    q = np.clip(np.rint(t).astype(np.float64) + z, info.min, info.max).astype(dtype)

so +inf quantizes to ``info.max`` and -inf to ``info.min`` (for a positive scale).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
import numpy.typing as npt

from ._errors import InvalidArgumentError
from ._hbm_ext import _dequantize, _quantize

#: Integer types the kernels take, as quantized input of dequantize / output of quantize.
INTEGER_DTYPES: Tuple[np.dtype[Any], ...] = tuple(
    np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32)
)
_INTEGER_NAMES = "int8, uint8, int16, uint16, int32 or uint32"
_INT32 = np.iinfo(np.int32)


def _as_ndarray(name: str, a: Any) -> npt.NDArray[Any]:
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, np.generic):  # a numpy scalar: a 0-d array of the same dtype
        return np.asarray(a)
    raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")


def _item_name(name: str, i: int, count: int) -> str:
    return name if count == 1 else f"{name}[{i}]"


def _scale_array(scale: Any) -> npt.NDArray[np.float32]:
    a = np.asarray(scale)
    if a.dtype.kind not in "iuf":
        raise TypeError(
            f"scale: expected real numbers, got {type(scale).__name__} of dtype {a.dtype}")
    if a.ndim > 1:
        raise InvalidArgumentError(
            f"scale: expected a number or a 1-D sequence, got shape {a.shape}")
    a = a.reshape(-1)
    with np.errstate(over="ignore"):
        s = a.astype(np.float32)
    bad = np.flatnonzero(np.isinf(s) & np.isfinite(a))
    if bad.size:
        i = int(bad[0])
        raise InvalidArgumentError(
            f"{_item_name('scale', i, a.size)} = {a[i].item()!r} is outside the float32 range")
    return s


def _zero_point_array(zero_point: Any) -> npt.NDArray[np.int32]:
    if zero_point is None:
        return np.zeros(0, np.int32)
    a = np.asarray(zero_point)
    if a.size == 0 and a.ndim <= 1:  # [] is float64 to numpy: empty means 0 whatever its type
        return np.zeros(0, np.int32)
    if a.dtype == object and a.size and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in a.reshape(-1)
    ):
        raise InvalidArgumentError(f"zero_point: {zero_point!r} is outside the int32 range")
    if a.dtype.kind not in "iu":
        raise TypeError(
            f"zero_point: expected integers, got {type(zero_point).__name__} of dtype {a.dtype}")
    if a.ndim > 1:
        raise InvalidArgumentError(
            f"zero_point: expected an integer or a 1-D sequence, got shape {a.shape}")
    a = a.reshape(-1)
    bad = np.flatnonzero((a < _INT32.min) | (a > _INT32.max))
    if bad.size:
        i = int(bad[0])
        raise InvalidArgumentError(
            f"{_item_name('zero_point', i, a.size)} = {int(a[i])} is outside the int32 range")
    return a.astype(np.int32)


def _integer_dtype(dtype: Any) -> np.dtype[Any]:
    dt: np.dtype[Any] = np.dtype(dtype)
    if dt not in INTEGER_DTYPES:
        raise TypeError(f"dtype: {dt} is not supported; expected {_INTEGER_NAMES}")
    return dt


def dequantize(
    q: Any,
    scale: Any,
    zero_point: Any = 0,
    axis: Optional[int] = None,
    *,
    out: Optional[npt.NDArray[np.float32]] = None,
) -> npt.NDArray[np.float32]:
    """Integer tensor to float32: ``(q - zero_point) * scale``.

    ``q``: numpy array of int8, uint8, int16, uint16, int32 or uint32, any strides (padded
    rows, transposed or reversed views, broadcast views); it is only read.
    ``scale``: one number, or one per index along ``axis``; converted to float32 (as
    ``QuantParams`` stores it), finite. ``zero_point``: integers (int32 range) likewise, or
    ``None`` / empty for 0; either may be per tensor while the other is per channel.
    ``axis``: the channel dimension (negative counts from the end), needed when a parameter
    has several values. ``out``: optional float32 array of ``q``'s shape to fill (any strides,
    writable, not sharing memory with ``q``); only its elements are written.

    Returns ``out``, or a new C-contiguous float32 array. Bit-identical to
    ``(q.astype(np.float32) - z.astype(np.float32)) * s`` with ``s``/``z`` the float32/int32
    parameters broadcast along ``axis``. Wrong types raise TypeError, wrong values
    InvalidArgumentError (a ValueError), before anything is written.

    >>> dequantize(np.array([-128, 0, 127], np.int8), 0.5, zero_point=-1)
    array([-63.5,   0.5,  64. ], dtype=float32)
    """
    q = _as_ndarray("q", q)
    s = _scale_array(scale)
    z = _zero_point_array(zero_point)
    if out is None:
        out = np.empty(q.shape, np.float32)
    _dequantize(q, s, z, axis, out)
    return out


def quantize(
    x: Any,
    scale: Any,
    zero_point: Any = 0,
    axis: Optional[int] = None,
    *,
    dtype: Any = None,
    out: Optional[npt.NDArray[Any]] = None,
) -> npt.NDArray[Any]:
    """float32 tensor to integers: ``saturate(rint(x / scale) + zero_point)``.

    ``x``: float32 numpy array, any strides; it is only read. ``scale``: one number, or one per
    index along ``axis``; converted to float32, finite and non-zero (negative flips the
    sign). ``zero_point``: integers within ``dtype``'s range, or ``None`` / empty for 0.
    ``axis``: as for :func:`dequantize`. ``dtype``: int8 (default), uint8, int16, uint16,
    int32 or uint32; with ``out`` it defaults to (and must equal) ``out.dtype``. ``out``:
    optional array of ``x``'s shape to fill (any strides, writable, not sharing memory with
    ``x``).

    Rounding is half to even (``np.rint``) on the float32 quotient ``x / scale``; the zero
    point is then added exactly and the sum saturates to the type's range (+-inf give its
    max/min); NaN quantizes as 0 does, to the zero point. Bit-identical to::

        t = x / s                                       # float32
        t = np.where(np.isnan(t), np.float32(0), t)
        np.clip(np.rint(t).astype(np.float64) + z, info.min, info.max).astype(dtype)

    >>> quantize(np.array([-1.0, 0.25, 0.75, 100.0], np.float32), 0.5, dtype=np.int8)
    array([ -2,   0,   2, 127], dtype=int8)
    """
    x = _as_ndarray("x", x)
    s = _scale_array(scale)
    z = _zero_point_array(zero_point)
    if dtype is not None:
        dt = _integer_dtype(dtype)
        if isinstance(out, np.ndarray) and out.dtype != dt:
            raise TypeError(f"out: dtype {out.dtype} differs from dtype={dt}")
    else:
        dt = np.dtype(np.int8)
    if out is None:
        out = np.empty(x.shape, dt)
    _quantize(x, s, z, axis, out)
    return out


def to_float32(q: Any, out: Optional[npt.NDArray[np.float32]] = None) -> npt.NDArray[np.float32]:
    """The values of a numeric array as float32 (numpy's conversion), into ``out`` if given:
    what dequantizing means for a tensor that is not quantized."""
    a = _as_ndarray("q", q)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"q: dtype {a.dtype} is not supported; expected integers or floats")
    if out is None:
        return a.astype(np.float32)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise TypeError(f"out: dtype {out.dtype} is not supported; expected float32")
    if out.shape != a.shape:
        raise InvalidArgumentError(f"out: shape {out.shape} does not match q.shape {a.shape}")
    if not out.flags.writeable:
        raise InvalidArgumentError("out: the array is read-only")
    np.copyto(out, a, casting="unsafe")
    return out
