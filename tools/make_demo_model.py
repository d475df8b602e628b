"""Generates the demo model shipped in the package (src/hbm_runtime/models/demo_classifier.onnx).

A tiny seeded CNN classifier: image [1, 3, 32, 32] float32 -> probs [1, 10] float32.
Run: python tools/make_demo_model.py
"""

from __future__ import annotations

import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = pathlib.Path(__file__).resolve().parents[1] / "src" / "hbm_runtime" / "models" / "demo_classifier.onnx"


def build() -> onnx.ModelProto:
    rng = np.random.default_rng(20261125)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32), name)

    inits = [
        weight("conv1_w", 8, 3, 3, 3), numpy_helper.from_array(np.zeros(8, np.float32), "conv1_b"),
        weight("conv2_w", 16, 8, 3, 3), numpy_helper.from_array(np.zeros(16, np.float32), "conv2_b"),
        weight("fc_w", 16, 10), numpy_helper.from_array(np.zeros(10, np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv1_w", "conv1_b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2_w", "conv2_b"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])
    image.doc_string = "RGB image, float32, NCHW, values in [0, 1]"
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])
    probs.doc_string = "class probabilities"
    graph = helper.make_graph(nodes, "demo_classifier", [image], [probs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              doc_string="hbm_runtime demo: a tiny seeded CNN classifier (10 classes)")
    model.ir_version = 8
    helper.set_model_props(model, {"author": "hbm_runtime", "purpose": "demo"})
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build(), OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
