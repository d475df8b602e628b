"""hbm_runtime.dequantize / quantize and QuantParams.dequantize / quantize: bit-identical to
the numpy reference below for every dtype, axis, parameter layout and memory layout; inputs
never written; only out's elements written; every bad argument refused before any write."""

from __future__ import annotations

import dataclasses
import inspect
import threading

import numpy as np
import pytest

import hbm_runtime
import models
from hbm_runtime import QuantParams, SchedParam, dequantize, hbDNNQuantiType, quantize

INT_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32]
SENTINEL = 0xA5


# ---- the reference --------------------------------------------------------------------------


def _params(a, scale, zero_point, axis):
    """scale (float32) and zero point (int32) shaped to broadcast along axis."""
    s = np.asarray(scale, np.float64).astype(np.float32).reshape(-1)
    z = np.zeros(1, np.int32) if zero_point is None else np.asarray(zero_point, np.int64).reshape(-1).astype(np.int32)
    if z.size == 0:
        z = np.zeros(1, np.int32)

    def shaped(p):
        if p.size == 1:
            return p.reshape((1,) * a.ndim)
        shape = [1] * a.ndim
        shape[axis] = p.size
        return p.reshape(shape)

    return shaped(s), shaped(z)


def ref_dequantize(q, scale, zero_point=0, axis=None):
    s, z = _params(q, scale, zero_point, axis)
    # float32 - float32 and float32 * float32: no promotion to float64 anywhere
    with np.errstate(over="ignore"):
        return (q.astype(np.float32) - z.astype(np.float32)) * s


def ref_quantize(x, scale, zero_point=0, axis=None, dtype=np.int8):
    s, z = _params(x, scale, zero_point, axis)
    info = np.iinfo(dtype)
    with np.errstate(all="ignore"):
        t = x.astype(np.float32) / s  # float32 division
        t = np.where(np.isnan(t), np.float32(0), t)
        r = np.rint(t).astype(np.float64) + z.astype(np.float64)  # exact below 2**53
        return np.clip(r, info.min, info.max).astype(dtype)


def assert_bits_equal(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    width = {1: np.uint8, 2: np.uint16, 4: np.uint32}[got.dtype.itemsize]
    g, w = np.ascontiguousarray(got).view(width), np.ascontiguousarray(want).view(width)
    if not np.array_equal(g, w):
        bad = np.argwhere(g != w)[:5]
        raise AssertionError(f"{len(np.argwhere(g != w))} elements differ, e.g. at {bad.tolist()}: "
                             f"got {[got[tuple(i)] for i in bad]}, want {[want[tuple(i)] for i in bad]}")


# ---- layouts --------------------------------------------------------------------------------

LAYOUTS = ["contiguous", "padded", "strided", "transposed", "reversed", "mixed"]


def make_layout(shape, dtype, layout, rng):
    """(view of `shape` with the given layout, the array it lives in, a function that makes the
    same view of any array shaped like the base)."""
    nd = len(shape)
    if layout == "contiguous":
        return np.empty(shape, dtype), lambda b: b, tuple(shape)
    if layout == "padded":  # like BPU outputs: each row padded (strides bigger than contiguous)
        pad = [int(p) for p in rng.integers(0, 4, nd)]
        if nd:
            pad[-1] = max(pad[-1], 1)
        base_shape = tuple(n + p for n, p in zip(shape, pad))
        idx = tuple(slice(0, n) for n in shape)
        return None, lambda b: b[idx + (Ellipsis,)], base_shape
    if layout == "strided":
        base_shape = tuple(2 * n + 1 for n in shape)
        idx = tuple(slice(1, 1 + 2 * n, 2) for n in shape)
        return None, lambda b: b[idx + (Ellipsis,)], base_shape
    if layout == "transposed":
        perm = [int(p) for p in rng.permutation(nd)]
        inv = list(np.argsort(perm))
        base_shape = tuple(shape[p] for p in perm)
        return None, lambda b: b.transpose(inv), base_shape
    if layout == "reversed":
        flips = tuple(slice(None, None, -1) if rng.random() < 0.6 else slice(None) for _ in shape)
        return None, lambda b: b[flips + (Ellipsis,)], tuple(shape)
    if layout == "mixed":  # transposed view of a padded, partly reversed, strided array
        perm = [int(p) for p in rng.permutation(nd)]
        inv = list(np.argsort(perm))
        t_shape = [shape[p] for p in perm]
        steps = [int(s) * (1 if rng.random() < 0.5 else -1) for s in rng.integers(1, 3, nd)]
        base_shape = tuple(abs(st) * n + 2 for st, n in zip(steps, t_shape))
        idx = tuple(slice(0, st * n, st) if st > 0 else slice(-st * n - 1, None, st)
                    for st, n in zip(steps, t_shape))
        return None, lambda b: b[idx + (Ellipsis,)].transpose(inv), base_shape
    raise AssertionError(layout)


def as_bytes(a):
    """The bytes of a contiguous array, shaped a.shape + (itemsize,)."""
    return a.reshape(a.shape + (1,)).view(np.uint8)


def strided_array(shape, dtype, layout, rng):
    """(view, base, mask of the view's elements in base). The base is filled with SENTINEL."""
    contiguous, view_of, base_shape = make_layout(shape, dtype, layout, rng)
    base = np.empty(base_shape, dtype)
    as_bytes(base)[...] = SENTINEL
    view = view_of(base)
    assert view.shape == tuple(shape), (layout, view.shape, shape)
    mask = np.zeros(base_shape, bool)
    view_of(mask)[...] = True
    return view, base, mask


def random_ints(shape, dtype, rng):
    info = np.iinfo(dtype)
    v = rng.integers(info.min, info.max, size=shape, dtype=np.int64, endpoint=True).astype(dtype)
    flat = v.reshape(-1)
    specials = np.array([info.min, info.max, 0, 1, info.max - 1, info.min + 1], np.int64).astype(dtype)
    n = min(flat.size, specials.size)
    flat[:n] = specials[:n]
    return v


def random_floats(shape, rng, scale=1.0):
    """Mostly values around the quantized range (ties included), some extremes and non-finite."""
    n = int(np.prod(shape))
    kind = rng.integers(0, 6, n)
    v = rng.normal(0, 200, n) * scale
    v = np.where(kind == 1, np.round(v) + 0.5 * scale, v)  # halves: rounding ties for power-of-2 scales
    v = np.where(kind == 2, rng.normal(0, 1, n) * 2.0 ** rng.integers(-30, 40, n), v)
    out = v.astype(np.float32)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.4e38, -3.4e38, 1e-45, 2.0 ** 31, -2.0 ** 31,
                         2147483520.0, 4294967040.0, 2.0 ** 32, 127.5, -128.5, 255.5, 32767.5, -0.5, 0.5],
                        np.float32)
    k = min(n, specials.size)
    pick = rng.choice(n, size=k, replace=False)
    with np.errstate(over="ignore"):
        out[pick] = specials[:k] * np.float32(scale)  # x / scale lands near the special value
    return out.reshape(shape)


