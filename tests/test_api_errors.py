"""Caller errors: ValueError (no silent casting, no half-done work) whose message names the
model, the tensor, the value given and the one expected; loading errors."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import models
from hbm_runtime import HB_HBMRuntime
from models import LANENET_NAME, NV12_NAME, assert_outputs_match, ort_reference


def _shape_text(shape) -> str:
    """A regex matching shape written as a tuple or a list."""
    inner = r",\s*".join(str(d) for d in shape)
    return r"[\(\[]" + inner + r",?[\)\]]"


def assert_mentions(message: str, *parts: str, shapes=()) -> None:
    for p in parts:
        assert p in message, f"{p!r} not in error message {message!r}"
    for s in shapes:
        assert re.search(_shape_text(s), message), f"shape {s} not in error message {message!r}"


@pytest.fixture
def both(open_runtime, lanenet_path, nv12_path):
    return open_runtime([lanenet_path, nv12_path])


def _nv12_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {n: rng.integers(0, 256, size=s).astype(np.uint8) for n, s in models.NV12_INPUT_SHAPES.items()}


def _lanenet_input(seed=0, dtype=np.float32, shape=None):
    return np.random.default_rng(seed).standard_normal(shape or models.LANENET_SHAPE).astype(dtype)


# ---- shapes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 3, 256, 511), (2, 3, 256, 512), (3, 256, 512), (1, 3, 256, 512, 1),
                                   (1, 3, 512, 256)])
def test_wrong_shape(lanenet_rt, shape):
    with pytest.raises(ValueError) as e:
        lanenet_rt.run(np.zeros(shape, np.float32))
    assert_mentions(str(e.value), LANENET_NAME, "'input'", shapes=[shape, models.LANENET_SHAPE])


def test_wrong_shape_in_dict_form(nv12_rt):
    feeds = _nv12_inputs()
    feeds["data_uv"] = np.zeros((1, 336, 336, 1), np.uint8)
    with pytest.raises(ValueError) as e:
        nv12_rt.run(feeds)
    assert_mentions(str(e.value), NV12_NAME, "data_uv", shapes=[(1, 336, 336, 1), (1, 336, 336, 2)])


def test_wrong_static_dim_with_dynamic_batch(open_runtime, dyn_path):
    rt = open_runtime(dyn_path)
    with pytest.raises(ValueError) as e:
        rt.run(np.zeros((2, 3, 4, 6), np.float32))
    assert_mentions(str(e.value), "'dyn'", "'x'", shapes=[(2, 3, 4, 6), (-1, 3, 4, 5)])
    with pytest.raises(ValueError):
        rt.run(np.zeros((3, 4, 5), np.float32))


# ---- dtypes (no silent casting) --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint8])
def test_wrong_dtype_float_model(lanenet_rt, dtype):
    with pytest.raises(ValueError) as e:
        lanenet_rt.run(np.zeros(models.LANENET_SHAPE, dtype))
    assert_mentions(str(e.value), LANENET_NAME, "'input'", np.dtype(dtype).name, "float32")


@pytest.mark.parametrize("dtype", [">f4", "complex64", "longdouble", "object", "U3"])
def test_dtype_without_a_tensor_type(lanenet_rt, dtype):
    # Not even a candidate: a byte-swapped float32, complex, long double, objects, strings.
    with pytest.raises(ValueError) as e:
        lanenet_rt.run(np.zeros(models.LANENET_SHAPE, dtype))
    assert_mentions(str(e.value), LANENET_NAME, "'input'", str(np.dtype(dtype)), "not supported", "float32")


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.float32, np.bool_])
def test_wrong_dtype_uint8_model(nv12_rt, dtype):
    feeds = _nv12_inputs()
    feeds["data_y"] = feeds["data_y"].astype(dtype)
    with pytest.raises(ValueError) as e:
        nv12_rt.run(feeds)
    assert_mentions(str(e.value), NV12_NAME, "data_y", np.dtype(dtype).name, "uint8")


def test_wrong_dtype_in_multi_model_form(both):
    feeds = {LANENET_NAME: {"input": _lanenet_input(dtype=np.float64)}, NV12_NAME: _nv12_inputs()}
    with pytest.raises(ValueError) as e:
        both.run(feeds)
    assert_mentions(str(e.value), LANENET_NAME, "'input'", "float64", "float32")


# ---- names and counts ------------------------------------------------------------------------------


def test_unknown_input_name(nv12_rt):
    feeds = _nv12_inputs()
    feeds["data_yy"] = feeds.pop("data_y")
    with pytest.raises(ValueError) as e:
        nv12_rt.run(feeds)
    assert_mentions(str(e.value), NV12_NAME, "data_yy", "data_y", "data_uv")


def test_missing_input(nv12_rt):
    feeds = _nv12_inputs()
    del feeds["data_uv"]
    with pytest.raises(ValueError) as e:
        nv12_rt.run(feeds)
    assert_mentions(str(e.value), NV12_NAME, "data_uv")


def test_extra_input(nv12_rt):
    feeds = _nv12_inputs()
    feeds["extra"] = np.zeros((1,), np.uint8)
    with pytest.raises(ValueError) as e:
        nv12_rt.run(feeds)
    assert_mentions(str(e.value), NV12_NAME, "extra", "data_y", "data_uv")


def test_extra_input_for_single_input_model(lanenet_rt):
    with pytest.raises(ValueError) as e:
        lanenet_rt.run({"input": _lanenet_input(), "input2": _lanenet_input()})
    assert_mentions(str(e.value), LANENET_NAME, "input2")


@pytest.mark.parametrize("form", ["array", "dict", "nested"])
def test_wrong_model_name(both, form):
    x = _lanenet_input()
    arg = {"array": x, "dict": {"input": x}, "nested": {LANENET_NAME: {"input": x}}}[form]
    with pytest.raises(ValueError) as e:
        both.run(arg, model_name="lanenet")
    assert_mentions(str(e.value), "'lanenet'", LANENET_NAME, NV12_NAME)


def test_unknown_model_in_nested_form(both):
    with pytest.raises(ValueError) as e:
        both.run({"nope": {"input": _lanenet_input()}})
    assert_mentions(str(e.value), "nope", LANENET_NAME, NV12_NAME)


def test_model_name_not_in_nested_dict(both):
    with pytest.raises(ValueError) as e:
        both.run({LANENET_NAME: {"input": _lanenet_input()}}, model_name=NV12_NAME)
    assert_mentions(str(e.value), NV12_NAME)


def test_single_array_for_multi_input_model(nv12_rt):
    with pytest.raises(ValueError) as e:
        nv12_rt.run(np.zeros(models.NV12_INPUT_SHAPES["data_y"], np.uint8))
    assert_mentions(str(e.value), NV12_NAME, "data_y", "data_uv")


@pytest.mark.parametrize("form", ["array", "dict"])
def test_no_model_name_with_several_models(both, form):
    x = _lanenet_input()
    with pytest.raises(ValueError) as e:
        both.run(x if form == "array" else {"input": x})
    assert_mentions(str(e.value), LANENET_NAME, NV12_NAME, "model_name")


def test_mixing_forms_input_first(both):
    with pytest.raises(ValueError) as e:
        both.run({"input": _lanenet_input(), NV12_NAME: _nv12_inputs()}, model_name=LANENET_NAME)
    assert_mentions(str(e.value), NV12_NAME)


def test_mixing_forms_model_first(both):
    with pytest.raises(ValueError) as e:
        both.run({NV12_NAME: _nv12_inputs(), "input": _lanenet_input()})
    assert_mentions(str(e.value), "input")


def test_empty_dict(lanenet_rt):
    with pytest.raises(ValueError):
        lanenet_rt.run({})


def test_runtime_still_works_after_errors(both, lanenet_path, nv12_path):
    bad_calls = [
        lambda: both.run(np.zeros((1, 3, 2, 2), np.float32), model_name=LANENET_NAME),
        lambda: both.run(_lanenet_input(dtype=np.float64), model_name=LANENET_NAME),
        lambda: both.run({"nope": _lanenet_input()}, model_name=LANENET_NAME),
        lambda: both.run({NV12_NAME: {"data_y": _nv12_inputs()["data_y"]}}),
        lambda: both.run(_lanenet_input()),
    ]
    for call in bad_calls:
        with pytest.raises(ValueError):
            call()
    x, feeds = _lanenet_input(5), _nv12_inputs(5)
    result = both.run({LANENET_NAME: {"input": x}, NV12_NAME: feeds})
    assert_outputs_match(result[LANENET_NAME], ort_reference(lanenet_path, {"input": x}))
    assert_outputs_match(result[NV12_NAME], ort_reference(nv12_path, feeds))


def test_error_in_one_model_runs_nothing_and_returns_nothing(both):
    """A nested call with one bad model raises; it does not return a partial result."""
    feeds = {NV12_NAME: _nv12_inputs(), LANENET_NAME: {"input": np.zeros((1, 3, 1, 1), np.float32)}}
    with pytest.raises(ValueError) as e:
        both.run(feeds)
    assert_mentions(str(e.value), LANENET_NAME, "'input'", shapes=[(1, 3, 1, 1), models.LANENET_SHAPE])


# ---- loading ------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    missing = os.fspath(tmp_path / "absent.onnx")
    with pytest.raises(ValueError) as e:
        HB_HBMRuntime(missing)
    assert_mentions(str(e.value), missing)


def test_missing_file_among_good_ones(tmp_path, lanenet_path):
    missing = os.fspath(tmp_path / "absent.onnx")
    with pytest.raises(ValueError) as e:
        HB_HBMRuntime([lanenet_path, missing])
    assert_mentions(str(e.value), missing)


def test_first_bad_file_in_order_is_reported(tmp_path, lanenet_path):
    # The host engine compiles the files side by side; the error is still the first file's,
    # as when they load one by one.
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07 this is not a model" * 40)
    truncated = tmp_path / "truncated.onnx"
    whole = open(lanenet_path, "rb").read()
    truncated.write_bytes(whole[: len(whole) // 2])
    good = models.single(tmp_path / "good.onnx")
    for files, named, not_named in (
        ([lanenet_path, garbage, good, truncated], garbage, truncated),
        ([truncated, good, garbage], truncated, garbage),
        ([good, lanenet_path, truncated, garbage], truncated, garbage),
    ):
        with pytest.raises(ValueError) as e:
            HB_HBMRuntime([os.fspath(f) for f in files])
        assert_mentions(str(e.value), os.fspath(named))
        assert os.fspath(not_named) not in str(e.value)


@pytest.mark.parametrize("name", ["model.txt", "model", "model.onnx.bak", "model.pb"])
def test_unsupported_extension(tmp_path, name):
    path = tmp_path / name
    models.single(tmp_path / "ok.onnx")
    path.write_bytes((tmp_path / "ok.onnx").read_bytes())  # a valid ONNX file, wrong extension
    with pytest.raises(ValueError) as e:
        HB_HBMRuntime(os.fspath(path))
    assert_mentions(str(e.value), os.fspath(path), ".onnx")


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\xff\x00this is not a protobuf\xff" * 10)
    with pytest.raises(ValueError) as e:
        HB_HBMRuntime(os.fspath(path))
    assert_mentions(str(e.value), os.fspath(path))


def test_directory_instead_of_file(tmp_path):
    d = tmp_path / "dir.onnx"
    d.mkdir()
    with pytest.raises(ValueError) as e:
        HB_HBMRuntime(os.fspath(d))
    assert_mentions(str(e.value), os.fspath(d))


def test_duplicate_model_names(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    p1 = models.single(tmp_path / "a" / "same.onnx")
    p2 = models.single(tmp_path / "b" / "same.onnx")
    with pytest.raises(ValueError) as e:
        HB_HBMRuntime([p1, p2])
    assert_mentions(str(e.value), "same")


def test_no_file_given():
    with pytest.raises(ValueError):
        HB_HBMRuntime([])


@pytest.mark.parametrize("bad", [5, None, 3.5, [1, 2]])
def test_bad_constructor_argument_type(bad):
    with pytest.raises(TypeError):
        HB_HBMRuntime(bad)
