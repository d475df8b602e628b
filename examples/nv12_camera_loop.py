"""Camera-style NV12 loop: frame -> NV12 planes -> run -> dequantize -> top-k, timed per stage.

What a board application does for every camera frame, with no copy between the stages:

1. take a BGR frame (synthetic frames by default, or a video file / camera through OpenCV
   with ``--source``);
2. convert it to NV12 with ``hbm_runtime.bgr_to_nv12(frame, out=(y, uv))``, written straight
   into the model's input memory: on the BPU the arrays ``input_buffers()`` returns (device
   memory with the padded rows the BPU wants, so ``run`` skips its input copy); on the host
   engine, which has no device input memory, two arrays allocated once before the loop;
3. ``run`` the model with those arrays;
4. dequantize the quantized (int8 / int16 / int32) output into a float32 array allocated
   once, with the output's own ``QuantParams.dequantize``;
5. take the top-k classes (ties: the smaller class index first).

It prints the top-k of some frames and, per stage (convert / run / dequantize / top-k), the
mean and the 90th percentile of the time over the frames, after one warm-up run.

On a PC (no ``--model``) the script builds its own NV12-input classifier with
``onnx.helper`` and runs it on the CPU: inputs ``y`` ``[1, H, W, 1]`` and ``uv``
``[1, H/2, W/2, 2]`` (uint8), output ``logits`` ``[1, 10]`` int8 made by a final
QuantizeLinear, whose scale and zero point the runtime reports in ``output_quants``.

On an RDK S100 board, pass an NV12 ``.hbm`` model of the same interface with ``--model``:
two uint8 inputs, the Y plane ``[1, H, W, 1]`` and the interleaved UV plane
``[1, H/2, W/2, 2]`` (any names, e.g. ``data_y`` / ``data_uv``), and a classifier output
(the first output is used; int8/int16/int32 with SCALE quantization, or float). The frame
size then comes from the model. That path has not been run on a board: it is exercised
only against the BPU libraries' test double of this project's test suite.

Examples::

    python examples/nv12_camera_loop.py                       # synthetic 480x640 frames
    python examples/nv12_camera_loop.py --frames 300 --size 720x1280
    python examples/nv12_camera_loop.py --source video.mp4    # or --source 0 (a camera)
    python examples/nv12_camera_loop.py --model resnet18_224x224_nv12.hbm   # on the board
    python examples/nv12_camera_loop.py --frames 5 --json     # one JSON object on stdout

Needs numpy and hbm_runtime; ``onnx`` to build the host model (not with ``--model``) and
``opencv-python`` only for ``--source``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

import hbm_runtime
from hbm_runtime import HB_HBMRuntime, hbDNNDataType

#: Classes of the host model, and the seed of its weights.
NUM_CLASSES = 10
MODEL_SEED = 2024
#: Scale and zero point of the host model's int8 output (QuantizeLinear).
OUTPUT_SCALE = 64.0
OUTPUT_ZERO_POINT = -8

STAGES = ("convert", "run", "dequantize", "topk")


# ---- the host model ----------------------------------------------------------------------------


def build_nv12_classifier(path: str, height: int, width: int, num_classes: int = NUM_CLASSES,
                          seed: int = MODEL_SEED) -> str:
    """Writes a small NV12-input classifier to ``path`` (ONNX) and returns ``path``.

    ``y`` ``[1, H, W, 1]`` and ``uv`` ``[1, H/2, W/2, 2]`` uint8 -> luma averaged 2x2 and
    stacked with U and V at half resolution, centred on 128 -> 1x1 convolution to 16
    channels, ReLU -> max over each quarter of the image (a 2x2 grid) -> 64 features ->
    linear layer -> ``logits`` ``[1, num_classes]``, quantized to int8 by QuantizeLinear
    (scale ``OUTPUT_SCALE``, zero point ``OUTPUT_ZERO_POINT``).

    The weights are small integers and the biases integers plus 1/4, so every value is
    exact in float32 and none falls on a rounding tie: any correct engine gives the same
    int8 logits. ``height`` and ``width`` must be multiples of 4.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if height % 4 or width % 4 or height <= 0 or width <= 0:
        raise ValueError(f"the host model needs a frame size in multiples of 4, got {height}x{width}")
    rng = np.random.default_rng(seed)
    channels = 16
    conv_w = rng.integers(-2, 3, size=(channels, 3, 1, 1)).astype(np.float32)
    conv_b = rng.integers(-16, 17, size=channels).astype(np.float32)
    fc_w = rng.integers(-2, 3, size=(channels * 4, num_classes)).astype(np.float32)
    fc_b = (rng.integers(-64, 65, size=num_classes) + 0.25).astype(np.float32)

    def init(name: str, value: Any) -> Any:
        return numpy_helper.from_array(np.asarray(value), name)

    h2, w2 = height // 2, width // 2
    nodes = [
        helper.make_node("Cast", ["y"], ["yf"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["yf"], ["y_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["y_nchw"], ["y_half"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Cast", ["uv"], ["uvf"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["uvf"], ["uv_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Concat", ["y_half", "uv_nchw"], ["yuv"], axis=1),
        helper.make_node("Sub", ["yuv", "centre"], ["yuv_c"]),
        helper.make_node("Conv", ["yuv_c", "conv_w", "conv_b"], ["conv"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["conv"], ["act"]),
        helper.make_node("MaxPool", ["act"], ["grid"], kernel_shape=[h2 // 2, w2 // 2],
                         strides=[h2 // 2, w2 // 2]),
        helper.make_node("Flatten", ["grid"], ["features"], axis=1),
        helper.make_node("MatMul", ["features", "fc_w"], ["mm"]),
        helper.make_node("Add", ["mm", "fc_b"], ["logits_f"]),
        helper.make_node("QuantizeLinear", ["logits_f", "out_scale", "out_zp"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "nv12_classifier",
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, height, width, 1]),
         helper.make_tensor_value_info("uv", TensorProto.UINT8, [1, h2, w2, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.INT8, [1, num_classes])],
        initializer=[
            init("centre", np.float32(128.0)), init("conv_w", conv_w), init("conv_b", conv_b),
            init("fc_w", fc_w), init("fc_b", fc_b),
            init("out_scale", np.float32(OUTPUT_SCALE)), init("out_zp", np.int8(OUTPUT_ZERO_POINT)),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              doc_string="NV12 classifier built by examples/nv12_camera_loop.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


# ---- frames ------------------------------------------------------------------------------------


def synthetic_frame(index: int, height: int, width: int) -> np.ndarray:
    """Frame ``index`` of a synthetic camera: drifting colour gradients, a coloured square
    moving across the picture and a little sensor noise; ``(height, width, 3)`` BGR uint8,
    the same for the same arguments."""
    rows = np.arange(height, dtype=np.int32)[:, None]
    cols = np.arange(width, dtype=np.int32)[None, :]
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = (cols * 255 // max(width - 1, 1) + 7 * index) % 256
    frame[..., 1] = (rows * 255 // max(height - 1, 1) + 3 * index) % 256
    frame[..., 2] = ((rows + cols) * 2 + 11 * index) % 256
    side = max(2, min(height, width) // 4)
    top = (index * max(1, height // 12)) % max(1, height - side)
    left = (index * max(1, width // 16)) % max(1, width - side)
    palette = ((255, 64, 0), (0, 255, 128), (32, 0, 255), (255, 255, 255), (0, 0, 0), (90, 200, 250))
    frame[top:top + side, left:left + side] = palette[index % len(palette)]
    noise = np.random.default_rng(index).integers(0, 6, size=frame.shape, dtype=np.uint8)
    np.add(frame, noise, out=frame, where=frame < 250)
    return frame


def open_frames(source: Optional[str], count: int, height: int, width: int) -> Iterator[np.ndarray]:
    """Up to ``count`` BGR frames of ``height`` x ``width``: synthetic ones, or read from a
    video file or camera index (``source``) with OpenCV and resized when needed."""
    if source is None:
        for i in range(count):
            yield synthetic_frame(i, height, width)
        return
    try:
        import cv2
    except ImportError:
        raise SystemExit("--source needs OpenCV: pip install opencv-python") from None
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise SystemExit(f"cannot open video source {source!r}")
    try:
        for _ in range(count):
            ok, frame = capture.read()
            if not ok:
                return
            if frame.shape[:2] != (height, width):
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            yield frame
    finally:
        capture.release()


# ---- the pipeline ------------------------------------------------------------------------------


def nv12_input_names(rt: HB_HBMRuntime, name: str) -> Tuple[str, str]:
    """The names of the Y input ``[1, H, W, 1]`` and UV input ``[1, H/2, W/2, 2]`` (uint8)
    of model ``name``; ValueError if the model does not take NV12 that way."""
    shapes, dtypes = rt.input_shapes[name], rt.input_dtypes[name]
    y = [n for n, s in shapes.items() if len(s) == 4 and s[0] == 1 and s[3] == 1]
    uv = [n for n, s in shapes.items() if len(s) == 4 and s[0] == 1 and s[3] == 2]
    if len(shapes) != 2 or len(y) != 1 or len(uv) != 1:
        raise ValueError(f"model {name!r} does not take NV12 input: its inputs are {shapes} "
                         "(expected a Y plane [1, H, W, 1] and a UV plane [1, H/2, W/2, 2])")
    ys, uvs = shapes[y[0]], shapes[uv[0]]
    if [uvs[1] * 2, uvs[2] * 2] != ys[1:3] or ys[1] <= 0 or ys[2] <= 0:
        raise ValueError(f"model {name!r}: UV plane {uvs} is not half of the Y plane {ys}")
    for n in (y[0], uv[0]):
        if dtypes[n] != hbDNNDataType.U8:
            raise ValueError(f"model {name!r}: input {n!r} is {dtypes[n].name}, expected U8")
    return y[0], uv[0]


def input_planes(rt: HB_HBMRuntime, name: str) -> Tuple[Dict[str, np.ndarray], bool]:
    """``({input_name: array}, on_device)``: the arrays to write each frame's planes into.

    BPU models: the model's own input memory (``input_buffers``). The host engine has none
    (``input_buffers`` raises ValueError there): two C-contiguous arrays allocated once.
    """
    try:
        return rt.input_buffers(name), True
    except ValueError:
        shapes = rt.input_shapes[name]
        return {n: np.zeros(shapes[n], np.uint8) for n in rt.input_names[name]}, False


def convert_frame(frame: np.ndarray, planes: Dict[str, np.ndarray], y_name: str, uv_name: str) -> None:
    """Writes ``frame``'s NV12 planes into ``planes[y_name]`` and ``planes[uv_name]``, in place."""
    hbm_runtime.bgr_to_nv12(frame, out=(planes[y_name], planes[uv_name]))


def top_k(scores: np.ndarray, k: int) -> List[Tuple[int, float]]:
    """The ``k`` highest scores as ``(class_index, score)``, best first; equal scores in
    class order."""
    flat = scores.reshape(-1)
    order = np.argsort(-flat, kind="stable")[:k]
    return [(int(i), float(flat[i])) for i in order]


def summarize(samples: List[float]) -> Dict[str, float]:
    a = np.asarray(samples, dtype=np.float64) * 1e3
    return {"mean_ms": float(a.mean()), "p90_ms": float(np.percentile(a, 90))}


def run_loop(model_path: str, frames: int, size: Optional[Tuple[int, int]], source: Optional[str],
             k: int) -> Dict[str, Any]:
    """Runs the loop and returns what it measured and found (the ``--json`` object)."""
    with HB_HBMRuntime(model_path) as rt:
        name = rt.model_names[0]
        y_name, uv_name = nv12_input_names(rt, name)
        height, width = rt.input_shapes[name][y_name][1:3]
        if size is not None and size != (height, width):
            raise SystemExit(f"--size {size[0]}x{size[1]} differs from the model's input "
                             f"{height}x{width}")
        out_name = rt.output_names[name][0]
        quant = rt.output_quants[name][out_name]
        planes, on_device = input_planes(rt, name)
        rt.run(planes, name)  # warm-up: first-run set-up is not part of the timings
        scores: Optional[np.ndarray] = None
        times: Dict[str, List[float]] = {s: [] for s in STAGES}
        results = []
        clock = time.perf_counter
        for index, frame in enumerate(open_frames(source, frames, height, width)):
            t0 = clock()
            convert_frame(frame, planes, y_name, uv_name)
            t1 = clock()
            raw = rt.run(planes, name)[name][out_name]
            t2 = clock()
            if scores is None or scores.shape != raw.shape:
                scores = np.empty(raw.shape, np.float32)
            quant.dequantize(raw, out=scores)
            t3 = clock()
            best = top_k(scores, k)
            t4 = clock()
            for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[stage].append(dt)
            results.append({"frame": index, "topk": [[i, s] for i, s in best]})
        return {
            "model": name,
            "inputs": {"y": y_name, "uv": uv_name},
            "output": out_name,
            "output_dtype": rt.output_dtypes[name][out_name].name,
            "quant": {"type": quant.quant_type.name, "scale": quant.scale.tolist(),
                      "zero_point": quant.zero_point.tolist()},
            "height": height,
            "width": width,
            "input_memory": "device (input_buffers)" if on_device else "host arrays",
            "frames": len(results),
            "results": results,
            "timings": {s: summarize(times[s]) for s in STAGES} if results else {},
        }


def print_report(report: Dict[str, Any], k: int) -> None:
    print(f"model {report['model']} ({report['height']}x{report['width']} NV12, output "
          f"{report['output']} {report['output_dtype']}, quant {report['quant']['type']}), "
          f"inputs written into {report['input_memory']}, {report['frames']} frames")
    results = report["results"]
    step = max(1, len(results) // 10)
    for r in results:
        if r["frame"] % step == 0 or r is results[-1]:
            best = "  ".join(f"{i}:{s:.4g}" for i, s in r["topk"])
            print(f"frame {r['frame']:5d}  top-{k}  {best}")
    if report["timings"]:
        print(f"{'stage':<11}{'mean ms':>10}{'p90 ms':>10}")
        for stage, t in report["timings"].items():
            print(f"{stage:<11}{t['mean_ms']:>10.3f}{t['p90_ms']:>10.3f}")


def parse_size(text: str) -> Tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 480x640, got {text!r}") from None
    if h <= 0 or w <= 0 or h % 2 or w % 2:
        raise argparse.ArgumentTypeError(f"height and width must be even and > 0, got {text!r}")
    return h, w


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100, help="frames to process (default 100)")
    parser.add_argument("--size", type=parse_size, default=None,
                        help="HxW of the host model's frames (default 480x640; multiples of 4); "
                             "with --model it must match the model")
    parser.add_argument("--model", help="an NV12 .hbm (board) or .onnx model to run instead of "
                                        "the host model this script builds")
    parser.add_argument("--source", help="video file or camera index to read frames from (OpenCV)")
    parser.add_argument("--topk", type=int, default=5, help="classes to report (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.topk < 1:
        parser.error("--frames and --topk must be >= 1")

    with tempfile.TemporaryDirectory(prefix="nv12_loop_") as tmp:
        model_path = args.model
        if model_path is None:
            height, width = args.size or (480, 640)
            if height % 4 or width % 4:
                parser.error(f"--size: the host model needs multiples of 4, got {height}x{width}")
            model_path = build_nv12_classifier(os.path.join(tmp, "nv12_classifier.onnx"), height, width)
        report = run_loop(model_path, args.frames, args.size, args.source, args.topk)
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        print_report(report, args.topk)
    return 0


if __name__ == "__main__":
    sys.exit(main())