def random_case(rng, nd=None):
    nd = int(rng.integers(0, 6)) if nd is None else nd
    shape = tuple(int(n) for n in rng.integers(1, 7, nd))
    axis = int(rng.integers(-nd, nd)) if nd else None
    return shape, axis


def random_params(rng, shape, axis, kind, quantize_dtype=None):
    """(scale, zero_point, axis argument) for kind per_tensor / per_axis / mixed_scale / mixed_zp."""
    channels = shape[axis] if axis is not None else 1
    n_s = channels if kind in ("per_axis", "mixed_scale") else 1
    n_z = channels if kind in ("per_axis", "mixed_zp") else 1
    mags = 2.0 ** rng.integers(-12, 6, n_s)
    scale = (rng.uniform(0.5, 1.0, n_s) * mags * np.where(rng.random(n_s) < 0.15, -1, 1)).astype(np.float32)
    scale[rng.random(n_s) < 0.3] = np.float32(2.0) ** int(rng.integers(-8, 3))  # exact halves stay halves
    if quantize_dtype is None:
        zp = rng.integers(-2**31, 2**31, n_z, dtype=np.int64).astype(np.int32)
        zp[rng.random(n_z) < 0.5] = rng.integers(-300, 300)
    else:
        info = np.iinfo(quantize_dtype)
        zp = rng.integers(max(info.min, -2**31), min(info.max, 2**31 - 1), n_z, dtype=np.int64, endpoint=True)
        zp[rng.random(n_z) < 0.3] = 0
        zp = zp.astype(np.int32)
    if rng.random() < 0.1 and kind == "per_tensor":
        zp = np.zeros(0, np.int32)
    use_axis = axis if kind != "per_tensor" or rng.random() < 0.5 else None
    return scale, zp, use_axis


PARAM_KINDS = ["per_tensor", "per_axis", "mixed_scale", "mixed_zp"]


