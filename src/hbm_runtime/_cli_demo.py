"""``demo``: runs the bundled demo model (or another one), prints its outputs and times it."""

from __future__ import annotations

import pathlib
import statistics
import time
from typing import Any, Dict, List, Optional

import numpy as np

from ._cli_common import NUMPY_DTYPES, open_runtime

DEMO_MODEL = pathlib.Path(__file__).resolve().parent / "models" / "demo_classifier.onnx"


def demo(model_path: Optional[str], runs: int) -> int:
    """Runs the model once on seeded random inputs, prints the outputs, then times ``runs``
    runs; returns the exit status."""
    path = model_path or str(DEMO_MODEL)
    with open_runtime([path]) as rt:
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
        times: List[float] = []
        for _ in range(runs):
            t0 = time.perf_counter()
            rt.run(inputs)
            times.append((time.perf_counter() - t0) * 1e6)
        print(f"time per run over {runs} runs: median {statistics.median(times):.1f} us, "
              f"min {min(times):.1f} us")
    return 0
