"""The vendor package's module path: ``from hbm_runtime.HB_HBMRuntime import QuantParams``
works as it does there. Everything here is also importable from ``hbm_runtime`` itself."""

from ._hbm_ext import hbDNNDataType, hbDNNQuantiType
from ._runtime import HB_HBMRuntime
from ._types import QuantParams, SchedParam

__all__ = ["HB_HBMRuntime", "hbDNNDataType", "hbDNNQuantiType", "QuantParams", "SchedParam"]
