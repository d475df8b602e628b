"""The vendor manual's yolov5x NV12 / lanenet examples, run through the UCP test double:
the metadata it prints, its example code, and exact outputs read through padded strides."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from hbm_runtime import HB_HBMRuntime, QuantParams, SchedParam, hbDNNDataType, hbDNNQuantiType
from ucp_support import (YOLO, YOLO_FILE, assert_outputs_equal, expected_outputs, hbm_runtime_factory,  # noqa: F401
                         model_file, parse_model_file, python_env, random_inputs, run_python, ucp, ucp_double,
                         yolo_inputs)

YOLO_DEF = parse_model_file(YOLO_FILE).models[YOLO]
SQUARE = parse_model_file(model_file("square_nv12.hbm")).models["m_square"]

# What the manual prints for yolov5x_672x672_nv12.hbm.
SEED_INPUT_NAMES = ["data_y", "data_uv"]
SEED_INPUT_SHAPES = {"data_uv": [1, 336, 336, 2], "data_y": [1, 672, 672, 1]}
SEED_INPUT_STRIDES = {"data_uv": [-1, -1, 2, 1], "data_y": [-1, -1, 1, 1]}
SEED_OUTPUT_NAMES = ["output", "1310", "1312"]
SEED_OUTPUT_SHAPES = {"1310": [1, 42, 42, 255], "1312": [1, 21, 21, 255], "output": [1, 84, 84, 255]}
SEED_OUTPUT_STRIDES = {"1310": [1806336, 43008, 1024, 4], "1312": [451584, 21504, 1024, 4],
                       "output": [7225344, 86016, 1024, 4]}

# The manual's example code (single model, several inputs).
hb_dtype_map = {
    "U8": np.uint8,
    "S8": np.int8,
    "F32": np.float32,
    "F16": np.float16,
    "U16": np.uint16,
    "S16": np.int16,
    "S32": np.int32,
    "U32": np.uint32,
    "BOOL8": np.bool_,
}


@pytest.fixture
def yolo_path(ucp):
    return str(YOLO_FILE)


def test_metadata_equals_the_manuals_printed_values(hbm_runtime_factory, yolo_path):
    model = hbm_runtime_factory(yolo_path)
    name = YOLO
    assert model.model_names == [name]
    assert model.model_count == 1
    assert model.input_counts == {name: 2}
    assert model.output_counts == {name: 3}
    assert model.input_names == {name: SEED_INPUT_NAMES}
    assert model.output_names == {name: SEED_OUTPUT_NAMES}
    assert model.input_shapes == {name: SEED_INPUT_SHAPES}
    assert model.output_shapes == {name: SEED_OUTPUT_SHAPES}
    assert model.input_strides == {name: SEED_INPUT_STRIDES}
    assert model.output_strides == {name: SEED_OUTPUT_STRIDES}
    # The printed dicts' order, as the manual prints them ('data_uv' before 'data_y'; '1310',
    # '1312', 'output'); the name lists keep the model's order.
    assert list(model.input_shapes[name]) == ["data_uv", "data_y"]
    assert list(model.output_strides[name]) == ["1310", "1312", "output"]
    assert model.input_dtypes == {name: {"data_y": hbDNNDataType.U8, "data_uv": hbDNNDataType.U8}}
    assert model.output_dtypes == {name: {o: hbDNNDataType.S32 for o in SEED_OUTPUT_NAMES}}
    assert repr(model.input_dtypes[name]["data_uv"]) == "<hbDNNDataType.U8: 3>"
    assert repr(model.output_dtypes[name]["1310"]) == "<hbDNNDataType.S32: 8>"

    # Descriptions: the file's own text (the manual prints 'xxx' placeholders).
    file_def = parse_model_file(YOLO_FILE)
    assert model.model_descs == {name: YOLO_DEF.desc}
    assert model.hbm_descs == {yolo_path: file_def.desc}
    assert model.input_descs == {name: {t.name: t.desc for t in YOLO_DEF.inputs}}
    assert model.output_descs == {name: {t.name: t.desc for t in YOLO_DEF.outputs}}
    assert all(model.output_descs[name].values()) and all(model.input_descs[name].values())

    # Quantization: SCALE on the outputs, with the file's scales (as float32) and axis.
    for t in YOLO_DEF.outputs:
        q = model.output_quants[name][t.name]
        assert isinstance(q, QuantParams)
        assert q.quant_type == hbDNNQuantiType.SCALE
        assert q.axis == t.axis == 3
        assert q.scale.dtype == np.float32
        np.testing.assert_array_equal(q.scale, np.array(t.scale, dtype=np.float32))
        assert q.zero_point.size == 0
    assert model.output_quants[name]["output"].scale.size == 255
    np.testing.assert_array_equal(model.output_quants[name]["output"].scale,
                                  (np.arange(255, dtype=np.float32) + 1) / np.float32(4096))
    for n in SEED_INPUT_NAMES:
        q = model.input_quants[name][n]
        assert q.quant_type == hbDNNQuantiType.NONE and q.scale.size == 0 and q.zero_point.size == 0

    assert model.sched_params == {name: SchedParam(priority=0, customId=0, bpu_cores=[-1], deviceId=0)}


def test_hbm_descs_key_is_the_path_as_given(hbm_runtime_factory, ucp, monkeypatch):
    monkeypatch.chdir(Path(YOLO_FILE).parent.parent)
    relative = "models/second.hbm"
    model = hbm_runtime_factory([relative, Path(model_file("multi.hbm"))])
    assert model.hbm_descs == {relative: "second test file",
                               model_file("multi.hbm"): "multi-model test file\nsecond line"}


def test_manual_multi_input_example_code(hbm_runtime_factory, yolo_path, ucp):
    model = hbm_runtime_factory(yolo_path)

    # ---- the manual's code, verbatim but for the path ----
    model_name = model.model_names[0]
    input_names = model.input_names[model_name]
    input_shapes = model.input_shapes[model_name]
    input_dtypes = model.input_dtypes[model_name]
    input_tensors = {}
    for name in input_names:
        shape = input_shapes[name]
        np_dtype = hb_dtype_map.get(input_dtypes[name].name, np.float32)  # fallback
        input_tensors[name] = np.ones(shape, dtype=np_dtype)
    priority = {model_name: 5}
    bpu_cores = {model_name: [0]}
    model.set_scheduling_params(priority=priority, bpu_cores=bpu_cores)
    results = model.run(input_tensors)
    shapes = {output_name: output_data.shape for output_name, output_data in results[model_name].items()}
    # ---- end of the manual's code ----

    assert shapes == {o: tuple(s) for o, s in SEED_OUTPUT_SHAPES.items()}
    assert list(results) == [YOLO]
    outs = results[YOLO]
    assert list(outs) == ["1310", "1312", "output"]
    for o, arr in outs.items():
        # Zero-copy padded views: the library's byte strides, not a dense copy.
        assert arr.strides == tuple(SEED_OUTPUT_STRIDES[o]), o
        assert arr.dtype == np.int32
        assert not arr.flags.c_contiguous
    # ones: output = y + uv = 2, 1310 = uv = 1, 1312 = y - 128 = -127.
    assert np.all(outs["output"] == 2)
    assert np.all(outs["1310"] == 1)
    assert np.all(outs["1312"] == -127)
    assert_outputs_equal(outs, expected_outputs(YOLO_DEF, input_tensors), "manual example")

    assert model.sched_params[YOLO] == SchedParam(priority=5, customId=0, bpu_cores=[0], deviceId=0)
    submits = ucp.events("submit")
    assert len(submits) == 1
    assert submits[0].int("priority") == 5 and submits[0].int("backend") == 0x1


def test_random_nv12_inputs_read_through_strides(hbm_runtime_factory, yolo_path, ucp):
    model = hbm_runtime_factory(yolo_path)
    feeds = yolo_inputs(seed=7)
    res = model.run(feeds)
    outs = res[YOLO]
    for o, arr in outs.items():
        assert arr.strides == tuple(SEED_OUTPUT_STRIDES[o])
    assert_outputs_equal(outs, expected_outputs(YOLO_DEF, feeds), "random NV12 inputs")
    # Spot checks straight from the model file's ops (an input of N elements read at k mod N).
    y, uv = feeds["data_y"].reshape(-1).astype(np.int64), feeds["data_uv"].reshape(-1).astype(np.int64)
    out = outs["output"]
    for k in (0, 254, 255, 451583, 451584, 1799279):
        idx = np.unravel_index(k, out.shape)
        assert out[idx] == y[k % y.size] + uv[k % uv.size]
    assert outs["1312"][0, 20, 20, 254] == y[112454] - 128
    assert outs["1310"][0, 41, 41, 254] == uv[449819 % uv.size]


def test_manual_single_input_and_multi_model_examples(hbm_runtime_factory, yolo_path, ucp):
    lanenet_path = model_file("lanenet256x512.hbm")
    # Single model, single input.
    model = hbm_runtime_factory(lanenet_path)
    model_name = model.model_names[0]
    input_name = model.input_names[model_name][0]
    input_shape = model.input_shapes[model_name][input_name]
    input_tensor = np.ones(input_shape, dtype=np.float32)
    outputs = model.run(input_tensor)
    output_array = outputs[model_name]
    assert set(output_array) == {"instance_seg", "binary_seg"}
    assert np.all(output_array["instance_seg"] == 2.0)
    assert np.all(output_array["binary_seg"] == 512.0)
    assert [(s.int("priority"), s.int("backend")) for s in ucp.events("submit")] == [(0, 0x80)]

    # Several models, each with its inputs (the manual's multi-model example).
    model = hbm_runtime_factory([lanenet_path, yolo_path])
    assert model.model_names == ["lanenet256x512", YOLO]
    multi_input_tensors = {}
    for model_name in model.model_names:
        model_inputs = {}
        for input_name in model.input_names[model_name]:
            shape = model.input_shapes[model_name][input_name]
            dtype_enum = model.input_dtypes[model_name][input_name]
            np_dtype = hb_dtype_map.get(dtype_enum.name, np.float32)
            model_inputs[input_name] = np.ones(shape, dtype=np_dtype)
        multi_input_tensors[model_name] = model_inputs
    priority = {name: 5 for name in model.model_names}
    bpu_cores = {name: [0] for name in model.model_names}
    model.set_scheduling_params(priority=priority, bpu_cores=bpu_cores)
    results = model.run(multi_input_tensors)

    assert list(results) == ["lanenet256x512", YOLO]
    lane_def = parse_model_file(lanenet_path).models["lanenet256x512"]
    assert_outputs_equal(results["lanenet256x512"], expected_outputs(lane_def, multi_input_tensors["lanenet256x512"]))
    assert_outputs_equal(results[YOLO], expected_outputs(YOLO_DEF, multi_input_tensors[YOLO]))
    submits = ucp.events("submit")[1:]
    assert [(s.int("priority"), s.int("backend")) for s in submits] == [(5, 0x1), (5, 0x1)]
    assert model.hbm_descs == {lanenet_path: parse_model_file(lanenet_path).desc,
                               yolo_path: parse_model_file(YOLO_FILE).desc}


def test_version_names_both_libraries(hbm_runtime_factory, ucp):
    model = hbm_runtime_factory(model_file("second.hbm"))
    dnn = ctypes.CDLL(str(ucp.lib_dir / "libdnn.so"))
    dnn.hbDNNGetVersion.restype = ctypes.c_char_p
    ucp.lib.hbUCPGetVersion.restype = ctypes.c_char_p
    dnn_version = dnn.hbDNNGetVersion().decode()
    ucp_version = ucp.lib.hbUCPGetVersion().decode()
    assert model.engine_versions["ucp"]
    assert dnn_version in model.engine_versions["ucp"] and ucp_version in model.engine_versions["ucp"]
    # `version` itself is libdnn's string unchanged, as the vendor's package returns it.
    for v in (model.version, HB_HBMRuntime.version, HB_HBMRuntime.version()):
        assert isinstance(v, str)
        assert v == dnn_version


def test_descriptions_that_are_not_utf8_do_not_break_metadata(hbm_runtime_factory, ucp, tmp_path):
    # A model's remark in GBK, or a binary desc: undecodable bytes become U+FFFD.
    text = Path(model_file("square_nv12.hbm")).read_bytes()
    text = text.replace(b"model_desc square NV12 planes", "model_desc 车道线 v2 ".encode("gbk") + b"\xff\xfe")
    text = text.replace(b"desc Y plane", b"desc caf\xe9 Y")
    text = text.replace(b"file_desc square NV12 test file", "file_desc 测试".encode("utf-8"))
    path = tmp_path / "gbk.hbm"
    path.write_bytes(text)
    model = hbm_runtime_factory(str(path))
    want_model_desc = ("车道线 v2 ".encode("gbk") + b"\xff\xfe").decode("utf-8", "replace")
    assert "\ufffd" in want_model_desc
    assert model.model_descs == {"m_square": want_model_desc}
    assert model.input_descs["m_square"] == {"y": "caf\ufffd Y", "uv": "UV plane"}
    assert model.hbm_descs == {str(path): "测试"}  # valid UTF-8 stays as it is
    feeds = random_inputs(SQUARE, 1)
    assert_outputs_equal(model.run(feeds)["m_square"], expected_outputs(SQUARE, feeds))


def test_class_version_is_libdnns_before_any_model_is_loaded(ucp_double):
    # The manual prints HB_HBMRuntime.version on its own; on the board that is libdnn's
    # version string, unchanged (the vendor's package returns hbDNNGetVersion()). OpenVINO, a
    # host engine, is not loaded for it; the package's own version stays in __version__.
    code = """
import ctypes, os, sys
import hbm_runtime
from hbm_runtime import HB_HBMRuntime
v = HB_HBMRuntime.version
dnn = ctypes.CDLL(os.path.join(os.environ["HBM_UCP_LIB_DIR"], "libdnn.so"))
dnn.hbDNNGetVersion.restype = ctypes.c_char_p
assert v == dnn.hbDNNGetVersion().decode(), v
assert HB_HBMRuntime.version() == v
assert hbm_runtime.__version__ not in v, v
with open("/proc/self/maps") as f:
    assert "libopenvino" not in f.read()
print(v)
"""
    with_libs = run_python(code, python_env(ucp_double.lib_dir)).stdout
    assert "test double" in with_libs, with_libs
    bare = run_python("from hbm_runtime import HB_HBMRuntime, __version__\n"
                      "assert HB_HBMRuntime.version == __version__, HB_HBMRuntime.version",
                      python_env(lib_dir="/nonexistent"))
    assert bare.returncode == 0
