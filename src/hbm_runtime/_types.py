"""Plain data classes of the API: QuantParams and SchedParam."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._hbm_ext import hbDNNQuantiType


class QuantParams:
    """Quantization parameters of one tensor.

    ``x_float = (x_int - zero_point) * scale``, per tensor when ``scale`` has one element,
    per channel along ``axis`` otherwise.
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
        return self._scale

    @scale.setter
    def scale(self, value: Any) -> None:
        self._scale = np.array(value, dtype=np.float32).reshape(-1)

    @property
    def zero_point(self) -> npt.NDArray[np.int32]:
        return self._zero_point

    @zero_point.setter
    def zero_point(self, value: Any) -> None:
        self._zero_point = np.array(value, dtype=np.int32).reshape(-1)

    @property
    def quant_type(self) -> hbDNNQuantiType:
        return self._quant_type

    @quant_type.setter
    def quant_type(self, value: Union[hbDNNQuantiType, int]) -> None:
        self._quant_type = hbDNNQuantiType(int(value))

    @property
    def axis(self) -> int:
        return self._axis

    @axis.setter
    def axis(self, value: int) -> None:
        self._axis = operator.index(value)

    def __eq__(self, other: object) -> bool:
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
        return (
            f"QuantParams(scale={self.scale.tolist()}, zero_point={self.zero_point.tolist()}, "
            f"quant_type={self.quant_type!r}, axis={self.axis})"
        )

    def __reduce__(self) -> Tuple[Any, ...]:
        return (QuantParams, (self.scale, self.zero_point, int(self.quant_type), self.axis))


def _default_cores() -> List[int]:
    return [-1]


@dataclass
class SchedParam:
    """Scheduling parameters of a model.

    As read from ``HB_HBMRuntime.sched_params`` each attribute holds that model's value.
    Like the vendor's object, the attributes may also be set to dicts keyed by model name
    and passed to ``set_scheduling_params``.
    """

    priority: Union[int, Dict[str, int]] = 0
    customId: Union[int, Dict[str, int]] = 0
    bpu_cores: Union[List[int], Dict[str, List[int]]] = field(default_factory=_default_cores)
    deviceId: Union[int, Dict[str, int]] = 0
