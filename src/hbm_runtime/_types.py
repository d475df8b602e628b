"""Plain data classes of the API: QuantParams and SchedParam."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._errors import InvalidArgumentError
from ._hbm_ext import hbDNNQuantiType
from ._quantize import dequantize, quantize, to_float32


class QuantParams:
    """Quantization parameters of one tensor.

    ``x_float = (x_int - zero_point) * scale``, per tensor when ``scale`` has one element,
    per channel along ``axis`` otherwise. :meth:`dequantize` and :meth:`quantize` apply them.

    >>> p = QuantParams(scale=[0.5], zero_point=[-1], quant_type=hbDNNQuantiType.SCALE)
    >>> p.dequantize(np.array([3, -1], np.int8))
    array([2., 0.], dtype=float32)
    """

    __slots__ = ("_scale", "_zero_point", "_quant_type", "_axis")

    def __init__(
        self,
        scale: Any = (),
        zero_point: Any = (),
        quant_type: Union[hbDNNQuantiType, int] = hbDNNQuantiType.NONE,
        axis: int = 0,
    ) -> None:
        self.scale = scale
        self.zero_point = zero_point
        self.quant_type = quant_type
        self.axis = axis

    # Assignments convert like the constructor, so ``scale`` is always a float32 array.
    @property
    def scale(self) -> npt.NDArray[np.float32]:
        """Scale factors, a 1-D float32 array: one value for the whole tensor, or one per index
        along :attr:`axis`; e.g. ``array([0.00390625], dtype=float32)``. Assigning converts any
        sequence of numbers to float32."""
        return self._scale

    @scale.setter
    def scale(self, value: Any) -> None:
        self._scale = np.array(value, dtype=np.float32).reshape(-1)

    @property
    def zero_point(self) -> npt.NDArray[np.int32]:
        """Zero points, a 1-D int32 array laid out like :attr:`scale`, or empty for 0; e.g.
        ``array([0], dtype=int32)``. Assigning converts any sequence of integers to int32."""
        return self._zero_point

    @zero_point.setter
    def zero_point(self, value: Any) -> None:
        self._zero_point = np.array(value, dtype=np.int32).reshape(-1)

    @property
    def quant_type(self) -> hbDNNQuantiType:
        """How the tensor is quantized, e.g. ``hbDNNQuantiType.SCALE`` (scale and zero point
        apply) or ``hbDNNQuantiType.NONE`` (not quantized: its values are used as they are).
        Assigning accepts the enum or its integer value (0 or 1)."""
        return self._quant_type

    @quant_type.setter
    def quant_type(self, value: Union[hbDNNQuantiType, int]) -> None:
        self._quant_type = hbDNNQuantiType(int(value))

    @property
    def axis(self) -> int:
        """The channel dimension when :attr:`scale` or :attr:`zero_point` has several values,
        e.g. ``3`` for the last dimension of an NHWC tensor; unused for per-tensor parameters."""
        return self._axis

    @axis.setter
    def axis(self, value: int) -> None:
        self._axis = operator.index(value)

    def dequantize(
        self, q: Any, out: Optional[npt.NDArray[np.float32]] = None
    ) -> npt.NDArray[np.float32]:
        """``q`` as float32 values: ``(q - zero_point) * scale``, per channel along
        :attr:`axis` when a parameter has several values. See :func:`hbm_runtime.dequantize`
        (same arguments, results and errors), e.g. for a model output::

            y = model.output_quants[name][out_name].dequantize(outputs[name][out_name])

        With ``quant_type`` NONE the tensor is not quantized: any integer or float array is
        returned as float32 (numpy's conversion), so every output can go through here.
        """
        if self._quant_type == hbDNNQuantiType.NONE:
            return to_float32(q, out)
        return dequantize(q, self._scale, self._zero_point, self._channel_axis(), out=out)

    def quantize(
        self, x: Any, dtype: Any = None, out: Optional[npt.NDArray[Any]] = None
    ) -> npt.NDArray[Any]:
        """float32 ``x`` as integers: ``saturate(rint(x / scale) + zero_point)``, e.g. to feed
        a quantized model input; per channel along :attr:`axis` when a parameter has several
        values. ``dtype`` as in :func:`hbm_runtime.quantize` (default int8, or ``out.dtype``).
        Raises InvalidArgumentError (a ValueError) when ``quant_type`` is NONE.

        >>> QuantParams(scale=[0.5], zero_point=[3], quant_type=1).quantize(
        ...     np.array([1.0, -0.75], np.float32))
        array([5, 1], dtype=int8)
        """
        if self._quant_type == hbDNNQuantiType.NONE:
            raise InvalidArgumentError(
                "quantize: quant_type is NONE, these parameters hold no scale")
        return quantize(x, self._scale, self._zero_point, self._channel_axis(), dtype=dtype,
                        out=out)

    def _channel_axis(self) -> Optional[int]:
        # The axis matters (and is checked) only for per-channel parameters.
        return self._axis if self._scale.size > 1 or self._zero_point.size > 1 else None

    def __eq__(self, other: object) -> bool:
        """Equal when the type, axis and every scale and zero point are equal."""
        if not isinstance(other, QuantParams):
            return NotImplemented
        return (
            self.quant_type == other.quant_type
            and self.axis == other.axis
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the arrays it holds

    def __repr__(self) -> str:
        """E.g. ``QuantParams(scale=[0.5], zero_point=[0], quant_type=<hbDNNQuantiType.SCALE:
        1>, axis=0)``."""
        return (
            f"QuantParams(scale={self.scale.tolist()}, zero_point={self.zero_point.tolist()}, "
            f"quant_type={self.quant_type!r}, axis={self.axis})"
        )

    def __reduce__(self) -> Tuple[Any, ...]:
        """Pickles (and copies) as a constructor call with the same values."""
        return (QuantParams, (self.scale, self.zero_point, int(self.quant_type), self.axis))


def _default_cores() -> List[int]:
    return [-1]


@dataclass
class SchedParam:
    """Scheduling parameters of a model.

    As read from ``HB_HBMRuntime.sched_params`` each attribute holds that model's value.
    Like the vendor's object, the attributes may also be set to dicts keyed by model name
    and passed to ``set_scheduling_params``.

    Attributes:
        priority: 0-255, higher runs first; 254 and 255 may preempt. E.g. ``200``, or
            ``{'yolo': 200}``. Default 0.
        customId: orders work of equal priority, smaller first. E.g. ``0``. Default 0.
        bpu_cores: the BPU core indices the model may run on, ``[-1]`` (or ``[]``) for any. E.g.
            ``[0, 1]``. Default ``[-1]``.
        deviceId: the BPU device the model runs on. E.g. ``0``. Default 0.
    """

    priority: Union[int, Dict[str, int]] = 0
    """0-255, higher runs first; 254 and 255 may preempt. E.g. ``200`` or ``{'yolo': 200}``."""
    customId: Union[int, Dict[str, int]] = 0
    """Orders work of equal priority, smaller first. E.g. ``0``."""
    bpu_cores: Union[List[int], Dict[str, List[int]]] = field(default_factory=_default_cores)
    """The BPU core indices the model may run on, ``[-1]`` (or ``[]``) for any. E.g. ``[0, 1]``."""
    deviceId: Union[int, Dict[str, int]] = 0
    """The BPU device the model runs on. E.g. ``0``."""
