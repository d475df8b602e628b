"""HB_HBMRuntime: the class users load models with."""

from __future__ import annotations

import concurrent.futures
import errno
import importlib.util
import operator
import os
from typing import (TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, TypeVar,
                    Union, overload)

import numpy as np

from . import _hbm_ext
from ._errors import InvalidArgumentError, ModelFileNotFoundError, RuntimeClosedError
from ._hbm_ext import hbDNNDataType, hbDNNQuantiType
from ._result import RunResult
from ._types import QuantParams, SchedParam
from ._version import __version__

PathLike = Union[str, "os.PathLike[str]"]

_PENDING = "PENDING"
_RUNNING = "RUNNING"
_CANCELLED = "CANCELLED"
_CANCELLED_AND_NOTIFIED = "CANCELLED_AND_NOTIFIED"


class _RunFuture(concurrent.futures.Future):  # type: ignore[type-arg]
    """The future of one run_async() call, with the semantics of concurrent.futures: it is
    RUNNING once work on it started, and cancel() succeeds only before that, taking the call's
    queued work out of the queue."""

    _call: Any = None

    def _mark_running(self) -> None:
        # set_running_or_notify_cancel() for work that started, without its complaint when a
        # cancel() raced with it.
        with self._condition:
            if self._state == _PENDING:
                self._state = _RUNNING

    def cancel(self) -> bool:
        call = self._call
        if call is not None and not self.done():
            if not call.cancel():
                self._mark_running()
        return super().cancel()

    def running(self) -> bool:
        call = self._call
        if call is not None and not self.done() and call.started():
            self._mark_running()
        return super().running()

    def _complete(self, result: Any, error: Optional[BaseException]) -> None:
        with self._condition:
            state = self._state
        if state == _CANCELLED:  # cancel() took the work back: tell the waiters now
            self.set_running_or_notify_cancel()
            return
        if state == _CANCELLED_AND_NOTIFIED:
            return
        if isinstance(error, RuntimeClosedError) and state == _PENDING and super().cancel():
            self.set_running_or_notify_cancel()  # closed before any of it ran
            return
        self._mark_running()
        if error is None:
            self.set_result(result)
        else:
            self.set_exception(error)


class SupportsDLPack(Protocol):
    """An array exporting DLPack (a torch CPU tensor, for instance)."""

    def __dlpack__(self) -> Any: ...

    def __dlpack_device__(self) -> Tuple[int, int]: ...


InputArray = Union[np.ndarray[Any, Any], SupportsDLPack]
# run()'s three input forms: one array, {input_name: array}, {model_name: {input_name: array}}.
RunInput = Union[InputArray, Mapping[str, InputArray], Mapping[str, Mapping[str, InputArray]]]

_TensorInfo = Tuple[str, str, hbDNNDataType, List[int], List[int], Tuple[Any, np.ndarray[Any, Any], np.ndarray[Any, Any], int]]


class _Version(str):
    """The version string, also callable: the vendor's stub declares ``version()``."""

    def __call__(self) -> str:
        return str(self)


def _version_string() -> str:
    # On a board: the BPU library's own string, as the vendor's package returns it (board
    # scripts parse it); hbm_runtime.__version__ and engine_versions keep ours.
    device = _hbm_ext._device_library_version()
    if device:
        return device
    engines = _hbm_ext._engine_versions(probe_devices=True)
    if not engines:
        return __version__
    return __version__ + " (" + ", ".join(v for _, v in engines) + ")"


class _VersionAttribute:
    """``HB_HBMRuntime.version`` and ``model.version``: read-only on instances."""

    def __get__(self, obj: object, owner: type) -> _Version:
        return _Version(_version_string())

    def __set__(self, obj: object, value: object) -> None:
        raise AttributeError("version is read-only")


def _point_at_openvino() -> None:
    # Tell the C++ loader where the openvino wheel keeps its libraries, without importing it.
    if os.environ.get("HBM_RUNTIME_OPENVINO_PACKAGE_LIBS"):
        return
    try:
        spec = importlib.util.find_spec("openvino")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            libs = os.path.join(location, "libs")
            if os.path.isdir(libs):
                os.environ["HBM_RUNTIME_OPENVINO_PACKAGE_LIBS"] = libs
                return


