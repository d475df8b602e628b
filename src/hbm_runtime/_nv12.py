"""BGR/RGB images to the two planes of an NV12 model input."""

from __future__ import annotations

from typing import Any, Dict, Optional, Protocol, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import _hbm_ext


class SupportsArrayInterface(Protocol):
    """An object numpy can view without copying (PIL images, for example)."""

    @property
    def __array_interface__(self) -> Dict[str, Any]: ...


#: What ``bgr_to_nv12``/``rgb_to_nv12`` read: a numpy array or an array-interface exporter.
ImageLike = Union[npt.NDArray[Any], SupportsArrayInterface]
#: The Y plane ``(1, H, W, 1)`` and the interleaved UV plane ``(1, H/2, W/2, 2)``.
NV12Planes = Tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]
#: Caller-given destination planes for ``out=``.
NV12Out = Tuple[npt.NDArray[Any], npt.NDArray[Any]]


def _out_pair(out: Optional[NV12Out]) -> Tuple[object, object]:
    if out is None:
        return None, None
    if isinstance(out, (tuple, list)) and len(out) == 2:
        for i, (name, plane) in enumerate(zip(("y", "uv"), out)):
            if plane is None:
                raise TypeError(f"out[{i}] ({name}): expected a numpy.ndarray, got None "
                                "(pass out=None to have both planes allocated)")
        return out[0], out[1]
    got = type(out).__name__
    if isinstance(out, (tuple, list)):
        got += f" of length {len(out)}"
    raise TypeError(f"out: expected None or a (y, uv) pair of numpy arrays, got {got}")


def bgr_to_nv12(image: ImageLike, out: Optional[NV12Out] = None) -> NV12Planes:
    """Converts a BGR image to the two NV12 planes an NV12 model takes as inputs.

    Bit-identical to OpenCV's ``cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)`` with its U
    and V planes then interleaved (what the RDK model zoo's ``bgr2nv12_opencv`` does): BT.601
    limited range (Y in 16..235, U and V in 16..240), each 2x2 block's U,V pair taken from
    its top-left pixel. Runs in C++ in one pass over the image, without the GIL.

    Args:
        image: ``(H, W, 3)`` uint8 array in B, G, R channel order, as ``cv2.imread`` returns
            it. ``H`` and ``W`` must be even and > 0. Any strides: crops and other views of
            a bigger image are read in place (packed pixels are the fast case). Objects that
            export ``__array_interface__`` or ``__array_struct__`` (e.g. PIL images) are
            accepted too. Never written.
        out: optional ``(y, uv)`` pair of writable uint8 numpy arrays to write into, for
            example the arrays ``HB_HBMRuntime.input_buffers()`` returns for an NV12 model:
            ``y`` of shape ``(1, H, W, 1)`` or ``(H, W)``, ``uv`` of shape
            ``(1, H/2, W/2, 2)`` or ``(H/2, W/2, 2)``. Any strides, such as padded rows;
            bytes outside the elements (row padding) are left untouched. They must not
            share memory with the image or with each other.

    Returns:
        ``(y, uv)``: the Y plane and the interleaved UV plane (U first). Without ``out``,
        new C-contiguous uint8 arrays of shapes ``(1, H, W, 1)`` and ``(1, H/2, W/2, 2)``;
        with ``out``, the very arrays given, now filled.

    Raises:
        TypeError: ``image`` is not an array (or array-interface exporter), an ``out``
            plane is not a numpy array, ``out`` is not a pair, or a dtype is not uint8.
        ValueError: a wrong shape, an odd or zero height or width, a read-only ``out``
            plane, ``out`` planes sharing memory with the image or with each other, or
            strides that make elements of an ``out`` plane share memory.

    Example:
        >>> import cv2, hbm_runtime
        >>> img = cv2.imread("cat.jpg")                  # (H, W, 3) BGR uint8
        >>> img = cv2.resize(img, (672, 672))
        >>> y, uv = hbm_runtime.bgr_to_nv12(img)
        >>> y.shape, uv.shape
        ((1, 672, 672, 1), (1, 336, 336, 2))
        >>> rt = hbm_runtime.HB_HBMRuntime("yolov5x_672x672_nv12.hbm")
        >>> bufs = rt.input_buffers()                    # zero-copy device inputs
        >>> y, uv = hbm_runtime.bgr_to_nv12(img, out=(bufs["data_y"], bufs["data_uv"]))
        >>> outputs = rt.run(bufs)
    """
    y, uv = _out_pair(out)
    return _hbm_ext._bgr_to_nv12(image, y, uv)


def rgb_to_nv12(image: ImageLike, out: Optional[NV12Out] = None) -> NV12Planes:
    """Converts an RGB image to the two NV12 planes an NV12 model takes as inputs.

    Same as :func:`bgr_to_nv12` for an image in R, G, B channel order (PIL images, most
    decoders other than OpenCV's): bit-identical to
    ``cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420)`` with U and V interleaved.

    Args:
        image: ``(H, W, 3)`` uint8 array in R, G, B order, ``H`` and ``W`` even and > 0,
            any strides, or an object exporting ``__array_interface__``. Never written.
        out: optional ``(y, uv)`` pair of writable uint8 arrays to fill, shapes
            ``(1, H, W, 1)`` or ``(H, W)`` and ``(1, H/2, W/2, 2)`` or ``(H/2, W/2, 2)``.

    Returns:
        ``(y, uv)``: new ``(1, H, W, 1)`` and ``(1, H/2, W/2, 2)`` uint8 arrays, or the
        arrays of ``out``, filled.

    Raises:
        TypeError, ValueError: as :func:`bgr_to_nv12`.

    Example:
        >>> import numpy as np, hbm_runtime
        >>> from PIL import Image
        >>> rgb = np.asarray(Image.open("cat.jpg").convert("RGB").resize((640, 480)))
        >>> y, uv = hbm_runtime.rgb_to_nv12(rgb)
        >>> y.shape, uv.shape
        ((1, 480, 640, 1), (1, 240, 320, 2))
    """
    y, uv = _out_pair(out)
    return _hbm_ext._rgb_to_nv12(image, y, uv)
