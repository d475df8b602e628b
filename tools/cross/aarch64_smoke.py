"""Smoke test of an installed hbm_runtime wheel on the target (aarch64, under qemu-user).

Run by tools/cross/build_aarch64.sh inside the arm64 root, one stage per call:
  python aarch64_smoke.py basic                 import, version, enums, scheduler
  python aarch64_smoke.py no-openvino           .onnx without OpenVINO: EngineUnavailableError
  python aarch64_smoke.py openvino MODEL.onnx OUT.npz
                                                a host-engine run; inputs and outputs saved
                                                for a reference run on the build machine
  python aarch64_smoke.py ucp MODEL.hbm         a .hbm load + run through the UCP test
                                                 double ($HBM_UCP_LIB_DIR)
Prints what it checked; exits non-zero on the first failure.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import time

import numpy as np

import hbm_runtime
from hbm_runtime import EngineUnavailableError, HB_HBMRuntime, hbDNNDataType, hbDNNQuantiType

NUMPY = {hbDNNDataType.F32: np.float32, hbDNNDataType.U8: np.uint8, hbDNNDataType.S8: np.int8,
         hbDNNDataType.F16: np.float16, hbDNNDataType.S32: np.int32}


def check(ok: object, what: str) -> None:
    if not ok:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def random_inputs(rt: HB_HBMRuntime, model: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    out = {}
    for name in rt.input_names[model]:
        shape = [d if d > 0 else 1 for d in rt.input_shapes[model][name]]
        out[name] = rng.random(shape).astype(NUMPY[rt.input_dtypes[model][name]])
    return out


def basic() -> None:
    check(platform.machine() == "aarch64", f"running on {platform.machine()}")
    check(hbm_runtime.__file__.startswith(sys.prefix), f"imported from the venv: {hbm_runtime.__file__}")
    check(hbm_runtime._hbm_ext.__file__.endswith(".abi3.so"), os.path.basename(hbm_runtime._hbm_ext.__file__))
    check(HB_HBMRuntime.version.split(" ")[0] == hbm_runtime.__version__, f"version {HB_HBMRuntime.version}")
    check(int(hbDNNDataType.F32) == 7 and hbDNNDataType.MAX == 14, "hbDNNDataType values")
    check(repr(hbDNNDataType.U8) == "<hbDNNDataType.U8: 3>", repr(hbDNNDataType.U8))
    check(str(hbDNNDataType.F32) == "hbDNNDataType.F32", str(hbDNNDataType.F32))
    check(hbDNNQuantiType.SCALE == 1 and hbDNNQuantiType.NONE.name == "NONE", "hbDNNQuantiType values")
    before = hbm_runtime.host_cores()
    hbm_runtime.set_host_cores(3)
    check(hbm_runtime.host_cores() == 3, f"set_host_cores(3) (was {before})")
    hbm_runtime.set_host_cores(before)
    try:
        hbm_runtime.set_host_cores(0)
    except ValueError as e:
        check(True, f"set_host_cores(0) -> ValueError: {e}")
    else:
        check(False, "set_host_cores(0) must raise ValueError")
    check(hbm_runtime._hbm_ext._engine_versions() == [], "import loaded no engine")


def no_openvino(model: str) -> None:
    check(importlib.util.find_spec("openvino") is None, "openvino is not installed")
    try:
        HB_HBMRuntime(model)
    except EngineUnavailableError as e:
        msg = str(e)
        print(f"  message: {msg}")
        check("openvino" in msg.lower() and "HBM_OPENVINO_LIB_DIR" in msg,
              "EngineUnavailableError names what to install and the environment variable")
    else:
        check(False, "loading an .onnx model without OpenVINO must raise EngineUnavailableError")


def run_openvino(model_path: str, save: str) -> None:
    with HB_HBMRuntime(model_path) as rt:
        model = rt.model_names[0]
        print(f"  engines: {rt.engine_versions}")
        x = random_inputs(rt, model)
        t0 = time.perf_counter()
        out = rt.run(x)
        print(f"  first run {1e3 * (time.perf_counter() - t0):.1f} ms (qemu)")
        for name, value in out[model].items():
            check(np.all(np.isfinite(value)), f"output {name} {value.shape} {value.dtype} finite")
        again = rt.run_async(x).result(timeout=300)
        for name, value in out[model].items():
            check(np.array_equal(again[model][name], value), f"run_async output {name} equals run")
        # The reference (onnxruntime) is computed on the build machine: under qemu-user
        # onnxruntime's aarch64 build crashes at import.
        np.savez(save, **{f"in:{k}": v for k, v in x.items()}, **{f"out:{k}": v for k, v in out[model].items()})
        print(f"  inputs and outputs saved to {save}")


def run_ucp(model_path: str) -> None:
    check(os.environ.get("HBM_UCP_LIB_DIR"), f"HBM_UCP_LIB_DIR={os.environ.get('HBM_UCP_LIB_DIR')}")
    with HB_HBMRuntime(model_path) as rt:
        model = rt.model_names[0]
        print(f"  engines: {rt.engine_versions}")
        print(f"  inputs {rt.input_shapes[model]}, outputs {rt.output_shapes[model]}")
        x = random_inputs(rt, model)
        out = rt.run(x)
        check(sorted(out[model]) == sorted(rt.output_names[model]), f"outputs {sorted(out[model])}")
        # The double's lanenet model: instance_seg[k] = 2 * input[k mod N].
        if "instance_seg" in out[model] and len(x) == 1:
            flat_in = next(iter(x.values())).reshape(-1)
            flat_out = np.ascontiguousarray(out[model]["instance_seg"]).reshape(-1)
            expect = 2 * flat_in[np.arange(flat_out.size) % flat_in.size]
            check(np.allclose(flat_out, expect), "instance_seg == 2 * input (the double's op)")


def main(argv: list[str]) -> int:
    stage = argv[1] if len(argv) > 1 else "basic"
    if stage == "basic":
        basic()
    elif stage == "no-openvino":
        no_openvino(argv[2])
    elif stage == "openvino":
        run_openvino(argv[2], argv[3])
    elif stage == "ucp":
        run_ucp(argv[2])
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
