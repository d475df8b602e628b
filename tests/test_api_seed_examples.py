"""Every example of the vendor's Python API manual (the seed), run on generated .onnx files
instead of /opt/hobot/... .hbm files, with its printed output and its results checked."""

from __future__ import annotations

import numpy as np
import pytest

import hbm_runtime
import models
from hbm_runtime import HB_HBMRuntime, QuantParams, SchedParam, hbDNNDataType, hbDNNQuantiType
from models import LANENET_NAME, NV12_NAME, assert_outputs_match, ort_reference

# The two dtype maps of the seed, verbatim.
HB_DTYPE_MAP_SINGLE_MODEL = {
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
HB_DTYPE_MAP_MULTI_MODEL = {
    "F32": np.float32,
    "F16": np.float16,
    "S8": np.int8,
    "U8": np.uint8,
    "S16": np.int16,
    "U16": np.uint16,
    "S32": np.int32,
    "U32": np.uint32,
    "S64": np.int64,
    "U64": np.uint64,
    "BOOL8": np.bool_,
}


# ---- Quick start: single model, single input ------------------------------------------------


def test_quick_start_single_input(lanenet_path, capsys):
    # 加载模型
    model = HB_HBMRuntime(lanenet_path)
    # 获取模型名与输入名
    model_name = model.model_names[0]
    input_name = model.input_names[model_name][0]
    # 获取该输入对应的 shape
    input_shape = model.input_shapes[model_name][input_name]
    # 构造 numpy 输入
    input_tensor = np.ones(input_shape, dtype=np.float32)
    # 执行推理
    outputs = model.run(input_tensor)
    # 获取输出结果
    output_array = outputs[model_name]
    print("Output:", output_array)

    assert model_name == LANENET_NAME
    assert input_name == models.LANENET_INPUT
    assert input_shape == models.LANENET_SHAPE
    assert list(outputs) == [LANENET_NAME]
    assert_outputs_match(output_array, ort_reference(lanenet_path, {input_name: input_tensor}))
    assert capsys.readouterr().out.startswith("Output: {")
    model.close()


def test_quick_start_single_input_random_data(lanenet_rt, lanenet_path):
    """Same flow with random data: np.ones alone would not catch a layout mix-up."""
    model = lanenet_rt
    model_name = model.model_names[0]
    input_name = model.input_names[model_name][0]
    x = np.random.default_rng(11).standard_normal(model.input_shapes[model_name][input_name]).astype(np.float32)
    outputs = model.run(x)
    assert_outputs_match(outputs[model_name], ort_reference(lanenet_path, {input_name: x}))


# ---- Quick start: single model, several inputs (NV12) ----------------------------------------


@pytest.mark.parametrize("fill", ["ones", "random"])
def test_quick_start_multi_input(nv12_path, fill, capsys):
    hb_dtype_map = HB_DTYPE_MAP_SINGLE_MODEL
    rng = np.random.default_rng(12)

    # 加载模型
    model = HB_HBMRuntime(nv12_path)
    # 获取模型名（假设只加载了一个模型）
    model_name = model.model_names[0]
    # 准备输入名和 shape
    input_names = model.input_names[model_name]
    input_shapes = model.input_shapes[model_name]
    input_dtypes = model.input_dtypes[model_name]
    # 构造输入字典
    input_tensors = {}
    for name in input_names:
        shape = input_shapes[name]
        np_dtype = hb_dtype_map.get(input_dtypes[name].name, np.float32)  # fallback
        if fill == "ones":
            input_tensors[name] = np.ones(shape, dtype=np_dtype)
        else:
            input_tensors[name] = rng.integers(0, 256, size=shape).astype(np_dtype)
    # 可选：指定推理优先级和 BPU 设备
    priority = {model_name: 5}
    bpu_cores = {model_name: [0]}
    model.set_scheduling_params(priority=priority, bpu_cores=bpu_cores)
    # 执行推理
    results = model.run(input_tensors)
    # 输出结果
    for output_name, output_data in results[model_name].items():
        print(f"Output: {output_name}, shape={output_data.shape}")

    assert model_name == NV12_NAME
    assert input_names == ["data_y", "data_uv"]
    assert all(input_tensors[n].dtype == np.uint8 for n in input_names)
    sched = model.sched_params[model_name]
    assert sched.priority == 5 and sched.bpu_cores == [0]
    assert_outputs_match(results[model_name], ort_reference(nv12_path, input_tensors))
    expected = "".join(
        f"Output: {n}, shape={tuple(models.NV12_OUTPUT_SHAPES[n])}\n" for n in models.vendor_order(models.NV12_OUTPUTS)
    )
    assert capsys.readouterr().out == expected
    model.close()


# ---- run(multi_input_tensors): several models at once -------------------------------------------


@pytest.mark.parametrize("fill", ["ones", "random"])
def test_multi_model_run(lanenet_path, nv12_path, fill, capsys):
    hb_dtype_map = HB_DTYPE_MAP_MULTI_MODEL
    rng = np.random.default_rng(13)

    # 加载多个模型
    model_files = [lanenet_path, nv12_path]
    model = HB_HBMRuntime(model_files)
    # 打印加载的模型名称
    print("Loaded models:", model.model_names)
    # 为每个模型构造多个输入张量
    multi_input_tensors = {}
    for model_name in model.model_names:
        model_inputs = {}
        for input_name in model.input_names[model_name]:
            shape = model.input_shapes[model_name][input_name]
            dtype_enum = model.input_dtypes[model_name][input_name]
            np_dtype = hb_dtype_map.get(dtype_enum.name, np.float32)
            if fill == "ones":
                model_inputs[input_name] = np.ones(shape, dtype=np_dtype)
            else:
                model_inputs[input_name] = models.random_array(shape, np_dtype, rng)
        multi_input_tensors[model_name] = model_inputs
    # 可选：指定推理优先级和 BPU 设备
    priority = {name: 5 for name in model.model_names}
    bpu_cores = {name: [0] for name in model.model_names}
    model.set_scheduling_params(priority=priority, bpu_cores=bpu_cores)
    # 执行推理
    results = model.run(multi_input_tensors)
    # 输出结果
    for model_name, outputs in results.items():
        print(f"\nModel: {model_name}")
        for output_name, output_tensor in outputs.items():
            print(f"  Output: {output_name}, shape={output_tensor.shape}, dtype={output_tensor.dtype}")

    assert model.model_names == [LANENET_NAME, NV12_NAME]
    assert sorted(results) == sorted([LANENET_NAME, NV12_NAME])
    for path, name in ((lanenet_path, LANENET_NAME), (nv12_path, NV12_NAME)):
        assert_outputs_match(results[name], ort_reference(path, multi_input_tensors[name]), name)
    for name, sched in model.sched_params.items():
        assert (sched.priority, sched.bpu_cores) == (5, [0]), name
    out = capsys.readouterr().out
    assert out.startswith(f"Loaded models: ['{LANENET_NAME}', '{NV12_NAME}']\n")
    # Outputs print in the vendor's dict order ('1310', '1312', 'output', as the manual's dicts
    # show them; lanenet's 'seg' before 'output').
    assert f"\nModel: {NV12_NAME}\n  Output: 1310, shape=(1, 42, 42, 2), dtype=int32\n" in out
    assert "  Output: 1312, shape=(1, 21, 21, 2), dtype=int32\n  Output: output, shape=(1, 84, 84, 2)" in out
    assert f"\nModel: {LANENET_NAME}\n  Output: seg, shape=(1, 4, 64, 128), dtype=float32\n" in out

    # 若指定模型名称则只会推理指定的模型
    only = model.run(multi_input_tensors, model_name=NV12_NAME)
    assert list(only) == [NV12_NAME]
    assert_outputs_match(only[NV12_NAME], ort_reference(nv12_path, multi_input_tensors[NV12_NAME]))
    model.close()


def test_kwargs_model_name_example(lanenet_path, nv12_path):
    """outputs = model.run(input_tensor, model_name="resnet18") with several models loaded."""
    model = HB_HBMRuntime([nv12_path, lanenet_path])
    input_tensor = np.random.default_rng(14).standard_normal(models.LANENET_SHAPE).astype(np.float32)
    outputs = model.run(input_tensor, model_name=LANENET_NAME)
    assert list(outputs) == [LANENET_NAME]
    assert_outputs_match(outputs[LANENET_NAME], ort_reference(lanenet_path, {"input": input_tensor}))
    model.close()


# ---- constructor and property examples -----------------------------------------------------------


def test_constructor_examples(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    models.tiny(tmp_path / "model.onnx")
    models.tiny(tmp_path / "model_1.onnx", seed=21)
    models.tiny(tmp_path / "model_2.onnx", seed=22)

    model = HB_HBMRuntime("model.onnx")
    assert model.model_names == ["model"]
    # 或加载多个模型：
    model = HB_HBMRuntime(["model_1.onnx", "model_2.onnx"])
    print(model.model_names)
    print(model.model_count)
    assert capsys.readouterr().out == "['model_1', 'model_2']\n2\n"


def test_property_print_examples(nv12_rt, nv12_path, capsys):
    model = nv12_rt
    print(model.model_descs)
    assert capsys.readouterr().out == f"{{'{NV12_NAME}': 'Image classification model based on ResNet-18.'}}\n"
    print(model.hbm_descs)
    assert capsys.readouterr().out == f"{{'{nv12_path}': ''}}\n"
    print(model.input_counts)
    assert capsys.readouterr().out == f"{{'{NV12_NAME}': 2}}\n"
    print(model.input_names)
    assert capsys.readouterr().out == f"{{'{NV12_NAME}': ['data_y', 'data_uv']}}\n"
    print(model.output_counts)
    assert capsys.readouterr().out == f"{{'{NV12_NAME}': 3}}\n"
    print(model.output_names)
    assert capsys.readouterr().out == f"{{'{NV12_NAME}': ['output', '1310', '1312']}}\n"

    print(model.input_descs)
    out = capsys.readouterr().out
    assert "'data_uv': 'interleaved chroma plane'" in out and "'data_y': 'luma plane'" in out
    print(model.input_shapes)
    out = capsys.readouterr().out
    assert out.startswith(f"{{'{NV12_NAME}': {{")
    assert "'data_uv': [1, 336, 336, 2]" in out and "'data_y': [1, 672, 672, 1]" in out
    print(model.input_dtypes)
    out = capsys.readouterr().out
    assert "'data_uv': <hbDNNDataType.U8: 3>" in out and "'data_y': <hbDNNDataType.U8: 3>" in out
    print(model.output_dtypes)
    out = capsys.readouterr().out
    for n in models.NV12_OUTPUTS:
        assert f"'{n}': <hbDNNDataType.S32: 8>" in out
    print(model.output_shapes)
    out = capsys.readouterr().out
    assert "'1310': [1, 42, 42, 2]" in out and "'1312': [1, 21, 21, 2]" in out and "'output': [1, 84, 84, 2]" in out
    print(model.output_descs)
    out = capsys.readouterr().out
    assert "'1310': 'stride 16 head'" in out
    print(model.output_strides)
    out = capsys.readouterr().out
    assert "'output': [56448, 672, 8, 4]" in out and "'1312': [3528, 168, 8, 4]" in out
    print(model.input_strides)
    out = capsys.readouterr().out
    assert "'data_y': [451584, 672, 1, 1]" in out and "'data_uv': [225792, 672, 2, 1]" in out


def test_version_example(capsys):
    print("版本:", HB_HBMRuntime.version)
    out = capsys.readouterr().out
    assert out.startswith("版本: " + hbm_runtime.__version__)
    assert out.endswith("\n") and len(out.strip()) > len("版本: ")


# ---- quantization printing loops ----------------------------------------------------------------


def _expected_quant_block(name: str, quant_type: str, axis: int, scale, zero_point, as_list: bool) -> str:
    fmt = (lambda a: a.tolist()) if as_list else (lambda a: a)
    return (
        f"  {name}:\n"
        f"    quant_type: {quant_type}\n"
        f"    quantize_axis: {axis}\n"
        f"    scale_data: {fmt(np.asarray(scale, np.float32).reshape(-1))}\n"
        f"    zero_point_data: {fmt(np.asarray(zero_point, np.int32).reshape(-1))}\n"
    )


def test_input_quants_print_loop(open_runtime, qdq_path, capsys):
    model = open_runtime(qdq_path)
    none_axis = model.input_quants["qdq"]["offset"].axis

    quanti_info = model.input_quants
    for model, inputs in quanti_info.items():  # noqa: B007 (the seed's own variable names)
        print(f"{model}:")
        for name, info in inputs.items():
            print(f"  {name}:")
            print(f"    quant_type: {info.quant_type.name}")
            print(f"    quantize_axis: {info.axis}")
            print(f"    scale_data: {info.scale.tolist()}")
            print(f"    zero_point_data: {info.zero_point.tolist()}")

    blocks = {
        "offset": _expected_quant_block("offset", "NONE", none_axis, [], [], True),
        "x": _expected_quant_block("x", "SCALE", 1, [models.QDQ_X_SCALE], [models.QDQ_X_ZP], True),
    }
    expected = "qdq:\n" + "".join(blocks[n] for n in models.vendor_order(models.QDQ_INPUTS))
    assert capsys.readouterr().out == expected


def test_output_quants_print_loop(open_runtime, qdq_path, capsys):
    model = open_runtime(qdq_path)
    none_axis = model.output_quants["qdq"]["yf"].axis

    output_quanti = model.output_quants
    for model, outputs in output_quanti.items():  # noqa: B007
        print(f"{model}:")
        for name, info in outputs.items():
            print(f"  {name}:")
            print(f"    quant_type: {info.quant_type.name}")
            print(f"    quantize_axis: {info.axis}")
            print(f"    scale_data: {info.scale}")
            print(f"    zero_point_data: {info.zero_point}")

    blocks = {
        "y": _expected_quant_block("y", "SCALE", 1, models.QDQ_Y_SCALE, models.QDQ_Y_ZP, False),
        "y_u8": _expected_quant_block("y_u8", "SCALE", 1, [models.QDQ_YU8_SCALE], [], False),
        "yf": _expected_quant_block("yf", "NONE", none_axis, [], [], False),
    }
    expected = "qdq:\n" + "".join(blocks[n] for n in models.vendor_order(models.QDQ_OUTPUTS))
    assert capsys.readouterr().out == expected


def test_quant_params_class_example(open_runtime, qdq_path, capsys):
    model = open_runtime(qdq_path)
    model_name, output_name = "qdq", "y"
    # 获取模型某个输出的量化参数
    tensor_qparams = model.output_quants[model_name][output_name]
    print("scale:", tensor_qparams.scale)
    print("zero_point:", tensor_qparams.zero_point)
    print("type:", tensor_qparams.quant_type)
    print("axis:", tensor_qparams.axis)
    assert capsys.readouterr().out == (
        f"scale: {models.QDQ_Y_SCALE}\n"
        f"zero_point: {models.QDQ_Y_ZP.astype(np.int32)}\n"
        "type: hbDNNQuantiType.SCALE\n"
        "axis: 1\n"
    )
    assert isinstance(tensor_qparams, QuantParams)


# ---- enums ------------------------------------------------------------------------------------------


def test_enum_print_examples(capsys):
    print(hbDNNDataType.F32)  # 输出: hbDNNDataType.F32
    print(hbDNNQuantiType.SCALE)  # 输出: hbDNNQuantiType.SCALE
    assert capsys.readouterr().out == "hbDNNDataType.F32\nhbDNNQuantiType.SCALE\n"
    assert repr(hbDNNDataType.U8) == "<hbDNNDataType.U8: 3>"
    assert repr(hbDNNDataType.S32) == "<hbDNNDataType.S32: 8>"


@pytest.mark.parametrize("hb_dtype_map", [HB_DTYPE_MAP_SINGLE_MODEL, HB_DTYPE_MAP_MULTI_MODEL],
                         ids=["single_model_map", "multi_model_map"])
def test_hb_dtype_map_examples(hb_dtype_map, tmp_path, open_runtime):
    """Each key of the seed's maps is an hbDNNDataType name, and feeding np.ones of the mapped
    numpy dtype to a model with an input of that type works and matches onnxruntime."""
    for key, np_dtype in hb_dtype_map.items():
        assert getattr(hbDNNDataType, key).name == key
        assert np.dtype(models.DTYPES[key][1]) == np.dtype(np_dtype)
    path = models.dtypes(tmp_path / "dtypes_map.onnx", names=list(hb_dtype_map))
    model = open_runtime(path)
    model_name = model.model_names[0]
    inputs = {}
    for name in model.input_names[model_name]:
        dtype_enum = model.input_dtypes[model_name][name]
        assert dtype_enum.name == name[len("in_"):]
        np_dtype = hb_dtype_map.get(dtype_enum.name, np.float32)
        inputs[name] = np.ones(model.input_shapes[model_name][name], dtype=np_dtype)
    results = model.run(inputs)
    assert_outputs_match(results[model_name], ort_reference(path, inputs))
    for name, arr in results[model_name].items():
        assert arr.dtype == np.dtype(hb_dtype_map[model.output_dtypes[model_name][name].name])


# ---- scheduling examples ------------------------------------------------------------------------


def test_set_scheduling_params_example(tmp_path, open_runtime, two_cores, capsys):
    model = open_runtime([models.tiny(tmp_path / "model1.onnx"), models.tiny(tmp_path / "model2.onnx", seed=9)])
    runtime = model
    # 设置调度参数
    model.set_scheduling_params(
        priority={"model1": 200, "model2": 100},
        bpu_cores={"model1": [0, 1], "model2": [0]},
    )
    # 验证设置是否生效
    params = runtime.sched_params
    print(params["model1"].priority)  # 输出: 200
    print(params["model1"].bpu_cores)  # 输出: [0, 1]
    assert capsys.readouterr().out == "200\n[0, 1]\n"
    assert params["model2"] == SchedParam(priority=100, customId=0, bpu_cores=[0], deviceId=0)

    # Models still run (and correctly) with those parameters.
    for name, path in (("model1", tmp_path / "model1.onnx"), ("model2", tmp_path / "model2.onnx")):
        feeds = models.random_feeds(path, seed=3)
        assert_outputs_match(model.run(feeds, model_name=name)[name], ort_reference(path, feeds), name)


def test_sched_param_class_example(tmp_path, open_runtime, two_cores):
    model = open_runtime(models.tiny(tmp_path / "modelA.onnx"))
    # 创建一个调度参数对象
    sched = SchedParam()
    sched.priority = {"modelA": 8}
    sched.customId = {"modelA": 1001}
    sched.bpu_cores = {"modelA": [0, 1]}
    sched.deviceId = {"modelA": 0}
    # 应用调度参数到运行时
    model.set_scheduling_params(priority=sched.priority,
                                custom_id=sched.customId,
                                bpu_cores=sched.bpu_cores,
                                device_id=sched.deviceId)
    assert model.sched_params == {"modelA": SchedParam(priority=8, customId=1001, bpu_cores=[0, 1], deviceId=0)}
    feeds = models.random_feeds(tmp_path / "modelA.onnx", seed=4)
    assert_outputs_match(model.run(feeds)["modelA"], ort_reference(tmp_path / "modelA.onnx", feeds))


def test_sched_params_print_example(tmp_path, open_runtime, capsys):
    first, second = "yolo12s_detect_nashe_640x640_nv12", "yolov5nu_detect_nashe_640x640_nv12"
    # Loaded second-first, the vendor's dict order prints them as the manual does.
    model = open_runtime([models.tiny(tmp_path / f"{second}.onnx"), models.tiny(tmp_path / f"{first}.onnx")])
    model.set_scheduling_params(priority={first: 10, second: 66}, bpu_cores={first: [0]})

    params = model.sched_params
    for name, sched in params.items():
        print(f"Model: {name}")
        print(f"  priority: {sched.priority}")
        print(f"  customId: {sched.customId}")
        print(f"  bpu_cores: {sched.bpu_cores}")
        print(f"  deviceId: {sched.deviceId}")

    assert capsys.readouterr().out == (
        "Model: yolo12s_detect_nashe_640x640_nv12\n"
        "  priority: 10\n"
        "  customId: 0\n"
        "  bpu_cores: [0]\n"
        "  deviceId: 0\n"
        "Model: yolov5nu_detect_nashe_640x640_nv12\n"
        "  priority: 66\n"
        "  customId: 0\n"
        "  bpu_cores: [-1]\n"
        "  deviceId: 0\n"
    )
