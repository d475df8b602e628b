from collections.abc import Sequence
import enum
from typing import Any


class hbDNNDataType(enum.IntEnum):
    """
    Tensor element type, with libdnn's numbering: an integer enum, e.g. ``rt.input_dtypes['resnet18']['input'] == hbDNNDataType.U8`` and ``int(hbDNNDataType.F32) == 7``.
    """

    S4 = 0
    """signed 4-bit integer (numpy int8 on the Python side)"""

    U4 = 1
    """unsigned 4-bit integer (numpy uint8 on the Python side)"""

    S8 = 2
    """signed 8-bit integer (numpy.int8)"""

    U8 = 3
    """unsigned 8-bit integer (numpy.uint8)"""

    F16 = 4
    """16-bit float (numpy.float16)"""

    S16 = 5
    """signed 16-bit integer (numpy.int16)"""

    U16 = 6
    """unsigned 16-bit integer (numpy.uint16)"""

    F32 = 7
    """32-bit float (numpy.float32)"""

    S32 = 8
    """signed 32-bit integer (numpy.int32)"""

    U32 = 9
    """unsigned 32-bit integer (numpy.uint32)"""

    F64 = 10
    """64-bit float (numpy.float64)"""

    S64 = 11
    """signed 64-bit integer (numpy.int64)"""

    U64 = 12
    """unsigned 64-bit integer (numpy.uint64)"""

    BOOL8 = 13
    """boolean, one byte (numpy.bool_)"""

    MAX = 14
    """end marker of the numbering, not a type"""

class hbDNNQuantiType(enum.IntEnum):
    """
    Tensor quantization type: NONE, or SCALE for ``x_float = (x_int - zero_point) * scale`` (see QuantParams).
    """

    NONE = 0
    """not quantized"""

    SCALE = 1
    """scale and zero point, per tensor or per axis"""

class _RunTimings:
    def to_dict(self) -> dict[str, dict[str, float]]: ...

def _set_result_type(arg: object, /) -> None: ...

def _set_main_thread(arg: int, /) -> None: ...

class _Call:
    def cancel(self) -> bool:
        """Cancels the call if none of its work started yet; False otherwise."""

    def started(self) -> bool: ...

class _Runtime:
    def __init__(self, model_files: Sequence[str], engine: str = '') -> None: ...

    def _model_names(self) -> list[str]: ...

    def _model_desc(self, arg: int, /) -> str: ...

    def _file_descs(self) -> list[tuple[str, str]]: ...

    def _engine_names(self) -> list[str]: ...

    def _index_of(self, arg: str, /) -> int: ...

    def _tensor_infos(self, model: int, outputs: bool, /) -> list[tuple[str, str, hbDNNDataType, list[int], list[int], tuple[hbDNNQuantiType, Any, Any, int]]]: ...

    def _sched(self, arg: int, /) -> tuple[int, int, list[int], int]: ...

    def _set_sched(self, arg: Sequence[tuple[int, int, int, Sequence[int], int]], /) -> None: ...

    def _run(self, input_tensors: object, model_name: object | None = None) -> object: ...

    def _run_async(self, input_tensors: object, model_name: object | None, callback: object) -> _Call: ...

    def input_buffers(self, model_name: object | None = None) -> dict[str, object]:
        """
        Device memory to write a model's inputs into, ``{input_name: numpy.ndarray}`` (BPU models only: ValueError on the host engine). The arrays have the engine's padded strides; passing them back to run() reaches the device without a copy.

        Example: ``bufs = rt.input_buffers(); bufs['y'][...] = y; rt.run(bufs)``.
        """

    def close(self) -> None:
        """
        Releases the models once every running inference finished (runs on the calling thread included). Queued tasks are cancelled: their run_async futures become cancelled right after, on a completion thread. Later runs raise RuntimeClosedError; closing again does nothing.
        """

    @property
    def closed(self) -> bool:
        """True once close() was called (later runs raise RuntimeClosedError)."""

    def _in_flight(self) -> int: ...

def set_host_cores(n: int) -> None:
    """Sets how many virtual cores the host scheduler has (process-wide)."""

def host_cores() -> int:
    """Number of virtual cores of the host scheduler."""

def _queued() -> int: ...

def _pool_threads() -> tuple[int, int, int]:
    """(host workers, completion threads, device-wait threads) running now."""

def _shutdown() -> None: ...

def _at_exit() -> None: ...

def _engine_versions(probe_devices: bool = False) -> list[tuple[str, str]]: ...

def _device_library_version() -> str: ...

def _vendor_dict_order(names: Sequence[str]) -> list[int]: ...

class _CoreHold:
    def __init__(self, core: int) -> None: ...

    def release(self) -> None: ...

def _bgr_to_nv12(image: object, y: object | None, uv: object | None) -> tuple[Any, Any]:
    """
    BGR (H, W, 3) uint8 image -> (y, uv) NV12 planes, into y and uv when given.
    """

def _rgb_to_nv12(image: object, y: object | None, uv: object | None) -> tuple[Any, Any]:
    """
    RGB (H, W, 3) uint8 image -> (y, uv) NV12 planes, into y and uv when given.
    """

def _dequantize(q: object, scale: object, zero_point: object, axis: object | None, out: object) -> None:
    """
    Fills float32 `out` with (q - zero_point) * scale (see hbm_runtime.dequantize); scale: 1-D float32, zero_point: 1-D int32 (empty: 0).
    """

def _quantize(x: object, scale: object, zero_point: object, axis: object | None, out: object) -> None:
    """
    Fills integer `out` with saturate(rint(x / scale) + zero_point) (see hbm_runtime.quantize); scale: 1-D float32, zero_point: 1-D int32 (empty: 0).
    """

def _ucp_props_layout(model_files: Sequence[str]) -> int:
    """
    Loads the .hbm files with the BPU libraries and returns the hbDNNTensorProperties layout the engine detects for their tensors: 10 or 8 (dims).
    """
