"""hbm_runtime.bgr_to_nv12 / rgb_to_nv12: bit-identical to OpenCV's BGR/RGB -> I420 with the U
and V planes interleaved (the model zoo's conversion), for any image layout; writes straight
into caller-given planes (padded device buffers included) and nowhere else; every misuse is a
clear TypeError or ValueError."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import hbm_runtime
from hbm_runtime import bgr_to_nv12, rgb_to_nv12
from ucp_support import (YOLO, YOLO_FILE, assert_outputs_equal, expected_outputs, hbm_runtime_factory,  # noqa: F401
                         mem_addresses, model_file, parse_model_file, ucp, ucp_double)

cv2 = pytest.importorskip("cv2")

CONVERTERS = {"bgr": bgr_to_nv12, "rgb": rgb_to_nv12}
CV_CODES = {"bgr": cv2.COLOR_BGR2YUV_I420, "rgb": cv2.COLOR_RGB2YUV_I420}
SENTINEL = 0xA5


def reference(image: np.ndarray, order: str):
    """The model zoo's way: OpenCV's I420, then U and V interleaved. (H, W) and (H/2, W/2, 2)."""
    h, w = image.shape[:2]
    i420 = cv2.cvtColor(np.ascontiguousarray(image), CV_CODES[order]).reshape(h * w * 3 // 2)
    y = i420[: h * w].reshape(h, w)
    uv = i420[h * w:].reshape(2, h * w // 4).transpose(1, 0).reshape(h // 2, w // 2, 2)
    return y, uv


def assert_planes(y, uv, image, order, what=""):
    want_y, want_uv = reference(image, order)
    y2 = y.reshape(want_y.shape)
    uv2 = uv.reshape(want_uv.shape)
    for name, got, want in (("y", y2, want_y), ("uv", uv2, want_uv)):
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)
            first = tuple(bad[0])
            raise AssertionError(f"{what} {order}: {name} differs at {len(bad)} elements, first {first}: "
                                 f"got {got[first]}, expected {want[first]}")


def random_image(rng, h, w, low=0, high=256):
    return rng.integers(low, high, (h, w, 3), dtype=np.uint8)


def padded(shape, row_pad, fill=SENTINEL):
    """A view of `shape` (a y or uv plane, 4-D or plain) whose rows are padded by `row_pad`
    bytes, and the whole backing array (to look at the padding)."""
    row_axis = 1 if len(shape) == 4 else 0
    rows, row_bytes = shape[row_axis], int(np.prod(shape[row_axis + 1:]))
    backing = np.full((rows, row_bytes + row_pad), fill, np.uint8)
    view = backing[:, :row_bytes].reshape(shape)  # splits / adds axes only: still a view
    assert np.shares_memory(view, backing) and view.strides[row_axis] == row_bytes + row_pad
    return view, backing


# ---- bit-exactness ----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["bgr", "rgb"])
def test_every_24_bit_colour_is_bit_exact(order):
    """All 2**24 colours as Y, and (shifted so that each lands on an even row and column
    once) as the U,V of a 2x2 block."""
    c = np.arange(1 << 24, dtype=np.uint32)
    image = np.stack([c & 255, (c >> 8) & 255, c >> 16], axis=-1).astype(np.uint8).reshape(4096, 4096, 3)
    for dr in (0, 1):
        for dc in (0, 1):
            shifted = np.roll(image, (dr, dc), axis=(0, 1))
            y, uv = CONVERTERS[order](shifted)
            assert_planes(y, uv, shifted, order, f"all colours shifted {(dr, dc)}")


@pytest.mark.parametrize("order", ["bgr", "rgb"])
@pytest.mark.parametrize("hw", [(2, 2), (2, 4), (4, 2), (2, 1000), (1000, 2), (480, 640), (672, 672),
                                (1080, 1920), (510, 510), (512, 512), (514, 1026), (6, 1538)])
def test_sizes_bit_exact(order, hw):
    rng = np.random.default_rng(hw[0] * 7919 + hw[1])
    image = random_image(rng, *hw)
    y, uv = CONVERTERS[order](image)
    assert_planes(y, uv, image, order, f"{hw}")


@pytest.mark.parametrize("order", ["bgr", "rgb"])
def test_random_sizes_and_contents_bit_exact(order):
    rng = np.random.default_rng(12345)
    for _ in range(150):
        h, w = 2 * rng.integers(1, 160, size=2)
        low = int(rng.integers(0, 256))
        image = random_image(rng, h, w, low, int(rng.integers(low, 256)) + 1)
        y, uv = CONVERTERS[order](image)
        assert_planes(y, uv, image, order, f"{h}x{w} values {low}..")


@pytest.mark.parametrize("order", ["bgr", "rgb"])
@pytest.mark.parametrize("value", [0, 255, (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 255, 255), (255, 255, 0)])
def test_extreme_values_bit_exact(order, value):
    image = np.empty((64, 96, 3), np.uint8)
    image[...] = value
    y, uv = CONVERTERS[order](image)
    assert_planes(y, uv, image, order, f"constant {value}")


@pytest.mark.parametrize("order", ["bgr", "rgb"])
def test_checkerboards_of_extremes_bit_exact(order):
    rng = np.random.default_rng(5)
    image = (rng.integers(0, 2, (128, 130, 3)) * 255).astype(np.uint8)
    image[::2, ::2] = 255 - image[::2, ::2]
    y, uv = CONVERTERS[order](image)
    assert_planes(y, uv, image, order, "0/255")


def test_known_values():
    """Pins the formula itself: limited range BT.601, chroma of the top-left pixel."""
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 0] = (0, 0, 255)  # BGR red, the top-left pixel: it alone decides U and V
    image[1, 1] = (255, 255, 255)
    y, uv = bgr_to_nv12(image)
    assert y.reshape(-1).tolist() == [82, 16, 16, 235]
    assert uv.reshape(-1).tolist() == [90, 240]
    y, uv = rgb_to_nv12(image)
    assert y.reshape(-1).tolist() == [41, 16, 16, 235]
    assert uv.reshape(-1).tolist() == [240, 110]


# ---- image layouts ----------------------------------------------------------------------------

def _layouts(rng):
    big = random_image(rng, 300, 420)
    return {
        "crop": big[37:37 + 120, 51:51 + 250],
        "row-step": big[::2, :260],
        "col-step": big[:200, ::2],
        "flipped-rows": big[::-1, :300],
        "flipped-cols": big[:100, ::-1],
        "reversed-channels": big[:, :, ::-1],
        "reversed-channels-crop": big[3:103, 5:205, ::-1],
        "transposed": big[:200, :280].transpose(1, 0, 2),
        "fortran": np.asfortranarray(big[:100, :200]),
        "planar": np.moveaxis(np.ascontiguousarray(np.moveaxis(big[:64, :80], -1, 0)), 0, -1),
        "bgra": np.ascontiguousarray(np.concatenate([big[:90, :70], big[:90, :70, :1]], axis=-1))[:, :, :3],
        "broadcast-pixel": np.broadcast_to(np.array([10, 200, 30], np.uint8), (50, 64, 3)),
        "broadcast-row": np.broadcast_to(big[:1, :64], (40, 64, 3)),
        "unaligned": np.frombuffer(big.tobytes()[1:1 + 60 * 80 * 3], np.uint8).reshape(60, 80, 3),
    }


@pytest.mark.parametrize("order", ["bgr", "rgb"])
@pytest.mark.parametrize("layout", list(_layouts(np.random.default_rng(0))))
def test_strided_images_bit_exact(order, layout):
    image = _layouts(np.random.default_rng(99))[layout]
    before = image.copy()
    y, uv = CONVERTERS[order](image)
    assert_planes(y, uv, image, order, layout)
    np.testing.assert_array_equal(image, before)


def test_reversed_channels_is_the_other_order():
    image = random_image(np.random.default_rng(3), 64, 64)
    for a, b in ((bgr_to_nv12(image[..., ::-1]), rgb_to_nv12(image)),
                 (rgb_to_nv12(image[..., ::-1]), bgr_to_nv12(image))):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_random_crops_and_steps_bit_exact():
    rng = np.random.default_rng(77)
    big = random_image(rng, 200, 260)
    for _ in range(60):
        sr, sc = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        h, w = 2 * rng.integers(1, 200 // (2 * sr)), 2 * rng.integers(1, 260 // (2 * sc))
        r0, c0 = rng.integers(0, 200 - (h - 1) * sr), rng.integers(0, 260 - (w - 1) * sc)
        image = big[r0:r0 + (h - 1) * sr + 1:sr, c0:c0 + (w - 1) * sc + 1:sc]
        assert image.shape == (h, w, 3)
        order = "bgr" if rng.integers(0, 2) else "rgb"
        y, uv = CONVERTERS[order](image)
        assert_planes(y, uv, image, order, f"crop {image.shape} step {(sr, sc)}")


class _Interface:
    def __init__(self, arr):
        self._arr = arr
        self.__array_interface__ = arr.__array_interface__


class _Struct:
    def __init__(self, arr):
        self._arr = arr
        self.__array_struct__ = arr.__array_struct__


@pytest.mark.parametrize("wrap", [_Interface, _Struct], ids=["array_interface", "array_struct"])
def test_array_interface_exporters_are_read_in_place(wrap):
    image = random_image(np.random.default_rng(8), 40, 60)
    y, uv = bgr_to_nv12(wrap(image[:, 2:52]))
    assert_planes(y, uv, image[:, 2:52], "bgr", wrap.__name__)


def test_new_planes_are_fresh_contiguous_uint8():
    image = random_image(np.random.default_rng(1), 48, 64)
    y, uv = bgr_to_nv12(image)
    assert (y.shape, uv.shape) == ((1, 48, 64, 1), (1, 24, 32, 2))
    for a in (y, uv):
        assert a.dtype == np.uint8 and a.flags.c_contiguous and a.flags.writeable and a.flags.owndata
        assert not np.shares_memory(a, image)
    assert not np.shares_memory(y, uv)
    y2, uv2 = bgr_to_nv12(image)
    assert not np.shares_memory(y, y2) and not np.shares_memory(uv, uv2)


def test_the_input_is_never_written_and_no_reference_leaks():
    image = random_image(np.random.default_rng(2), 64, 80)
    image.setflags(write=False)  # a write would raise inside numpy, or show below
    before = image.copy()
    y, uv = np.zeros((1, 64, 80, 1), np.uint8), np.zeros((1, 32, 40, 2), np.uint8)
    refs = [sys.getrefcount(a) for a in (image, y, uv)]
    for _ in range(20):
        bgr_to_nv12(image)
        rgb_to_nv12(image, out=(y, uv))
    np.testing.assert_array_equal(image, before)
    assert [sys.getrefcount(a) for a in (image, y, uv)] == refs


# ---- out= ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["bgr", "rgb"])
@pytest.mark.parametrize("shapes", ["4d", "plain"])
@pytest.mark.parametrize("row_pad", [0, 1, 32, 64])
def test_out_padded_planes_written_in_place_padding_untouched(order, shapes, row_pad):
    h, w = 36, 50
    image = random_image(np.random.default_rng(row_pad), h, w)
    y_shape, uv_shape = ((1, h, w, 1), (1, h // 2, w // 2, 2)) if shapes == "4d" else ((h, w), (h // 2, w // 2, 2))
    y, y_back = padded(y_shape, row_pad)
    uv, uv_back = padded(uv_shape, row_pad)
    got = CONVERTERS[order](image, out=(y, uv))
    assert got[0] is y and got[1] is uv
    assert_planes(y, uv, image, order, f"out {shapes} pad {row_pad}")
    assert (y_back[:, w:] == SENTINEL).all() and (uv_back[:, w:] == SENTINEL).all(), "padding written"
    again = CONVERTERS[order](image, out=[y, uv])  # a list works too
    assert again[0] is y and again[1] is uv


def test_out_one_nv12_buffer_split_in_two_matches_the_model_zoo_layout():
    h, w = 120, 160
    image = random_image(np.random.default_rng(4), h, w)
    nv12 = np.zeros(h * w * 3 // 2, np.uint8)
    bgr_to_nv12(image, out=(nv12[: h * w].reshape(h, w), nv12[h * w:].reshape(h // 2, w // 2, 2)))
    i420 = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).reshape(-1)
    zoo = np.concatenate([i420[: h * w], i420[h * w:].reshape(2, -1).T.reshape(-1)])
    np.testing.assert_array_equal(nv12, zoo)


def test_out_strided_uv_view_writes_planar_i420():
    """A UV 'plane' whose channel stride jumps from the U plane to the V plane: any strides
    really are honoured (the result is OpenCV's own I420 buffer)."""
    h, w = 60, 84
    image = random_image(np.random.default_rng(6), h, w)
    i420 = np.full(h * w * 3 // 2, SENTINEL, np.uint8)
    quarter = h * w // 4
    uv = np.lib.stride_tricks.as_strided(i420[h * w:], shape=(h // 2, w // 2, 2), strides=(w // 2, 1, quarter),
                                         writeable=True)
    bgr_to_nv12(image, out=(i420[: h * w].reshape(1, h, w, 1), uv))
    np.testing.assert_array_equal(i420, cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).reshape(-1))


def test_out_flipped_and_transposed_planes():
    h, w = 40, 30
    image = random_image(np.random.default_rng(7), h, w)
    want_y, want_uv = reference(image, "bgr")
    y_back = np.zeros((w, h), np.uint8)
    uv_back = np.zeros((h // 2, w // 2, 2), np.uint8)
    y = y_back.T  # column-major destination
    uv = uv_back[::-1, ::-1]  # both axes reversed
    bgr_to_nv12(image, out=(y, uv))
    np.testing.assert_array_equal(y_back, want_y.T)
    np.testing.assert_array_equal(uv_back, want_uv[::-1, ::-1])


def test_out_may_share_a_buffer_with_the_image_without_overlapping():
    h, w = 20, 24
    buf = np.zeros(h * w * 3 + h * w + h * w // 2, np.uint8)
    image = buf[: h * w * 3].reshape(h, w, 3)
    image[...] = random_image(np.random.default_rng(9), h, w)
    y = buf[h * w * 3: h * w * 4].reshape(h, w)
    uv = buf[h * w * 4:].reshape(h // 2, w // 2, 2)
    before = image.copy()
    bgr_to_nv12(image, out=(y, uv))
    assert_planes(y, uv, before, "bgr", "shared buffer")
    np.testing.assert_array_equal(image, before)


# ---- errors -------------------------------------------------------------------------------------


def _raises(exc, fn, *mentions):
    with pytest.raises(exc) as e:
        fn()
    for m in mentions:
        assert m in str(e.value), f"{m!r} not in {str(e.value)!r}"
    return e.value


IMG = np.zeros((6, 8, 3), np.uint8)


def _planes(h=6, w=8):
    return np.zeros((1, h, w, 1), np.uint8), np.zeros((1, h // 2, w // 2, 2), np.uint8)


@pytest.mark.parametrize("fn", [bgr_to_nv12, rgb_to_nv12])
@pytest.mark.parametrize("bad, name", [(None, "None"), ([[1, 2, 3]], "list"), (3, "int"), ("img", "str"),
                                        (b"\0" * 12, "bytes"), (memoryview(b"\0" * 12), "memoryview")])
def test_image_of_wrong_type(fn, bad, name):
    _raises(TypeError, lambda: fn(bad), "image", name, "numpy.ndarray")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint16, np.int32, np.bool_, ">u2", "O"])
def test_image_of_wrong_dtype(dtype):
    bad = IMG.astype(dtype)
    _raises(TypeError, lambda: bgr_to_nv12(bad), "image", str(np.dtype(dtype)), "uint8")


@pytest.mark.parametrize("shape", [(6, 8), (6, 8, 4), (6, 8, 1), (1, 6, 8, 3), (6,), (6, 8, 3, 1)])
def test_image_of_wrong_shape(shape):
    _raises(ValueError, lambda: bgr_to_nv12(np.zeros(shape, np.uint8)), "image", "(H, W, 3)", str(shape))


@pytest.mark.parametrize("shape, words", [
    ((7, 8, 3), ["height 7 is odd"]),
    ((6, 9, 3), ["width 9 is odd"]),
    ((5, 3, 3), ["height 5 and width 3 are odd"]),
    ((1, 2, 3), ["height 1 is odd"]),
])
def test_odd_sizes(shape, words):
    _raises(ValueError, lambda: rgb_to_nv12(np.zeros(shape, np.uint8)), "image", *words, "even", str(shape))


@pytest.mark.parametrize("shape", [(0, 8, 3), (6, 0, 3), (0, 0, 3)])
def test_empty_images(shape):
    _raises(ValueError, lambda: bgr_to_nv12(np.zeros(shape, np.uint8)), "image", "> 0", str(shape))


@pytest.mark.parametrize("out, words", [
    (5, ["out", "pair", "int"]),
    ((np.zeros((1, 6, 8, 1), np.uint8),), ["out", "pair", "tuple of length 1"]),
    ((*_planes(), _planes()[0]), ["out", "tuple of length 3"]),
    ({"y": 1, "uv": 2}, ["out", "dict"]),
    ((None, _planes()[1]), ["out[0] (y)", "None"]),
    ((_planes()[0], None), ["out[1] (uv)", "None"]),
    ((None, None), ["out[0] (y)", "None"]),
    (([0] * 48, _planes()[1]), ["out[0] (y)", "numpy.ndarray", "list"]),
    ((_planes()[0], _Interface(_planes()[1])), ["out[1] (uv)", "numpy.ndarray", "_Interface"]),
    ((_planes()[0].astype(np.int8), _planes()[1]), ["out[0] (y)", "int8", "uint8"]),
    ((_planes()[0], _planes()[1].astype(np.float32)), ["out[1] (uv)", "float32", "uint8"]),
])
def test_out_of_wrong_type(out, words):
    _raises(TypeError, lambda: bgr_to_nv12(IMG, out=out), *words)


@pytest.mark.parametrize("which, shape", [
    (0, (1, 6, 8)), (0, (6, 8, 1)), (0, (1, 8, 6, 1)), (0, (2, 6, 8, 1)), (0, (48,)), (0, (1, 6, 8, 2)),
    (1, (1, 3, 4, 1)), (1, (3, 4, 1)), (1, (1, 4, 3, 2)), (1, (3, 8)), (1, (24,)), (1, (1, 6, 8, 2)),
])
def test_out_of_wrong_shape(which, shape):
    out = list(_planes())
    out[which] = np.zeros(shape, np.uint8)
    label = ["out[0] (y)", "out[1] (uv)"][which]
    expected = ["(1, 6, 8, 1) or (6, 8)", "(1, 3, 4, 2) or (3, 4, 2)"][which]
    _raises(ValueError, lambda: bgr_to_nv12(IMG, out=tuple(out)), label, expected, str(shape))


@pytest.mark.parametrize("which", [0, 1])
def test_out_read_only(which):
    out = list(_planes())
    out[which].setflags(write=False)
    _raises(ValueError, lambda: bgr_to_nv12(IMG, out=tuple(out)), ["out[0] (y)", "out[1] (uv)"][which], "read-only")
    assert not out[1 - which].any(), "the other plane was written before the check"


def test_out_broadcast_is_refused():
    y, uv = _planes()
    _raises(ValueError, lambda: bgr_to_nv12(IMG, out=(np.broadcast_to(y[:, :1], y.shape), uv)), "out[0] (y)",
            "read-only")
    as_strided = np.lib.stride_tricks.as_strided
    shared = as_strided(np.zeros(8, np.uint8), shape=(1, 6, 8, 1), strides=(0, 0, 1, 0), writeable=True)
    _raises(ValueError, lambda: bgr_to_nv12(IMG, out=(shared, uv)), "out[0] (y)", "share memory")
    # Interleaved rows: strides (4, 1) over a 3x4 plane put rows on top of each other.
    overlapping = as_strided(np.zeros(64, np.uint8), shape=(3, 4, 2), strides=(4, 2, 1), writeable=True)
    _raises(ValueError, lambda: bgr_to_nv12(IMG, out=(y, overlapping)), "out[1] (uv)", "share memory")
    assert not y.any()


def test_out_overlapping_the_image_or_each_other():
    h, w = 6, 8
    buf = np.zeros(h * w * 3 * 2, np.uint8)
    image = buf[: h * w * 3].reshape(h, w, 3)
    image[...] = 7
    y, uv = _planes()
    inside = buf[h * w: h * w * 2].reshape(h, w)  # within the image's bytes
    _raises(ValueError, lambda: bgr_to_nv12(image, out=(inside, uv)), "out[0] (y)", "image", "memory")
    straddling = buf[h * w * 3 - 10: h * w * 3 - 10 + h * w // 2].reshape(h // 2, w // 2, 2)
    _raises(ValueError, lambda: bgr_to_nv12(image, out=(y, straddling)), "out[1] (uv)", "image", "memory")
    both = np.zeros(h * w, np.uint8)
    _raises(ValueError, lambda: bgr_to_nv12(IMG, out=(both.reshape(h, w), both[: h * w // 2].reshape(3, 4, 2))),
            "out[0] (y)", "out[1] (uv)", "memory")
    same = image.reshape(1, h, w * 3, 1)[:, :, :w]
    _raises(ValueError, lambda: bgr_to_nv12(image, out=(same, uv)), "out[0] (y)", "image")
    assert (image == 7).all() and not y.any() and not uv.any()


def test_strides_out_of_range_are_refused_before_any_access():
    as_strided = np.lib.stride_tricks.as_strided
    base = np.zeros(64, np.uint8)
    huge = as_strided(base, shape=(4, 2, 3), strides=(2 ** 62, 3, 1))
    _raises(ValueError, lambda: bgr_to_nv12(huge), "image", "out of range")
    y = as_strided(base, shape=(6, 8), strides=(2 ** 62, 1), writeable=True)
    _raises(ValueError, lambda: bgr_to_nv12(IMG, out=(y, _planes()[1])), "out[0] (y)", "out of range")


def test_private_entry_points_check_everything_themselves():
    """The extension's functions are safe without the Python wrapper."""
    from hbm_runtime import _hbm_ext
    y, uv = _planes()
    _raises(TypeError, lambda: _hbm_ext._bgr_to_nv12(IMG, None, uv), "out[0] (y)", "None")
    _raises(TypeError, lambda: _hbm_ext._rgb_to_nv12(IMG, y, 3), "out[1] (uv)", "int")
    _raises(ValueError, lambda: _hbm_ext._bgr_to_nv12(np.zeros((3, 4, 3), np.uint8), None, None), "odd")
    got = _hbm_ext._bgr_to_nv12(IMG, y, uv)
    assert got[0] is y and got[1] is uv


# ---- GIL ----------------------------------------------------------------------------------------


def test_the_gil_is_released_while_converting():
    """With a switch interval far longer than the test, another thread can only run when this
    one releases the GIL: it must get to run while a conversion is in progress."""
    image = random_image(np.random.default_rng(11), 2048, 2048)
    y, uv = np.empty((2048, 2048), np.uint8), np.empty((1024, 1024, 2), np.uint8)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        for _ in range(20):
            phase, seen = ["before"], []
            gate = threading.Lock()
            gate.acquire()
            t = threading.Thread(target=lambda: (gate.acquire(), seen.append(phase[0])))
            t.start()  # blocks in gate.acquire(), without the GIL
            phase[0] = "converting"
            gate.release()  # the thread now waits for the GIL
            bgr_to_nv12(image, out=(y, uv))
            phase[0] = "after"
            t.join()
            if seen == ["converting"]:
                break
        else:
            pytest.fail(f"another thread never ran during a conversion (it saw {seen})")
    finally:
        sys.setswitchinterval(interval)


# ---- into a BPU model's own input buffers (UCP test double) -------------------------------------

YOLO_DEF = parse_model_file(YOLO_FILE).models[YOLO]
SQUARE = parse_model_file(model_file("square_nv12.hbm")).models["m_square"]


def _whole_rows(plane):
    """The plane's rows including their padding (the engine's buffer is rows * row stride)."""
    rows, stride = plane.shape[1], plane.strides[1]
    return np.lib.stride_tricks.as_strided(plane, shape=(rows, stride), strides=(stride, 1), writeable=True)


@pytest.mark.parametrize("order", ["bgr", "rgb"])
def test_convert_into_input_buffers_and_run(hbm_runtime_factory, ucp, order):
    rt = hbm_runtime_factory(str(YOLO_FILE))
    bufs = rt.input_buffers(YOLO)
    y, uv = bufs["data_y"], bufs["data_uv"]
    assert y.strides[1] > 672 and uv.strides[1] > 672, "the model's buffers are expected to be padded"
    y_rows, uv_rows = _whole_rows(y), _whole_rows(uv)
    y_rows[...] = SENTINEL
    uv_rows[...] = SENTINEL
    image = random_image(np.random.default_rng(21), 1000, 900)[100:772, 50:722]  # a crop
    got = CONVERTERS[order](image, out=(y, uv))
    assert got[0] is y and got[1] is uv
    assert_planes(y, uv, image, order, "input_buffers()")
    assert (y_rows[:, 672:] == SENTINEL).all() and (uv_rows[:, 672:] == SENTINEL).all(), "padding written"

    res = rt.run(bufs)
    want_y, want_uv = reference(image, order)
    feeds = {"data_y": want_y.reshape(1, 672, 672, 1), "data_uv": want_uv.reshape(1, 336, 336, 2)}
    assert_outputs_equal(res[YOLO], expected_outputs(YOLO_DEF, feeds), "converted inputs")
    # The inference read the buffers written above, without a copy.
    vir = mem_addresses(ucp.events())
    (infer,) = ucp.events("infer")
    assert [vir[m] for m in infer.ids("inputs")] == [y.ctypes.data, uv.ctypes.data]


def test_convert_into_small_square_model(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory(model_file("square_nv12.hbm"))
    bufs = rt.input_buffers()
    image = random_image(np.random.default_rng(22), 8, 8)
    bgr_to_nv12(image, out=(bufs["y"], bufs["uv"]))
    want_y, want_uv = reference(image, "bgr")
    feeds = {"y": want_y.reshape(1, 8, 8, 1), "uv": want_uv.reshape(1, 4, 4, 2)}
    assert_outputs_equal(rt.run(bufs)["m_square"], expected_outputs(SQUARE, feeds), "square")


def test_exported_from_the_package():
    assert hbm_runtime.bgr_to_nv12 is bgr_to_nv12 and hbm_runtime.rgb_to_nv12 is rgb_to_nv12
    assert {"bgr_to_nv12", "rgb_to_nv12"} <= set(hbm_runtime.__all__)
    for fn in (bgr_to_nv12, rgb_to_nv12):
        assert fn.__doc__ and "Returns" in fn.__doc__ and "Example" in fn.__doc__
