"""A user script touching the whole public API of hbm_runtime.

tests/test_packaging.py type-checks it with ``mypy --strict`` against the installed package
(stubs of the extension + py.typed) and runs it on the bundled demo model:
``python tests/typing/sample_usage.py [MODEL.onnx|MODEL.hbm]``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import pathlib
import pickle
import sys
import types
from typing import Any, Dict, List

import numpy as np
import numpy.typing as npt

import hbm_runtime
from hbm_runtime import (
    EngineUnavailableError,
    HB_HBMRuntime,
    HBMRuntimeError,
    QuantParams,
    RunResult,
    RuntimeClosedError,
    SchedParam,
    hbDNNDataType,
    hbDNNQuantiType,
    host_cores,
    set_host_cores,
)

NUMPY_DTYPES: Dict[hbDNNDataType, npt.DTypeLike] = {
    hbDNNDataType.U8: np.uint8,
    hbDNNDataType.S8: np.int8,
    hbDNNDataType.F16: np.float16,
    hbDNNDataType.F32: np.float32,
    hbDNNDataType.S32: np.int32,
}


def demo_model() -> pathlib.Path:
    return pathlib.Path(hbm_runtime.__file__).parent / "models" / "demo_classifier.onnx"


def describe(model: HB_HBMRuntime) -> None:
    version: str = HB_HBMRuntime.version
    called: str = HB_HBMRuntime.version()
    print(version, called, model.version, hbm_runtime.__version__)
    count: int = model.model_count
    names: List[str] = model.model_names
    print(count, names, model.model_descs, model.hbm_descs, model.engine_versions)
    for name in names:
        in_counts: int = model.input_counts[name]
        out_counts: int = model.output_counts[name]
        print(name, in_counts, out_counts)
        for kind_names, shapes, dtypes, strides, quants, descs in (
            (model.input_names, model.input_shapes, model.input_dtypes, model.input_strides,
             model.input_quants, model.input_descs),
            (model.output_names, model.output_shapes, model.output_dtypes, model.output_strides,
             model.output_quants, model.output_descs),
        ):
            for tensor in kind_names[name]:
                shape: List[int] = shapes[name][tensor]
                dtype: hbDNNDataType = dtypes[name][tensor]
                stride: List[int] = strides[name][tensor]
                quant: QuantParams = quants[name][tensor]
                desc: str = descs[name][tensor]
                scale: npt.NDArray[np.float32] = quant.scale
                zero_point: npt.NDArray[np.int32] = quant.zero_point
                quant_type: hbDNNQuantiType = quant.quant_type
                axis: int = quant.axis
                print(tensor, shape, dtype.name, int(dtype.value), stride, desc,
                      scale.tolist(), zero_point.tolist(), quant_type == hbDNNQuantiType.NONE, axis)


def make_inputs(model: HB_HBMRuntime, name: str) -> Dict[str, npt.NDArray[np.generic]]:
    rng = np.random.default_rng(0)
    inputs: Dict[str, npt.NDArray[np.generic]] = {}
    for tensor in model.input_names[name]:
        shape = [d if d > 0 else 1 for d in model.input_shapes[name][tensor]]
        dtype = NUMPY_DTYPES.get(model.input_dtypes[name][tensor], np.float32)
        inputs[tensor] = rng.random(shape).astype(dtype)
    return inputs


def run_all_forms(model: HB_HBMRuntime) -> None:
    name = model.model_names[0]
    inputs = make_inputs(model, name)

    # 1. one array (single-input models)
    if model.input_counts[name] == 1:
        single: RunResult = model.run(next(iter(inputs.values())))
        print(sorted(single[name]))
    # 2. {input_name: array}
    by_input = model.run(inputs, model_name=name)
    # 3. {model_name: {input_name: array}}
    by_model = model.run({name: inputs})
    for output, array in by_model[name].items():
        same: bool = bool(np.allclose(array, by_input[name][output]))
        print(output, array.shape, array.dtype, same)
    # the same forms by the vendor's keyword names, inputs in any mapping type
    if model.input_counts[name] == 1:
        print(sorted(model.run(input_tensor=next(iter(inputs.values())))[name]))
    kw_inputs: RunResult = model.run(input_tensors=types.MappingProxyType(inputs), model_name=name)
    kw_multi: RunResult = model.run(multi_input_tensors={name: inputs})
    print(sorted(kw_inputs[name]) == sorted(kw_multi[name]))
    timings: Dict[str, Dict[str, float]] = by_model.timings
    print(timings[name]["infer_us"], timings[name]["core"])

    future: concurrent.futures.Future[RunResult] = model.run_async({name: inputs})
    print(sorted(future.result(timeout=60)[name]))

    async def in_asyncio() -> RunResult:
        return await asyncio.wrap_future(model.run_async(inputs, model_name=name))

    print(sorted(asyncio.run(in_asyncio())))


def zero_copy_inputs(model: HB_HBMRuntime) -> None:
    """input_buffers(): .hbm models only (the host engine has no device memory)."""
    name = model.model_names[0]
    try:
        buffers: Dict[str, npt.NDArray[Any]] = model.input_buffers(name)
    except ValueError as e:
        print(f"no device input memory: {e}")
        return
    for input_name, buffer in buffers.items():
        buffer[...] = 0
        print(input_name, buffer.shape, buffer.strides)
    print(sorted(model.run({name: buffers})[name]))


def scheduling(model: HB_HBMRuntime) -> None:
    name = model.model_names[0]
    model.set_scheduling_params(priority={name: 200}, bpu_cores={name: [0, 1]})
    model.set_scheduling_params(priority=10, custom_id=1, bpu_cores=[-1], device_id=0)
    model.set_scheduling_params(custom_id={name: 2}, device_id={name: 0})
    params: SchedParam = model.sched_params[name]
    print(params.priority, params.customId, params.bpu_cores, params.deviceId)

    wanted = SchedParam()
    wanted.priority = {name: 100}
    wanted.customId = 3
    wanted.bpu_cores = {name: [0]}
    wanted.deviceId = 0
    same = SchedParam(priority=5, customId=0, bpu_cores=[-1], deviceId=0) == SchedParam(priority=5)
    print(wanted, same, pickle.loads(pickle.dumps(wanted)) == wanted)

    cores: int = host_cores()
    set_host_cores(cores)


def quant_params() -> None:
    q = QuantParams(scale=[0.5], zero_point=[1], quant_type=hbDNNQuantiType.SCALE, axis=0)
    print(repr(q), q == QuantParams(scale=np.array([0.5], np.float32), zero_point=[1], quant_type=1))
    print(repr(hbDNNDataType.F32), str(hbDNNDataType.U8), hbDNNDataType(7) == 7, list(hbDNNQuantiType))


def main(path: str) -> int:
    try:
        model = HB_HBMRuntime(path)
    except EngineUnavailableError as e:
        print(f"engine unavailable: {e}")
        return 2
    except HBMRuntimeError as e:
        print(f"engine error {e.code}: {e.description}")
        return 1
    describe(model)
    run_all_forms(model)
    zero_copy_inputs(model)
    scheduling(model)
    quant_params()
    inputs = make_inputs(model, model.model_names[0])
    model.close()
    closed: bool = model.closed
    try:
        model.run(inputs)
    except RuntimeClosedError as e:
        print(closed, e)

    with HB_HBMRuntime([path]) as again:
        print(repr(again))
    print(again.closed)
    # the vendor's keyword and module spellings
    from hbm_runtime.HB_HBMRuntime import HB_HBMRuntime as VendorPath, QuantParams as VendorQuant

    with VendorPath(model_files=[path]) as by_keyword, VendorPath(model_file=path) as single_keyword:
        print(by_keyword.model_names == single_keyword.model_names, VendorQuant is QuantParams)
    try:
        HB_HBMRuntime(path + ".missing")
    except FileNotFoundError as e:
        print(e.filename)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(demo_model())))