def _file_list(model_file: Any, model_files: Any) -> List[str]:
    if model_file is None and model_files is None:
        raise TypeError("HB_HBMRuntime() needs a model file: HB_HBMRuntime('model.hbm') or "
                        "HB_HBMRuntime(['a.hbm', 'b.hbm'])")
    if model_file is not None and model_files is not None:
        raise TypeError("HB_HBMRuntime() takes model_file or model_files, not both")
    given = model_file if model_file is not None else model_files
    if isinstance(given, (str, os.PathLike)):
        files = [os.fspath(given)]
    elif isinstance(given, (list, tuple)):
        files = []
        for f in given:
            if not isinstance(f, (str, os.PathLike)):
                raise TypeError(f"model file paths must be str or os.PathLike, got {type(f).__name__}")
            files.append(os.fspath(f))
    else:
        raise TypeError(
            f"HB_HBMRuntime() takes a model file path or a list of paths, got {type(given).__name__}"
        )
    for f in files:
        # Before any engine is loaded: a typo in a path must not read as "BPU libraries missing".
        if not os.path.exists(f):
            raise ModelFileNotFoundError(errno.ENOENT, "model file not found", f)
    return files


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what}: expected an int, got bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{what}: expected an int, got {type(value).__name__}") from None
    if not -(2**63) <= number < 2**63:  # what the engines can hold; the range checks follow there
        raise InvalidArgumentError(f"{what}: {number} is out of range")
    return number


def _as_cores(value: Any, what: str) -> List[int]:
    if isinstance(value, (list, tuple)):
        # [] is the vendor package's spelling of "any core"; ours is [-1].
        return [_as_int(v, what) for v in value] if value else [-1]
    return [_as_int(value, what)]


_run = _hbm_ext._Runtime._run  # looked up once: run() is the hot path


def _pick_run_input(form: str, input_tensors: Any, input_tensor: Any, multi_input_tensors: Any) -> Any:
    given = [(n, v) for n, v in (("input_tensors", input_tensors), ("input_tensor", input_tensor),
                                 ("multi_input_tensors", multi_input_tensors)) if v is not None]
    if len(given) != 1:
        names = ", ".join(n for n, _ in given) if given else "none"
        raise TypeError(f"{form} takes exactly one of input_tensor, input_tensors, multi_input_tensors "
                        f"(positionally or by keyword); got {names}")
    return given[0][1]


