"""Command line: ``python -m hbm_runtime info MODEL...`` and ``python -m hbm_runtime demo``."""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

if TYPE_CHECKING:  # for annotations; the commands import it when they run
    from ._runtime import HB_HBMRuntime

DEMO_MODEL = pathlib.Path(__file__).resolve().parent / "models" / "demo_classifier.onnx"

# hbDNNDataType name -> numpy dtype, as the vendor's examples write it.
NUMPY_DTYPES = {
    "S8": np.int8, "U8": np.uint8, "F16": np.float16, "S16": np.int16, "U16": np.uint16,
    "F32": np.float32, "S32": np.int32, "U32": np.uint32, "F64": np.float64, "S64": np.int64,
    "U64": np.uint64, "BOOL8": np.bool_, "S4": np.int8, "U4": np.uint8,
}


def _tensor_lines(rt: HB_HBMRuntime, model: str, kind: str) -> List[str]:
    names = getattr(rt, f"{kind}_names")[model]
    shapes, dtypes = getattr(rt, f"{kind}_shapes")[model], getattr(rt, f"{kind}_dtypes")[model]
    strides, quants = getattr(rt, f"{kind}_strides")[model], getattr(rt, f"{kind}_quants")[model]
    descs = getattr(rt, f"{kind}_descs")[model]
    lines = [f"  {kind}s ({len(names)}):"]
    for n in names:
        q = quants[n]
        lines.append(f"    {n}: shape={shapes[n]} dtype={dtypes[n].name} strides={strides[n]}")
        if q.quant_type != 0:
            lines.append(f"      quant: {q.quant_type.name} axis={q.axis} scale={q.scale.tolist()} "
                         f"zero_point={q.zero_point.tolist()}")
        if descs[n]:
            lines.append(f"      desc: {descs[n]}")
    return lines


def info(paths: List[str]) -> int:
    from . import HB_HBMRuntime

    rt = HB_HBMRuntime(paths if len(paths) > 1 else paths[0])
    print(f"hbm_runtime {rt.version}")
    for path, desc in rt.hbm_descs.items():
        print(f"file {path}" + (f": {desc}" if desc else ""))
    sched = rt.sched_params
    for model in rt.model_names:
        s = sched[model]
        print(f"model {model}")
        if rt.model_descs[model]:
            print(f"  desc: {rt.model_descs[model]}")
        print(f"  sched: priority={s.priority} customId={s.customId} bpu_cores={s.bpu_cores} deviceId={s.deviceId}")
        for kind in ("input", "output"):
            print("\n".join(_tensor_lines(rt, model, kind)))
    rt.close()
    return 0


def demo(model_path: Optional[str], runs: int) -> int:
    from . import HB_HBMRuntime

    path = model_path or str(DEMO_MODEL)
    with HB_HBMRuntime(path) as rt:
        model = rt.model_names[0]
        print(f"hbm_runtime {rt.version}")
        print(f"model {model} from {path}")
        rng = np.random.default_rng(0)
        inputs: Dict[str, np.ndarray[Any, Any]] = {}
        for name in rt.input_names[model]:
            shape = [d if d > 0 else 1 for d in rt.input_shapes[model][name]]
            dtype = NUMPY_DTYPES[rt.input_dtypes[model][name].name]
            inputs[name] = (rng.random(shape) * (255 if np.issubdtype(dtype, np.integer) else 1)).astype(dtype)
            print(f"  input {name}: shape={shape} dtype={np.dtype(dtype).name}")
        result = rt.run(inputs)
        for name, value in result[model].items():
            print(f"  output {name}: shape={list(value.shape)} dtype={value.dtype}")
            flat = value.reshape(-1)
            print(f"    values[:10] = {np.array2string(flat[:10], precision=4)}")
            if value.ndim == 2 and value.shape[0] == 1:
                print(f"    argmax = {int(np.argmax(flat))}")
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            rt.run(inputs)
            times.append((time.perf_counter() - t0) * 1e6)
        print(f"time per run over {runs} runs: median {statistics.median(times):.1f} us, "
              f"min {min(times):.1f} us")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hbm_runtime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="print every model's metadata")
    p_info.add_argument("models", nargs="+", help=".hbm or .onnx files (loaded together)")
    p_demo = sub.add_parser("demo", help="run the bundled demo model and time it")
    p_demo.add_argument("--model", help="run this model instead of the bundled one")
    p_demo.add_argument("--runs", type=int, default=200, help="timed runs (default 200)")
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            return info(args.models)
        return demo(args.model, args.runs)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
