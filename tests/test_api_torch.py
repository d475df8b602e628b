"""torch CPU tensors as inputs give the same results as numpy arrays."""

from __future__ import annotations

import numpy as np
import pytest

import models
from models import LANENET_NAME, NV12_NAME, assert_outputs_match, ort_reference

torch = pytest.importorskip("torch")


def _same(got, numpy_result):
    """Same engine, same data: torch and numpy inputs give equal outputs."""
    assert list(got) == list(numpy_result)
    for name, ref in numpy_result.items():
        assert got[name].dtype == ref.dtype and got[name].shape == ref.shape, name
        if np.issubdtype(ref.dtype, np.floating):
            np.testing.assert_allclose(got[name], ref, rtol=1e-6, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], ref, err_msg=name)


def test_contiguous_float_tensor(lanenet_rt, lanenet_path):
    x = np.random.default_rng(1).standard_normal(models.LANENET_SHAPE).astype(np.float32)
    from_numpy = lanenet_rt.run(x)[LANENET_NAME]
    t = torch.from_numpy(x.copy())
    assert t.is_contiguous()
    for arg in (t, {"input": t}, {LANENET_NAME: {"input": t}}):
        got = lanenet_rt.run(arg)[LANENET_NAME]
        _same(got, from_numpy)
        assert_outputs_match(got, ort_reference(lanenet_path, {"input": x}))


def test_torch_owned_memory(lanenet_rt, lanenet_path):
    """A tensor torch allocated itself (not a view of a numpy array)."""
    torch.manual_seed(0)
    t = torch.randn(*models.LANENET_SHAPE, dtype=torch.float32)
    x = t.numpy().copy()
    _same(lanenet_rt.run(t)[LANENET_NAME], lanenet_rt.run(x)[LANENET_NAME])
    assert_outputs_match(lanenet_rt.run(t)[LANENET_NAME], ort_reference(lanenet_path, {"input": x}))


@pytest.mark.parametrize("kind", ["permuted", "sliced", "transposed", "narrowed", "storage_offset"])
def test_strided_float_tensor(kind, lanenet_rt, lanenet_path):
    torch.manual_seed(1)
    n, c, h, w = models.LANENET_SHAPE
    if kind == "permuted":
        t = torch.randn(w, h, c, n).permute(3, 2, 1, 0)
    elif kind == "sliced":
        t = torch.randn(n, c, h, w * 2)[..., ::2]
    elif kind == "transposed":
        t = torch.randn(n, c, w, h).transpose(2, 3)
    elif kind == "narrowed":
        t = torch.randn(n, c, h, w + 3).narrow(3, 2, w)
    else:  # contiguous, but starting inside its storage
        t = torch.randn(n, c + 2, h, w).narrow(1, 1, c)
        assert t.is_contiguous() and t.storage_offset() > 0
    assert tuple(t.shape) == tuple(models.LANENET_SHAPE)
    assert not t.is_contiguous() or kind == "storage_offset"
    x = t.contiguous().numpy()
    before = t.clone()
    got = lanenet_rt.run(t)[LANENET_NAME]
    _same(got, lanenet_rt.run(x)[LANENET_NAME])
    assert_outputs_match(got, ort_reference(lanenet_path, {"input": x}))
    assert torch.equal(t, before)


def test_uint8_tensors_multi_input(nv12_rt, nv12_path):
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 256, tuple(models.NV12_INPUT_SHAPES["data_y"]), dtype=torch.uint8, generator=g)
    uv_big = torch.randint(0, 256, (1, 336, 2, 336), dtype=torch.uint8, generator=g)
    uv = uv_big.transpose(2, 3)  # non-contiguous [1, 336, 336, 2]
    feeds_np = {"data_y": y.numpy().copy(), "data_uv": uv.contiguous().numpy()}
    from_numpy = nv12_rt.run(feeds_np)[NV12_NAME]
    got = nv12_rt.run({"data_y": y, "data_uv": uv})[NV12_NAME]
    _same(got, from_numpy)
    assert_outputs_match(got, ort_reference(nv12_path, feeds_np))


def test_mixed_torch_and_numpy_in_multi_model_run(open_runtime, lanenet_path, nv12_path):
    rt = open_runtime([lanenet_path, nv12_path])
    rng = np.random.default_rng(3)
    x = rng.standard_normal(models.LANENET_SHAPE).astype(np.float32)
    feeds = {n: rng.integers(0, 256, size=s).astype(np.uint8) for n, s in models.NV12_INPUT_SHAPES.items()}
    got = rt.run({LANENET_NAME: {"input": torch.from_numpy(x)},
                  NV12_NAME: {"data_y": feeds["data_y"], "data_uv": torch.from_numpy(feeds["data_uv"])}})
    assert_outputs_match(got[LANENET_NAME], ort_reference(lanenet_path, {"input": x}))
    assert_outputs_match(got[NV12_NAME], ort_reference(nv12_path, feeds))


def test_dynamic_batch_tensor(open_runtime, dyn_path):
    rt = open_runtime(dyn_path)
    torch.manual_seed(4)
    t = torch.randn(5, 4, 3, 3).permute(3, 2, 1, 0)  # [3, 3, 4, 5], non-contiguous
    got = rt.run(t)["dyn"]
    assert got["y"].shape == (3, 3, 4, 6)
    assert_outputs_match(got, ort_reference(dyn_path, {"x": t.contiguous().numpy()}))


@pytest.mark.parametrize("dtype", ["float64", "float16", "int32"])
def test_wrong_dtype_tensor_raises(lanenet_rt, dtype):
    t = torch.zeros(*models.LANENET_SHAPE, dtype=getattr(torch, dtype))
    with pytest.raises(ValueError) as e:
        lanenet_rt.run(t)
    assert dtype in str(e.value) and "float32" in str(e.value) and LANENET_NAME in str(e.value)


def test_wrong_shape_tensor_raises(lanenet_rt):
    with pytest.raises(ValueError) as e:
        lanenet_rt.run(torch.zeros(1, 3, 256, 256))
    assert LANENET_NAME in str(e.value) and "256, 256" in str(e.value)

