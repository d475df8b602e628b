from collections.abc import Sequence
import enum
from typing import Any


class hbDNNDataType(enum.IntEnum):
    """Tensor element type (libdnn numbering)."""

    S4 = 0

    U4 = 1

    S8 = 2

    U8 = 3

    F16 = 4

    S16 = 5

    U16 = 6

    F32 = 7

    S32 = 8

    U32 = 9

    F64 = 10

    S64 = 11

    U64 = 12

    BOOL8 = 13

    MAX = 14

class hbDNNQuantiType(enum.IntEnum):
    """Tensor quantization type."""

    NONE = 0

    SCALE = 1

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

    def run(self, input_tensors: object, model_name: object | None = None) -> object: ...

    def _run_async(self, input_tensors: object, model_name: object | None, callback: object) -> _Call: ...

    def input_buffers(self, model_name: object | None = None) -> dict[str, object]: ...

    def close(self) -> None:
        """
        Releases the models once every running inference finished (runs on the calling thread included). Queued tasks are cancelled: their run_async futures become cancelled right after, on a completion thread. Later runs raise RuntimeClosedError; closing again does nothing.
        """

    @property
    def closed(self) -> bool: ...

    def _in_flight(self) -> int: ...

def set_host_cores(n: int) -> None:
    """Sets how many virtual cores the host scheduler has (process-wide)."""

def host_cores() -> int:
    """Number of virtual cores of the host scheduler."""

def _queued() -> int: ...

def _pool_threads() -> tuple[int, int, int]:
    """(host workers, completion threads, device-wait threads) running now."""

def _shutdown() -> None: ...

def _engine_versions(probe_devices: bool = False) -> list[tuple[str, str]]: ...

class _CoreHold:
    def __init__(self, core: int) -> None: ...

    def release(self) -> None: ...