# ---- bit-exactness over random cases --------------------------------------------------------


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("seed", range(6))
def test_dequantize_matches_reference(dtype, seed):
    rng = np.random.default_rng(1000 + seed + 17 * INT_DTYPES.index(dtype))
    for case in range(40):
        shape, axis = random_case(rng)
        kind = PARAM_KINDS[case % 4] if axis is not None else "per_tensor"
        scale, zp, ax = random_params(rng, shape, axis, kind)
        q_layout = LAYOUTS[case % len(LAYOUTS)]
        q, q_base, _ = strided_array(shape, dtype, q_layout, rng)
        q[...] = random_ints(shape, dtype, rng)
        q_before = q_base.copy()
        want = ref_dequantize(q, scale, zp, ax)
        out_layout = LAYOUTS[(case // 3) % len(LAYOUTS)] if case % 2 else None
        if out_layout is None:
            got = dequantize(q, scale, zp, ax)
            assert got.flags.c_contiguous and got.dtype == np.float32
        else:
            out, out_base, mask = strided_array(shape, np.float32, out_layout, rng)
            got = dequantize(q, scale, zp, ax, out=out)
            assert got is out
            padding = as_bytes(out_base)[~mask]
            assert (padding == SENTINEL).all(), f"out's padding was written ({out_layout})"
        assert_bits_equal(got, want)
        assert np.array_equal(as_bytes(q_base), as_bytes(q_before)), "q was modified"


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("seed", range(6))
def test_quantize_matches_reference(dtype, seed):
    rng = np.random.default_rng(2000 + seed + 17 * INT_DTYPES.index(dtype))
    for case in range(40):
        shape, axis = random_case(rng)
        kind = PARAM_KINDS[case % 4] if axis is not None else "per_tensor"
        scale, zp, ax = random_params(rng, shape, axis, kind, quantize_dtype=dtype)
        x_layout = LAYOUTS[case % len(LAYOUTS)]
        x, x_base, _ = strided_array(shape, np.float32, x_layout, rng)
        x[...] = random_floats(shape, rng, float(np.abs(scale).max()) if rng.random() < 0.7 else 1.0)
        x_before = x_base.copy()
        want = ref_quantize(x, scale, zp, ax, dtype)
        out_layout = LAYOUTS[(case // 3) % len(LAYOUTS)] if case % 2 else None
        if out_layout is None:
            got = quantize(x, scale, zp, ax, dtype=dtype)
            assert got.flags.c_contiguous
        else:
            out, out_base, mask = strided_array(shape, dtype, out_layout, rng)
            got = quantize(x, scale, zp, ax, out=out)
            assert got is out
            padding = as_bytes(out_base)[~mask]
            assert (padding == SENTINEL).all(), f"out's padding was written ({out_layout})"
        assert_bits_equal(got, want)
        assert np.array_equal(as_bytes(x_base), as_bytes(x_before)), "x was modified"


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
def test_dequantize_every_value(dtype):
    info = np.iinfo(dtype)
    q = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)
    for scale, zp in ((0.1, 0), (np.float32(1 / 3), -7), (3e-7, 2**30 + 3), (-2.5, 128), (7e37, -2**31)):
        assert_bits_equal(dequantize(q, scale, zp), ref_dequantize(q, scale, zp))


def test_quantize_random_bit_patterns():
    """Every kind of float32: NaNs, infinities, subnormals, huge and tiny values."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    for dtype in INT_DTYPES:
        info = np.iinfo(dtype)
        for scale in (1.0, 0.5, 1e-3, 3e-39, 1e30, -0.25):
            for zp in {0, int(info.min), int(info.max), int((int(info.min) + int(info.max)) // 2)}:
                if not -2**31 <= zp < 2**31:
                    continue
                assert_bits_equal(quantize(x, scale, zp, dtype=dtype), ref_quantize(x, scale, zp, None, dtype))


def test_yolo_sized_output_padded():
    """A 1x84x84x255 int32 BPU output with rows padded to 256, per tensor and per channel."""
    rng = np.random.default_rng(3)
    base = rng.integers(-2**31, 2**31, (1, 84, 84, 256), dtype=np.int64).astype(np.int32)
    q = base[..., :255]
    scale = rng.uniform(1e-6, 1e-3, 255).astype(np.float32)
    zp = rng.integers(-100, 100, 255).astype(np.int32)
    assert_bits_equal(dequantize(q, scale[:1], zp[:1]), ref_dequantize(q, scale[:1], zp[:1]))
    assert_bits_equal(dequantize(q, scale, zp, axis=-1), ref_dequantize(q, scale, zp, -1))
    assert_bits_equal(dequantize(q, scale, zp, axis=3), ref_dequantize(q, scale, zp, 3))
    x = dequantize(q, scale, zp, axis=3)
    assert_bits_equal(quantize(x, scale, zp, 3, dtype=np.int32), ref_quantize(x, scale, zp, 3, np.int32))


@pytest.mark.parametrize("layout", ["contiguous", "reversed", "channels_outer", "padded_out"])
def test_large_arrays_match_reference(layout):
    """Arrays of millions of elements, reversed, channels outermost or written into a padded
    out=: bit for bit the reference, and out's elements outside the view stay untouched."""
    rng = np.random.default_rng(21)
    shape = (3, 700, 1001)  # 2.1 M elements; 3 and 700 do not divide evenly into the slices
    q = random_ints(shape, np.int16, rng)
    axis = 0 if layout == "channels_outer" else 2
    scale = rng.uniform(0.01, 2, shape[axis]).astype(np.float32)
    zp = rng.integers(-1000, 1000, shape[axis]).astype(np.int32)
    if layout == "reversed":
        q = q[::-1, :, ::-1]
    if layout == "padded_out":
        buf = np.full(shape[:-1] + (1024,), SENTINEL, np.float32)
        out = buf[..., :shape[-1]]
        assert dequantize(q, scale, zp, axis, out=out) is out
        assert_bits_equal(out, ref_dequantize(q, scale, zp, axis))
        assert np.all(buf[..., shape[-1]:] == np.float32(SENTINEL))
    else:
        assert_bits_equal(dequantize(q, scale, zp, axis), ref_dequantize(q, scale, zp, axis))
    assert_bits_equal(dequantize(q, scale[:1], zp[:1]), ref_dequantize(q, scale[:1], zp[:1]))
    x = rng.normal(0, 300, q.shape).astype(np.float32)
    assert_bits_equal(quantize(x, scale, zp, axis, dtype=np.int16), ref_quantize(x, scale, zp, axis, np.int16))
    assert_bits_equal(quantize(x, 0.5, 3, dtype=np.uint8), ref_quantize(x, 0.5, 3, None, np.uint8))


@pytest.mark.parametrize("shape,axis", [((1, 64, 64, 3), 3), ((2, 37, 3), 2), ((1000, 7), 1), ((5, 3, 1000), 1),
                                        ((3, 1000), 0), ((7, 11, 13, 2), 3), ((2, 4096, 2), -1), ((600, 1), 1)])
def test_per_channel_shapes(shape, axis):
    """Small channel counts innermost, channels outermost, long rows: every loop arrangement."""
    rng = np.random.default_rng(11)
    q = random_ints(shape, np.int16, rng)
    c = shape[axis]
    scale = rng.uniform(0.01, 2, c).astype(np.float32)
    zp = rng.integers(-1000, 1000, c).astype(np.int32)
    assert_bits_equal(dequantize(q, scale, zp, axis), ref_dequantize(q, scale, zp, axis))
    assert_bits_equal(dequantize(q.T, scale, zp, q.ndim - 1 - axis % q.ndim),
                      ref_dequantize(q.T, scale, zp, q.ndim - 1 - axis % q.ndim))
    x = rng.normal(0, 300, shape).astype(np.float32)
    zp8 = (zp % 256).astype(np.int32)
    assert_bits_equal(quantize(x, scale, zp8, axis, dtype=np.uint8), ref_quantize(x, scale, zp8, axis, np.uint8))


# ---- defined values at the edges ------------------------------------------------------------


def test_quantize_rounds_half_to_even():
    x = np.array([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 0.49999997, 126.5, 127.5, -128.5], np.float32)
    np.testing.assert_array_equal(quantize(x, 1), [0, 2, 2, 4, 0, -2, -2, 0, 126, 127, -128])
    np.testing.assert_array_equal(quantize(x, 0.5, dtype=np.int16), [1, 3, 5, 7, -1, -3, -5, 1, 253, 255, -257])
    halves = np.arange(-300, 300, dtype=np.float32) + np.float32(0.5)
    np.testing.assert_array_equal(quantize(halves, 1, dtype=np.int16), np.rint(halves).astype(np.int16))


def test_quantize_saturates_and_defines_nan():
    x = np.array([1000, -1000, np.inf, -np.inf, np.nan, -np.nan, 3.4e38], np.float32)
    np.testing.assert_array_equal(quantize(x, 1, 3), [127, -128, 127, -128, 3, 3, 127])
    np.testing.assert_array_equal(quantize(x, -1, 3), [-128, 127, -128, 127, 3, 3, -128])
    np.testing.assert_array_equal(quantize(x, 1, 200, dtype=np.uint8), [255, 0, 255, 0, 200, 200, 255])
    np.testing.assert_array_equal(quantize(x, 1, 7, dtype=np.uint32), [1007, 0, 2**32 - 1, 0, 7, 7, 2**32 - 1])
    i32 = np.iinfo(np.int32)
    np.testing.assert_array_equal(quantize(x, 1, dtype=np.int32), [1000, -1000, i32.max, i32.min, 0, 0, i32.max])


def test_quantize_adds_the_zero_point_exactly():
    # In float32 2**24 + 1 would round back to 2**24.
    assert quantize(np.float32(2**24), 1, 1, dtype=np.int32) == 2**24 + 1
    below = np.float32(2147483520.0)  # the largest float32 below 2**31
    assert quantize(below, 1, 127, dtype=np.int32) == 2**31 - 1
    assert quantize(below, 1, 126, dtype=np.int32) == 2**31 - 2
    assert quantize(below, 1, 128, dtype=np.int32) == 2**31 - 1
    assert quantize(np.float32(-2**31), 1, -1, dtype=np.int32) == -2**31
    assert quantize(np.float32(-2**31), 1, 5, dtype=np.int32) == -2**31 + 5
    assert quantize(np.float32(4294967040.0), 1, 255, dtype=np.uint32) == 2**32 - 1
    assert quantize(np.float32(4294967040.0), 1, 254, dtype=np.uint32) == 2**32 - 2


def test_dequantize_is_float32_arithmetic():
    # The zero point goes through float32 like the reference, not integer subtraction.
    q = np.array([1, 2**31 - 1, -2**31], np.int32)
    zp = 2**24 + 1  # float32(zp) == 2**24
    want = (q.astype(np.float32) - np.float32(zp)) * np.float32(0.1)
    assert_bits_equal(dequantize(q, 0.1, zp), want)
    assert dequantize(np.array([1], np.int32), 1, zp)[0] == 1 - 2**24
    u = np.array([0, 2**32 - 1, 2**31], np.uint32)
    assert_bits_equal(dequantize(u, 2.0, -3), (u.astype(np.float32) + np.float32(3)) * np.float32(2))
    # Overflow to infinity and signed zeros follow float32.
    assert_bits_equal(dequantize(q, 3e38, 0), ref_dequantize(q, 3e38, 0))
    assert_bits_equal(dequantize(np.array([0, 5], np.int8), -0.0, 5), np.array([0.0, -0.0], np.float32))


def test_scale_and_zero_point_forms():
    q = np.arange(24, dtype=np.int8).reshape(2, 3, 4)
    scale = np.array([0.5, 0.25, 2.0], np.float32)
    for z in (None, [], 0, [0], np.int64(0), np.zeros(0, np.int32)):
        assert_bits_equal(dequantize(q, 0.5, z), q.astype(np.float32) * np.float32(0.5))
    want = ref_dequantize(q, scale, [1, 2, 3], 1)
    for s in (scale, list(scale), tuple(scale.tolist()), scale.astype(np.float64)):
        for z in ([1, 2, 3], np.array([1, 2, 3], np.uint8), np.array([1, 2, 3], np.int64)):
            assert_bits_equal(dequantize(q, s, z, 1), want)
            assert_bits_equal(dequantize(q, s, z, -2), want)
            assert_bits_equal(dequantize(q, s, z, axis=np.int64(1)), want)
    # per-axis scale with a per-tensor zero point, and the reverse
    assert_bits_equal(dequantize(q, scale, 4, 1), ref_dequantize(q, scale, 4, 1))
    assert_bits_equal(dequantize(q, 0.5, [1, 2, 3, 4], 2), ref_dequantize(q, 0.5, [1, 2, 3, 4], 2))
    # one value with an axis: per tensor; strided / float64 parameters convert
    assert_bits_equal(dequantize(q, [0.5], [3], 2), ref_dequantize(q, 0.5, 3))
    assert_bits_equal(dequantize(q, np.array([0.5, 9, 0.25, 9, 2.0])[::2], 0, 1), ref_dequantize(q, scale, 0, 1))
    # integer scales are numbers too
    assert_bits_equal(dequantize(q, 2, 1), ref_dequantize(q, 2.0, 1))


def test_small_and_empty_arrays():
    assert dequantize(np.int8(-3), 0.5, 1).item() == -2.0  # numpy scalar -> 0-d array
    zero_d = np.array(7, np.uint16)
    got = dequantize(zero_d, 0.25)
    assert got.shape == () and got.dtype == np.float32 and got.item() == 1.75
    assert quantize(np.float32(1.75), 0.25).item() == 7
    assert quantize(np.array(1.75, np.float32), 0.25, dtype=np.uint16).dtype == np.uint16
    empty = np.zeros((3, 0, 2), np.int32)
    assert dequantize(empty, 1.0).shape == (3, 0, 2)
    assert dequantize(empty, [1.0, 2.0], 0, axis=2).shape == (3, 0, 2)
    assert dequantize(empty, np.zeros(0, np.float32), 0, axis=1).shape == (3, 0, 2)
    assert quantize(np.zeros((0,), np.float32), 1.0).shape == (0,)
    ones = np.ones((1, 1, 1), np.int8)
    assert dequantize(ones, [3.0], [1], axis=1).tolist() == [[[0.0]]]


def test_broadcast_and_read_only_inputs():
    """Zero strides (broadcast views) and read-only memory are fine to read."""
    row = np.array([1, -2, 3, -4], np.int16)
    q = np.broadcast_to(row, (5, 3, 4))
    assert q.strides[0] == 0 and not q.flags.writeable
    scale = np.array([0.5, 1.0, 2.0], np.float32)
    assert_bits_equal(dequantize(q, scale, [1, 2, 3], 1), ref_dequantize(q, scale, [1, 2, 3], 1))
    x = np.broadcast_to(np.float32(2.5), (4, 4))
    assert_bits_equal(quantize(x, 1.0), ref_quantize(x, 1.0))
    ro = np.arange(10, dtype=np.int32)
    ro.flags.writeable = False
    assert_bits_equal(dequantize(ro, 0.5), ref_dequantize(ro, 0.5))


def test_out_of_other_kinds_and_forms():
    q = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    out = np.full((4, 3), 9, np.float32).T  # Fortran-ordered out
    assert dequantize(q, 0.5, out=out) is out
    assert_bits_equal(out, ref_dequantize(q, 0.5))
    mm = np.zeros((3, 4), np.float32).view(np.matrix)  # an ndarray subclass
    dequantize(q, 0.5, out=mm)
    assert_bits_equal(np.asarray(mm), ref_dequantize(q, 0.5))
    o8 = np.zeros((3, 4), np.uint8)
    assert quantize(q.astype(np.float32), 0.5, 10, out=o8, dtype=np.uint8) is o8
    assert quantize(q.astype(np.float32), 0.5, 10, out=o8).dtype == np.uint8  # dtype from out


def test_threads_share_nothing():
    rng = np.random.default_rng(5)
    qs = [random_ints((64, 128), np.int32, rng) for _ in range(4)]
    scale = rng.uniform(0.001, 1, 128).astype(np.float32)
    wants = [ref_dequantize(q, scale, 3, 1) for q in qs]
    errors = []

    def work(i):
        try:
            for _ in range(20):
                assert_bits_equal(dequantize(qs[i], scale, 3, 1), wants[i])
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


# ---- QuantParams ----------------------------------------------------------------------------


def test_quant_params_apply_their_own_parameters():
    rng = np.random.default_rng(9)
    q = random_ints((2, 3, 5), np.int8, rng)
    p = QuantParams(scale=[0.5, 0.25, 0.125], zero_point=[1, -2, 3], quant_type=hbDNNQuantiType.SCALE, axis=1)
    assert_bits_equal(p.dequantize(q), ref_dequantize(q, p.scale, p.zero_point, 1))
    p.axis = -2
    assert_bits_equal(p.dequantize(q), ref_dequantize(q, p.scale, p.zero_point, 1))
    out = np.empty(q.shape, np.float32)
    assert p.dequantize(q, out=out) is out
    x = p.dequantize(q)
    assert_bits_equal(p.quantize(x), q)
    assert_bits_equal(p.quantize(x, dtype=np.int16), q.astype(np.int16))
    # per tensor: the axis is not used, whatever it says
    t = QuantParams(scale=[0.5], zero_point=[1], quant_type=hbDNNQuantiType.SCALE, axis=7)
    assert_bits_equal(t.dequantize(q), ref_dequantize(q, 0.5, 1))
    assert_bits_equal(t.quantize(np.array([1.0, 2.0], np.float32), np.uint8), np.array([3, 5], np.uint8))
    # no zero point
    nz = QuantParams(scale=[2.0], quant_type=hbDNNQuantiType.SCALE)
    assert_bits_equal(nz.dequantize(q), q.astype(np.float32) * np.float32(2))
    # the parameters are not changed by use
    assert p == QuantParams(scale=[0.5, 0.25, 0.125], zero_point=[1, -2, 3], quant_type=1, axis=-2)


def test_quant_params_none():
    p = QuantParams()
    for a in (np.arange(5, dtype=np.int64), np.linspace(0, 1, 5), np.arange(5, dtype=np.float32)):
        got = p.dequantize(a)
        assert got.dtype == np.float32 and np.array_equal(got, a.astype(np.float32))
        assert got is not a  # a new array, never the caller's
    out = np.zeros(5, np.float32)
    assert p.dequantize(np.arange(5, dtype=np.int16), out=out) is out and out.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(TypeError, match="out: dtype float64"):
        p.dequantize(np.arange(5), out=np.zeros(5))
    with pytest.raises(ValueError, match="out: shape"):
        p.dequantize(np.arange(5), out=np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="q: dtype bool"):
        p.dequantize(np.ones(3, bool))
    with pytest.raises(ValueError, match="quant_type is NONE"):
        p.quantize(np.ones(3, np.float32))


def test_quant_params_from_a_model(open_runtime, qdq_path):
    """The model's own QuantizeLinear output equals quantizing its float output with the
    metadata's parameters (per channel along axis 1)."""
    rt = open_runtime(qdq_path)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, models.QDQ_X_SHAPE).astype(np.uint8)
    outs = rt.run({"x": x, "offset": np.zeros((1, 4, 1, 1), np.float32)})["qdq"]
    yq = rt.output_quants["qdq"]["y"]
    assert_bits_equal(yq.quantize(outs["yf"]), outs["y"])
    assert_bits_equal(yq.dequantize(outs["y"]), ref_dequantize(outs["y"], yq.scale, yq.zero_point, yq.axis))
    u8 = rt.output_quants["qdq"]["y_u8"]
    assert_bits_equal(u8.quantize(outs["yf"], dtype=np.uint8), outs["y_u8"])
    assert_bits_equal(rt.output_quants["qdq"]["yf"].dequantize(outs["yf"]), outs["yf"])  # NONE


def test_documentation():
    for cls in (QuantParams, SchedParam):
        assert cls.__doc__
    for name in ("scale", "zero_point", "quant_type", "axis", "dequantize", "quantize", "__eq__", "__repr__",
                 "__reduce__"):
        doc = inspect.getdoc(getattr(QuantParams, name))
        assert doc, name
        assert "e.g." in doc.lower() or name in ("__eq__", "__reduce__"), name
    for f in dataclasses.fields(SchedParam):
        assert f"{f.name}:" in SchedParam.__doc__ and "E.g." in SchedParam.__doc__.split(f"{f.name}:")[1]
    for fn in (hbm_runtime.dequantize, hbm_runtime.quantize):
        assert "Bit-identical" in fn.__doc__


# ---- errors: nothing is written, messages name the argument ---------------------------------


def _q():
    return np.arange(24, dtype=np.int32).reshape(2, 3, 4)


TYPE_ERRORS = [
    ("q: expected a numpy.ndarray, got list", lambda: dequantize([1, 2], 1.0)),
    ("q: expected a numpy.ndarray, got int", lambda: dequantize(5, 1.0)),
    ("q: dtype float32 is not supported", lambda: dequantize(np.zeros(3, np.float32), 1.0)),
    ("q: dtype int64 is not supported", lambda: dequantize(np.zeros(3, np.int64), 1.0)),
    ("q: dtype bool is not supported", lambda: dequantize(np.zeros(3, bool), 1.0)),
    ("q: dtype >i4 is not supported", lambda: dequantize(np.zeros(3, ">i4"), 1.0)),
    ("out: dtype float64 is not supported; expected float32",
     lambda: dequantize(_q(), 1.0, out=np.zeros((2, 3, 4)))),
    ("out: expected a numpy.ndarray, got list", lambda: dequantize(np.zeros(2, np.int8), 1.0, out=[0.0, 0.0])),
    ("scale: expected real numbers", lambda: dequantize(_q(), "0.5")),
    ("scale: expected real numbers", lambda: dequantize(_q(), None)),
    ("scale: expected real numbers", lambda: dequantize(_q(), True)),
    ("scale: expected real numbers", lambda: dequantize(_q(), 1j)),
    ("zero_point: expected integers, got float", lambda: dequantize(_q(), 1.0, 1.5)),
    ("zero_point: expected integers, got bool", lambda: dequantize(_q(), 1.0, True)),
    ("zero_point: expected integers, got str", lambda: dequantize(_q(), 1.0, "1")),
    ("axis: expected an int or None, got float", lambda: dequantize(_q(), [1.0, 2.0, 3.0], 0, 1.0)),
    ("axis: expected an int or None, got bool", lambda: dequantize(_q(), [1.0, 2.0, 3.0], 0, True)),
    ("axis: expected an int or None, got str", lambda: dequantize(_q(), [1.0, 2.0, 3.0], 0, "1")),
    ("x: dtype float64 is not supported; expected float32", lambda: quantize(np.zeros(3), 1.0)),
    ("x: dtype float16 is not supported", lambda: quantize(np.zeros(3, np.float16), 1.0)),
    ("x: dtype int8 is not supported", lambda: quantize(np.zeros(3, np.int8), 1.0)),
    ("x: expected a numpy.ndarray, got list", lambda: quantize([1.0], 1.0)),
    ("dtype: int64 is not supported", lambda: quantize(np.zeros(3, np.float32), 1.0, dtype=np.int64)),
    ("dtype: float32 is not supported", lambda: quantize(np.zeros(3, np.float32), 1.0, dtype=np.float32)),
    ("dtype: >i2 is not supported", lambda: quantize(np.zeros(3, np.float32), 1.0, dtype=">i2")),
    ("out: dtype float32 is not supported", lambda: quantize(np.zeros(3, np.float32), 1.0, out=np.zeros(3, np.float32))),
    ("out: dtype uint8 differs from dtype=int8",
     lambda: quantize(np.zeros(3, np.float32), 1.0, dtype=np.int8, out=np.zeros(3, np.uint8))),
    # the private functions take exact types, never converting
    ("scale: expected a 1-D float32 numpy.ndarray, got float",
     lambda: hbm_runtime._hbm_ext._dequantize(_q(), 1.0, np.zeros(0, np.int32), None, np.zeros((2, 3, 4), np.float32))),
    ("scale: expected a 1-D float32 numpy.ndarray, got dtype float64",
     lambda: hbm_runtime._hbm_ext._dequantize(_q(), np.ones(1), np.zeros(0, np.int32), None, np.zeros((2, 3, 4), np.float32))),
    ("zero_point: expected a 1-D int32 numpy.ndarray, got dtype int64",
     lambda: hbm_runtime._hbm_ext._quantize(np.zeros(2, np.float32), np.ones(1, np.float32), np.zeros(1, np.int64),
                                            None, np.zeros(2, np.int8))),
]


@pytest.mark.parametrize("message,call", TYPE_ERRORS, ids=[m for m, _ in TYPE_ERRORS])
def test_type_errors(message, call):
    with pytest.raises(TypeError) as e:
        call()
    assert message in str(e.value), str(e.value)


def _overlapping_out():
    buf = np.zeros(64, np.int32)
    return buf[:24].reshape(2, 3, 4), buf[8:32].view(np.float32).reshape(2, 3, 4)


def _dequantize_overlapping():
    q, out = _overlapping_out()
    return dequantize(q, 1.0, out=out)


def _unaligned(dtype, n):
    raw = np.zeros(n * np.dtype(dtype).itemsize + 1, np.uint8)
    return raw[1:].view(dtype)


VALUE_ERRORS = [
    ("axis: 3 is out of range for q of 3 dimensions", lambda o: dequantize(_q(), [1.0] * 4, 0, 3, out=o)),
    ("axis: -4 is out of range", lambda o: dequantize(_q(), [1.0] * 2, 0, -4, out=o)),
    ("axis: 1267650600228229401496703205376 is out of range", lambda o: dequantize(_q(), 1.0, 0, 2**100, out=o)),
    ("axis: 0 is out of range for q of 0 dimensions", lambda o: dequantize(np.array(1, np.int8), 1.0, 0, 0)),
    ("scale: expected 1 value (per tensor; pass axis for per-channel parameters), got 3",
     lambda o: dequantize(_q(), [1.0, 2.0, 3.0], out=o)),
    ("scale: expected 1 or 3 values (shape[1]), got 4", lambda o: dequantize(_q(), [1.0] * 4, 0, 1, out=o)),
    ("scale: expected 1 or 3 values (shape[1]), got 0", lambda o: dequantize(_q(), [], 0, 1, out=o)),
    ("scale: expected 1 value", lambda o: dequantize(_q(), [], out=o)),
    ("scale: expected a number or a 1-D sequence, got shape (1, 3)", lambda o: dequantize(_q(), [[1.0] * 3], 0, 1, out=o)),
    ("zero_point: expected none, 1 or 4 values (shape[2]), got 3", lambda o: dequantize(_q(), 1.0, [1, 2, 3], 2, out=o)),
    ("zero_point: expected none, 1 value", lambda o: dequantize(_q(), 1.0, [1, 2, 3], out=o)),
    ("zero_point: expected an integer or a 1-D sequence", lambda o: dequantize(_q(), 1.0, [[1]], out=o)),
    ("zero_point = 2147483648 is outside the int32 range", lambda o: dequantize(_q(), 1.0, 2**31, out=o)),
    ("zero_point[1] = -2147483649 is outside the int32 range", lambda o: dequantize(_q(), 1.0, [0, -2**31 - 1], out=o)),
    ("zero_point: 1267650600228229401496703205376 is outside the int32 range", lambda o: dequantize(_q(), 1.0, 2**100, out=o)),
    ("scale = nan is not finite", lambda o: dequantize(_q(), float("nan"), out=o)),
    ("scale[2] = inf is not finite", lambda o: dequantize(_q(), [1.0, 1.0, float("inf")], 0, 1, out=o)),
    ("scale = 1e+39 is outside the float32 range", lambda o: dequantize(_q(), 1e39, out=o)),
    ("out: shape (3, 2, 4) does not match q.shape (2, 3, 4)", lambda o: dequantize(_q(), 1.0, out=np.zeros((3, 2, 4), np.float32))),
    ("out: shape (2, 3) does not match q.shape (2, 3, 4)", lambda o: dequantize(_q(), 1.0, out=np.zeros((2, 3), np.float32))),
    ("out: the array is read-only", lambda o: dequantize(_q(), 1.0, out=np.broadcast_to(np.float32(0), (2, 3, 4)))),
    ("out: shares memory with q", lambda o: _dequantize_overlapping()),
    ("out: shares memory with q", lambda o: (lambda q: dequantize(q, 1.0, out=q.view(np.float32)))(_q())),
    ("out: strides (0, 16, 4) make several elements share memory",
     lambda o: dequantize(_q(), 1.0, out=np.lib.stride_tricks.as_strided(np.zeros(12, np.float32), (2, 3, 4), (0, 16, 4)))),
    ("out: strides (24, 8, 4) make several elements share memory",
     lambda o: dequantize(_q(), 1.0, out=np.lib.stride_tricks.as_strided(np.zeros(40, np.float32), (2, 3, 4), (24, 8, 4)))),
    ("q: the data is not aligned to its 4-byte elements", lambda o: dequantize(_unaligned(np.int32, 5), 1.0)),
    ("out: the data is not aligned to its 4-byte elements",
     lambda o: dequantize(np.zeros(5, np.int8), 1.0, out=_unaligned(np.float32, 5))),
    ("q: byte strides (6,) are not multiples of the 4-byte element size",
     lambda o: dequantize(np.lib.stride_tricks.as_strided(np.zeros(10, np.int32), (3,), (6,)), 1.0)),
    # quantize
    ("scale = 0: expected a finite, non-zero value", lambda o: quantize(np.zeros(3, np.float32), 0.0)),
    ("scale[1] = -0: expected a finite, non-zero value", lambda o: quantize(np.zeros((2, 3), np.float32), [1.0, -0.0], 0, 0)),
    ("scale = inf: expected a finite, non-zero value", lambda o: quantize(np.zeros(3, np.float32), np.inf)),
    ("scale = nan: expected a finite, non-zero value", lambda o: quantize(np.zeros(3, np.float32), np.nan)),
    ("zero_point = 128 is outside the range of int8 [-128, 127]", lambda o: quantize(np.zeros(3, np.float32), 1.0, 128)),
    ("zero_point[1] = -1 is outside the range of uint8 [0, 255]",
     lambda o: quantize(np.zeros((2, 3), np.float32), 1.0, [0, -1], 0, dtype=np.uint8)),
    ("zero_point = -1 is outside the range of uint32 [0, 4294967295]",
     lambda o: quantize(np.zeros(3, np.float32), 1.0, -1, dtype=np.uint32)),
    ("zero_point = 65536 is outside the range of uint16 [0, 65535]",
     lambda o: quantize(np.zeros(3, np.float32), 1.0, 65536, dtype=np.uint16)),
    ("axis: 1 is out of range for x of 1 dimension", lambda o: quantize(np.zeros(3, np.float32), [1.0] * 3, 0, 1)),
    ("out: shares memory with x",
     lambda o: (lambda x: quantize(x, 1.0, out=x.view(np.int32)))(np.zeros(3, np.float32))),
    ("out: shape (4,) does not match x.shape (3,)", lambda o: quantize(np.zeros(3, np.float32), 1.0, out=np.zeros(4, np.int8))),
]


@pytest.mark.parametrize("message,call", VALUE_ERRORS, ids=[m for m, _ in VALUE_ERRORS])
def test_value_errors(message, call):
    out = np.full((2, 3, 4), 7.0, np.float32)
    with pytest.raises(ValueError) as e:
        call(out)
    assert message in str(e.value), str(e.value)
    assert isinstance(e.value, hbm_runtime.InvalidArgumentError)
    assert (out == 7.0).all(), "out was written before the error"


def test_errors_leave_out_untouched():
    """Checks that need the values (a zero scale in the last channel) run before any write."""
    x = np.ones((4, 1000), np.float32)
    out = np.full((4, 1000), 99, np.int8)
    with pytest.raises(ValueError, match=r"scale\[3\] = 0"):
        quantize(x, [1.0, 1.0, 1.0, 0.0], 0, 0, out=out)
    with pytest.raises(ValueError, match=r"zero_point\[3\] = 200"):
        quantize(x, 1.0, [0, 0, 0, 200], 0, out=out)
    assert (out == 99).all()


def test_private_functions_check_everything():
    """Called directly (no Python wrapper), hostile arguments are refused, never crash."""
    ext = hbm_runtime._hbm_ext
    f32, i32 = np.ones(1, np.float32), np.zeros(0, np.int32)
    q = np.zeros((2, 3), np.int8)
    with pytest.raises(TypeError, match="incompatible function arguments"):
        ext._dequantize(q, f32, i32, None, None)  # out is required
    with pytest.raises(TypeError, match="out: expected a numpy.ndarray, got bytearray"):
        ext._dequantize(q, f32, i32, None, bytearray(24))
    with pytest.raises(TypeError, match="q: expected a numpy.ndarray"):
        ext._dequantize(memoryview(b"abc"), f32, i32, None, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="scale: expected a 1-D float32 numpy.ndarray, got shape"):
        ext._dequantize(q, np.ones((1, 1), np.float32), i32, None, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="scale: expected 1 value"):
        ext._quantize(np.zeros(2, np.float32), np.zeros(0, np.float32), i32, None, np.zeros(2, np.int8))
    with pytest.raises(ValueError, match="axis: -3 is out of range"):
        ext._quantize(np.zeros((2, 2), np.float32), f32, i32, -3, np.zeros((2, 2), np.int8))
    # strided 1-D parameters are read element by element
    s = np.array([0.5, 0, 0.25, 0], np.float32)[::2]
    z = np.array([1, 0, 2, 0], np.int32)[::2]
    out = np.zeros((2, 3), np.float32)
    ext._dequantize(np.ones((2, 3), np.int8), s, z, 0, out)
    assert out.tolist() == [[0.0] * 3, [-0.25] * 3]


def test_docstring_examples():
    import doctest

    from hbm_runtime import _quantize, _types

    for module in (_quantize, _types):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0 and result.failed == 0, (module.__name__, result)


def test_signatures():
    assert list(inspect.signature(dequantize).parameters) == ["q", "scale", "zero_point", "axis", "out"]
    assert list(inspect.signature(quantize).parameters) == ["x", "scale", "zero_point", "axis", "dtype", "out"]
    assert list(inspect.signature(QuantParams.dequantize).parameters) == ["self", "q", "out"]
    assert list(inspect.signature(QuantParams.quantize).parameters) == ["self", "x", "dtype", "out"]