class HB_HBMRuntime(_hbm_ext._Runtime):
    """Loads one or more models and runs them.

    ``HB_HBMRuntime("model.hbm")``, ``HB_HBMRuntime(["a.hbm", "b.onnx"])`` or, as keywords,
    ``HB_HBMRuntime(model_file="model.hbm")`` / ``HB_HBMRuntime(model_files=[...])``. ``.hbm``
    models run on the BPU (libdnn/libhbucp), ``.onnx`` models on the host CPU through
    OpenVINO. Every metadata property is a dict keyed by model name, e.g.
    ``rt.input_shapes == {"resnet18": {"input": [1, 224, 224, 3]}}``.

    Raises ModelFileNotFoundError (a FileNotFoundError and a ValueError) for a missing
    file, ValueError for a file that is not a valid
    model, EngineUnavailableError when the engine a file needs cannot be loaded here.
    Use it as a context manager (or call ``close()``) to release the models at a known time.
    """

    version = _VersionAttribute()
    """On a board, the BPU library's version string as ``hbDNNGetVersion()`` gives it (as the
    vendor's package returns it); elsewhere the package version with the loaded engine
    libraries', e.g. ``'0.4.0 (openvino 2026.4.1)'``. Also callable,
    ``HB_HBMRuntime.version()``. ``hbm_runtime.__version__`` is always the package's."""

    def __init__(
        self,
        model_file: Union[PathLike, Sequence[PathLike], None] = None,
        *,
        model_files: Optional[Sequence[PathLike]] = None,
        engine: Optional[str] = None,
    ) -> None:
        """Loads ``model_file`` (one path or a list of paths) or ``model_files`` (a list).

        ``engine`` forces an engine for every file (``"openvino"`` or ``"ucp"``); by default
        the file's extension chooses.
        """
        files = _file_list(model_file, model_files)
        _point_at_openvino()
        super().__init__(files, engine or "")
        self._names: List[str] = self._model_names()
        self._inputs: List[List[_TensorInfo]] = [self._tensor_infos(i, False) for i in range(len(self._names))]
        self._outputs: List[List[_TensorInfo]] = [self._tensor_infos(i, True) for i in range(len(self._names))]

    # -- metadata ---------------------------------------------------------------------
    @property
    def model_names(self) -> List[str]:
        """Names of the loaded models, in load order, e.g. ``['lanenet', 'yolov5x']``."""
        return list(self._names)

    @property
    def model_count(self) -> int:
        """Number of loaded models, e.g. ``2``."""
        return len(self._names)

    @property
    def model_descs(self) -> Dict[str, str]:
        """Each model's description text from its file (``''`` when none), e.g.
        ``{'resnet18': 'ImageNet classifier'}``."""
        return {n: self._model_desc(i) for i, n in enumerate(self._names)}

    @property
    def hbm_descs(self) -> Dict[str, str]:
        """Each loaded file's description, keyed by file path, e.g.
        ``{'/opt/models/resnet18.hbm': 'built 2025-06-01'}``."""
        return dict(_vendor_ordered(self._file_descs(), lambda fd: fd[0]))

    @property
    def engine_versions(self) -> Dict[str, str]:
        """Versions of the engine libraries loaded in this process, by engine name, e.g.
        ``{'openvino': 'openvino 2026.4.1'}``."""
        return dict(_hbm_ext._engine_versions())

    def _per_tensor(self, infos: List[List[_TensorInfo]], pick: Any) -> Dict[str, Dict[str, Any]]:
        # Keyed in the vendor package's order (its hash map's; the manual prints them so);
        # input_names / output_names keep the model's own order.
        return {n: {t[0]: pick(t) for t in _vendor_ordered(infos[i], _tensor_name)} for i, n in enumerate(self._names)}

    @property
    def input_counts(self) -> Dict[str, int]:
        """Number of inputs of each model, e.g. ``{'resnet18': 1}``."""
        return {n: len(self._inputs[i]) for i, n in enumerate(self._names)}

    @property
    def input_names(self) -> Dict[str, List[str]]:
        """Input names of each model, in the model's order, e.g. ``{'yolo': ['y', 'uv']}``."""
        return {n: [t[0] for t in self._inputs[i]] for i, n in enumerate(self._names)}

    @property
    def input_descs(self) -> Dict[str, Dict[str, str]]:
        """Description of each input (``''`` when none), e.g. ``{'resnet18': {'input': ''}}``."""
        return self._per_tensor(self._inputs, lambda t: t[1])

    @property
    def input_dtypes(self) -> Dict[str, Dict[str, hbDNNDataType]]:
        """Element type of each input, e.g. ``{'resnet18': {'input': hbDNNDataType.U8}}``."""
        return self._per_tensor(self._inputs, lambda t: t[2])

    @property
    def input_shapes(self) -> Dict[str, Dict[str, List[int]]]:
        """Shape of each input (-1 for a dimension fixed only at run time), e.g.
        ``{'resnet18': {'input': [1, 224, 224, 3]}}``."""
        return self._per_tensor(self._inputs, lambda t: list(t[3]))

    @property
    def input_strides(self) -> Dict[str, Dict[str, List[int]]]:
        """Byte strides of each input as the engine lays it out (-1 where the layout is
        decided at run time), e.g. ``{'resnet18': {'input': [150528, 672, 3, 1]}}``."""
        return self._per_tensor(self._inputs, lambda t: list(t[4]))

    @property
    def input_quants(self) -> Dict[str, Dict[str, QuantParams]]:
        """Quantization parameters of each input, e.g. ``{'resnet18': {'input':
        QuantParams(scale=[], zero_point=[], quant_type=<hbDNNQuantiType.NONE: 0>, axis=0)}}``.
        Each call returns fresh copies."""
        return self._per_tensor(self._inputs, _quant)

    @property
    def output_counts(self) -> Dict[str, int]:
        """Number of outputs of each model, e.g. ``{'resnet18': 1}``."""
        return {n: len(self._outputs[i]) for i, n in enumerate(self._names)}

    @property
    def output_names(self) -> Dict[str, List[str]]:
        """Output names of each model, in the model's order, e.g. ``{'resnet18': ['output']}``."""
        return {n: [t[0] for t in self._outputs[i]] for i, n in enumerate(self._names)}

    @property
    def output_descs(self) -> Dict[str, Dict[str, str]]:
        """Description of each output (``''`` when none), e.g. ``{'resnet18': {'output': ''}}``."""
        return self._per_tensor(self._outputs, lambda t: t[1])

    @property
    def output_dtypes(self) -> Dict[str, Dict[str, hbDNNDataType]]:
        """Element type of each output, e.g. ``{'resnet18': {'output': hbDNNDataType.F32}}``."""
        return self._per_tensor(self._outputs, lambda t: t[2])

    @property
    def output_shapes(self) -> Dict[str, Dict[str, List[int]]]:
        """Shape of each output (-1 for a dimension known only after a run), e.g.
        ``{'resnet18': {'output': [1, 1000]}}``."""
        return self._per_tensor(self._outputs, lambda t: list(t[3]))

    @property
    def output_strides(self) -> Dict[str, Dict[str, List[int]]]:
        """Byte strides of each output as run() returns it (padded on the BPU), e.g.
        ``{'resnet18': {'output': [4000, 4]}}``."""
        return self._per_tensor(self._outputs, lambda t: list(t[4]))

    @property
    def output_quants(self) -> Dict[str, Dict[str, QuantParams]]:
        """Quantization parameters of each output, e.g. ``{'yolo': {'box':
        QuantParams(scale=[0.0039], zero_point=[0], quant_type=<hbDNNQuantiType.SCALE: 1>,
        axis=0)}}``. ``params.dequantize(raw)`` turns a raw output into float32."""
        return self._per_tensor(self._outputs, _quant)

    # -- scheduling -------------------------------------------------------------------
    @property
    def sched_params(self) -> Dict[str, SchedParam]:
        """Scheduling parameters of each model, e.g. ``{'resnet18': SchedParam(priority=0,
        customId=0, bpu_cores=[-1], deviceId=0)}`` (``[-1]``: any core)."""
        out = {}
        for i in _hbm_ext._vendor_dict_order(self._names):  # the vendor package's key order
            priority, custom_id, cores, device_id = self._sched(i)
            out[self._names[i]] = SchedParam(priority=priority, customId=custom_id, bpu_cores=list(cores),
                                             deviceId=device_id)
        return out

    def set_scheduling_params(
        self,
        priority: Union[None, int, Mapping[str, int]] = None,
        bpu_cores: Union[None, int, Sequence[int], Mapping[str, Union[int, Sequence[int]]]] = None,
        custom_id: Union[None, int, Mapping[str, int]] = None,
        device_id: Union[None, int, Mapping[str, int]] = None,
    ) -> None:
        """Sets scheduling parameters. Each argument is a mapping keyed by model name, or one
        value for every model (a plain list for ``bpu_cores``), e.g.
        ``rt.set_scheduling_params(priority={'yolo': 200}, bpu_cores={'yolo': [0]})``.
        ``priority`` 0-255 (higher runs first; 254 and 255 may preempt on the BPU),
        ``bpu_cores`` core indices, or ``[-1]`` (or ``[]``) for any. Everything is validated before
        anything changes (ValueError naming the model and value)."""
        current: List[List[Any]] = [list(self._sched(i)) for i in range(len(self._names))]
        touched = set()
        fields = ((priority, 0, "priority", _as_int), (custom_id, 1, "custom_id", _as_int),
                  (bpu_cores, 2, "bpu_cores", _as_cores), (device_id, 3, "device_id", _as_int))
        for value, slot, what, convert in fields:
            if value is None:
                continue
            if isinstance(value, Mapping):
                unknown = [k for k in value if k not in self._names]
                if unknown:
                    raise InvalidArgumentError(
                        f"{what}: unknown model name(s) {unknown!r}; loaded models: {self._names!r}")
                items = [(self._names.index(k), v) for k, v in value.items()]
            else:
                items = [(i, value) for i in range(len(self._names))]
            for i, v in items:
                current[i][slot] = convert(v, f"{what} of model '{self._names[i]}'")
                touched.add(i)
        updates: List[Tuple[int, int, int, List[int], int]] = []
        for i in sorted(touched):
            prio, cid, cores, dev = current[i]
            updates.append((i, prio, cid, cores, dev))
        self._set_sched(updates)

    # -- running ----------------------------------------------------------------------
    @overload
    def run(self, input_tensors: RunInput, /, model_name: Optional[str] = None) -> RunResult: ...

    @overload
    def run(self, *, input_tensor: InputArray, model_name: Optional[str] = None) -> RunResult: ...

    @overload
    def run(self, *, input_tensors: Mapping[str, InputArray], model_name: Optional[str] = None) -> RunResult: ...

    @overload
    def run(self, *, multi_input_tensors: Mapping[str, Mapping[str, InputArray]],
            model_name: Optional[str] = None) -> RunResult: ...

    def run(self, input_tensors: Any = None, model_name: Optional[str] = None, *,
            input_tensor: Any = None, multi_input_tensors: Any = None) -> RunResult:
        """Runs inference and returns ``{model_name: {output_name: numpy.ndarray}}``.

        Three input forms, given positionally or by the keyword shown:

        - ``run(input_tensor)``: one array, for a model with one input;
        - ``run(input_tensors)``: ``{input_name: array}`` for one model;
        - ``run(multi_input_tensors)``: ``{model_name: {input_name: array}}``, each listed
          model runs (concurrently where it can).

        ``model_name`` chooses the model for the first two forms (needed when several are
        loaded) and restricts the third to that model. Arrays are numpy arrays or any DLPack
        producer (e.g. a CPU torch tensor), of the model's dtype and shape; any mapping type
        is accepted where a dict is shown. Raises ValueError when an input's name, dtype or
        shape does not match the model. The result also carries per-model ``timings``.

        Example: ``out = rt.run(image)["resnet18"]["output"]``.
        """
        if input_tensors is None or input_tensor is not None or multi_input_tensors is not None:
            input_tensors = _pick_run_input("run()", input_tensors, input_tensor, multi_input_tensors)
        return _run(self, input_tensors, model_name)  # type: ignore[return-value]

    if TYPE_CHECKING:  # the extension's input_buffers, typed for type checkers

        def input_buffers(self, model_name: Optional[str] = None) -> Dict[str, np.ndarray[Any, Any]]:  # type: ignore[override]
            ...

    def run_async(self, input_tensors: Any = None, model_name: Optional[str] = None, *,
                  input_tensor: Any = None, multi_input_tensors: Any = None) -> "concurrent.futures.Future[RunResult]":
        """Like run() (same input forms and keywords), but returns at once with a
        concurrent.futures.Future of the result (use ``asyncio.wrap_future`` in asyncio
        code). ``future.cancel()`` succeeds while none of the call's work has started, and
        takes its queued work out of the queue.

        Example: ``fut = rt.run_async(image); ...; out = fut.result()``.
        """
        if input_tensors is None or input_tensor is not None or multi_input_tensors is not None:
            input_tensors = _pick_run_input("run_async()", input_tensors, input_tensor, multi_input_tensors)
        future = _RunFuture()
        future._call = self._run_async(input_tensors, model_name, future._complete)
        return future

    def __enter__(self) -> "HB_HBMRuntime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self.closed else ""
        return f"<HB_HBMRuntime models={self._names!r}{state}>"


def _tensor_name(t: _TensorInfo) -> str:
    return t[0]


T = TypeVar("T")


def _vendor_ordered(items: Sequence[T], name: Callable[[T], str]) -> List[T]:
    """`items` in the order the vendor's package keys its dicts by `name(item)`: its
    std::unordered_map's iteration order (e.g. inputs a, b come out b, a)."""
    return [items[i] for i in _hbm_ext._vendor_dict_order([name(x) for x in items])]


def _quant(t: _TensorInfo) -> QuantParams:
    quant_type, scale, zero_point, axis = t[5]
    return QuantParams(scale=scale.copy(), zero_point=zero_point.copy(), quant_type=quant_type, axis=axis)
