"""Plain data classes of the API: QuantParams and SchedParam."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple, Union

import numpy as np

from ._hbm_ext import hbDNNQuantiType


class QuantParams:
    """Quantization parameters of one tensor.

    ``x_float = (x_int - zero_point) * scale``, per tensor when ``scale`` has one element,
    per channel along ``axis`` otherwise.
    """

    __slots__ = ("scale", "zero_point", "quant_type", "axis")

    def __init__(
        self,
        scale: Any = (),
        zero_point: Any = (),
        quant_type: Union[hbDNNQuantiType, int] = hbDNNQuantiType.NONE,
        axis: int = 0,
    ) -> None:
        self.scale: np.ndarray = np.array(scale, dtype=np.float32).reshape(-1)
        self.zero_point: np.ndarray = np.array(zero_point, dtype=np.int32).reshape(-1)
        self.quant_type: hbDNNQuantiType = hbDNNQuantiType(int(quant_type))
        self.axis: int = int(axis)

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
