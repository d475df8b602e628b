"""Sysmem buffer sets of .hbm models: zero-copy inputs through input_buffers(), zero-copy
padded outputs that outlive the runtime, and buffer sets going back to the pool."""

from __future__ import annotations

import gc

import numpy as np
import onnx
import pytest

from hbm_runtime import HB_HBMRuntime
from ucp_support import (YOLO, YOLO_FILE, assert_outputs_equal, expected_outputs, hbm_runtime_factory,  # noqa: F401
                         mem_addresses, model_file, parse_model_file, random_inputs, settle, ucp,
                         ucp_double, yolo_inputs)

YOLO_DEF = parse_model_file(YOLO_FILE).models[YOLO]
MULTI = parse_model_file(model_file("multi.hbm")).models
SQUARE = parse_model_file(model_file("square_nv12.hbm")).models["m_square"]


def _infer_input_virs(ucp):
    """Virtual addresses of the inputs of each inference in the log, in order."""
    events = ucp.events()
    vir = mem_addresses(events)
    return [[vir[m] for m in e.ids("inputs")] for e in events if e.kind == "infer"]


def test_input_buffers_are_zero_copy_sysmem(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory(str(YOLO_FILE))
    bufs = rt.input_buffers(YOLO)
    assert list(bufs) == ["data_uv", "data_y"]  # name order, like every per-tensor dict
    y, uv = bufs["data_y"], bufs["data_uv"]
    assert (y.shape, y.strides, y.dtype) == ((1, 672, 672, 1), (473088, 704, 1, 1), np.uint8)
    assert (uv.shape, uv.strides, uv.dtype) == ((1, 336, 336, 2), (236544, 704, 2, 1), np.uint8)
    assert y.flags.writeable and uv.flags.writeable
    # They are the sysmem the library allocated (the malloc lines' virtual addresses).
    vir = set(mem_addresses(ucp.events()).values())
    assert y.ctypes.data in vir and uv.ctypes.data in vir

    feeds = yolo_inputs(seed=3)
    y[...] = feeds["data_y"]
    uv[...] = feeds["data_uv"]
    mallocs = ucp.stat("mallocs")
    res = rt.run(bufs)
    assert_outputs_equal(res[YOLO], expected_outputs(YOLO_DEF, feeds), "zero-copy inputs")
    # The inference read the very buffers the caller wrote: no other set, nothing allocated.
    assert _infer_input_virs(ucp) == [[y.ctypes.data, uv.ctypes.data]]
    assert ucp.stat("mallocs") == mallocs
    # ... and still flushed them CLEAN first.
    flushed = [e.int("mem") for e in ucp.events("flush") if e.f["flag"] == "CLEAN"]
    (infer,) = ucp.events("infer")
    assert sorted(flushed) == sorted(infer.ids("inputs"))


def test_held_buffers_in_use_are_copied_into_another_set(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory(model_file("square_nv12.hbm"))
    bufs = rt.input_buffers()
    held = [bufs["y"].ctypes.data, bufs["uv"].ctypes.data]
    first = random_inputs(SQUARE, 1)
    bufs["y"][...], bufs["uv"][...] = first["y"], first["uv"]
    out1 = rt.run(bufs)["m_square"]  # zero copy; its outputs keep that set busy
    second = random_inputs(SQUARE, 2)
    bufs["y"][...], bufs["uv"][...] = second["y"], second["uv"]
    out2 = rt.run(bufs)["m_square"]  # the set is busy: the arrays are copied into another one
    assert_outputs_equal(out1, expected_outputs(SQUARE, first), "first run")
    assert_outputs_equal(out2, expected_outputs(SQUARE, second), "second run")
    virs = _infer_input_virs(ucp)
    assert virs[0] == held and virs[1] != held and not set(virs[1]) & set(held)
    del out1, out2
    third = random_inputs(SQUARE, 3)
    bufs["y"][...], bufs["uv"][...] = third["y"], third["uv"]
    assert_outputs_equal(rt.run(bufs)["m_square"], expected_outputs(SQUARE, third), "third run")
    assert _infer_input_virs(ucp)[2] == held  # free again: zero copy again


def test_other_arrays_never_overwrite_held_buffers(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory(model_file("square_nv12.hbm"))
    bufs = rt.input_buffers()
    mine = random_inputs(SQUARE, 4)
    bufs["y"][...], bufs["uv"][...] = mine["y"], mine["uv"]
    for seed in (5, 6, 7):
        other = random_inputs(SQUARE, seed)
        assert_outputs_equal(rt.run(other)["m_square"], expected_outputs(SQUARE, other), f"seed {seed}")
    np.testing.assert_array_equal(bufs["y"], mine["y"])
    np.testing.assert_array_equal(bufs["uv"], mine["uv"])
    held = [bufs["y"].ctypes.data, bufs["uv"].ctypes.data]
    assert all(v != held for v in _infer_input_virs(ucp))


def test_buffers_of_two_held_sets_can_be_mixed(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory(model_file("square_nv12.hbm"))
    a, b = rt.input_buffers(), rt.input_buffers()
    assert a["y"].ctypes.data != b["y"].ctypes.data
    fa, fb = random_inputs(SQUARE, 8), random_inputs(SQUARE, 9)
    a["y"][...], a["uv"][...] = fa["y"], fa["uv"]
    b["y"][...], b["uv"][...] = fb["y"], fb["uv"]
    res = rt.run({"y": b["y"], "uv": a["uv"]})["m_square"]
    assert_outputs_equal(res, expected_outputs(SQUARE, {"y": fb["y"], "uv": fa["uv"]}), "mixed sets")


@pytest.mark.parametrize("make_view", [
    pytest.param(lambda y: np.swapaxes(y, 1, 2), id="transposed"),
    pytest.param(lambda y: np.broadcast_to(y[:, :1], y.shape), id="broadcast-row"),
])
def test_views_of_held_buffers_are_read_through_their_own_strides(hbm_runtime_factory, ucp, make_view):
    """A view of an input_buffers() array that starts at the same address is not the buffer:
    run() must use the view's elements (copying it), as for any non-contiguous array."""
    rt = hbm_runtime_factory(model_file("square_nv12.hbm"))
    bufs = rt.input_buffers()
    feeds = random_inputs(SQUARE, 10)
    bufs["y"][...], bufs["uv"][...] = feeds["y"], feeds["uv"]
    view = make_view(bufs["y"])
    assert view.shape == bufs["y"].shape and view.ctypes.data == bufs["y"].ctypes.data
    assert not np.array_equal(view, bufs["y"])
    res = rt.run({"y": view, "uv": bufs["uv"]})["m_square"]
    assert_outputs_equal(res, expected_outputs(SQUARE, {"y": np.ascontiguousarray(view), "uv": feeds["uv"]}),
                         "view of a held buffer")


def test_held_buffers_given_to_other_runtimes_and_engines_are_read_through_their_padding(
        hbm_runtime_factory, ucp, tmp_path):
    """One camera frame written into one model's input_buffers() and fed to a second runtime
    of the same file and to an .onnx model: both must see the frame, not the row padding."""
    rt = hbm_runtime_factory(model_file("square_nv12.hbm"))
    bufs = rt.input_buffers()
    assert bufs["y"].strides == (512, 64, 1, 1)  # rows padded from 8 to 64 bytes
    feeds = random_inputs(SQUARE, 15)
    bufs["y"][...], bufs["uv"][...] = feeds["y"], feeds["uv"]
    want = expected_outputs(SQUARE, feeds)

    other = hbm_runtime_factory(model_file("square_nv12.hbm"))
    assert_outputs_equal(other.run(bufs)["m_square"], want, "second runtime")
    swapped = hbm_runtime_factory(model_file("square_nv12.hbm"))
    swapped_bufs = swapped.input_buffers()  # registered too, but not this runtime's memory
    swapped_bufs["uv"][...] = random_inputs(SQUARE, 16)["uv"]
    assert_outputs_equal(swapped.run({"y": bufs["y"], "uv": swapped_bufs["uv"]})["m_square"],
                         expected_outputs(SQUARE, {"y": feeds["y"], "uv": random_inputs(SQUARE, 16)["uv"]}),
                         "held buffers of two runtimes mixed")

    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["same"])], "plane",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.UINT8, [1, 8, 8, 1])],
        [onnx.helper.make_tensor_value_info("same", onnx.TensorProto.UINT8, [1, 8, 8, 1])])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]),
              tmp_path / "plane.onnx")
    mixed = hbm_runtime_factory([model_file("square_nv12.hbm"), str(tmp_path / "plane.onnx")])
    res = mixed.run({"m_square": bufs, "plane": {"x": bufs["y"]}})
    assert_outputs_equal(res["m_square"], want, "mixed runtime, .hbm model")
    np.testing.assert_array_equal(res["plane"]["same"], feeds["y"])
    assert rt.run(bufs)["m_square"]["ys"].shape == want["ys"].shape  # the owner still zero-copies
    assert _infer_input_virs(ucp)[-1] == [bufs["y"].ctypes.data, bufs["uv"].ctypes.data]


def test_input_buffers_refused_for_dynamic_or_unsupported_inputs(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory([model_file("multi.hbm"), model_file("bad_stride.hbm")])
    with pytest.raises(ValueError, match="m_dyn"):
        rt.input_buffers("m_dyn")
    with pytest.raises(ValueError, match="last dimension of stride cannot be dynamic"):
        rt.input_buffers("m_bad_stride")
    with pytest.raises(ValueError, match="last dimension of stride cannot be dynamic"):
        rt.run({"x": np.zeros((2, 3), np.uint8)}, model_name="m_bad_stride")
    bufs = rt.input_buffers("m_add")  # dense inputs: plain arrays
    assert bufs["a"].strides == (12, 4) and bufs["b"].shape == (2, 3)


def test_outputs_outlive_the_runtime(ucp):
    rt = HB_HBMRuntime(model_file("multi.hbm"))
    feeds = random_inputs(MULTI["m_add"], 11)
    want = expected_outputs(MULTI["m_add"], feeds)
    res = rt.run(feeds, model_name="m_add")
    outs = res["m_add"]
    assert outs["z"].strides == (64, 2)  # padded output, zero copy
    rt.close()
    del rt, res
    settle()
    assert ucp.own_live_packed() == 0  # the models are gone ...
    live = ucp.own_live_mems()  # ... but not the memory the arrays point into
    assert outs["y"].ctypes.data in live.values() and outs["z"].ctypes.data in live.values()
    # Other memory traffic must not touch them.
    rt2 = HB_HBMRuntime(model_file("multi.hbm"))
    other = random_inputs(MULTI["m_add"], 12)
    assert_outputs_equal(rt2.run(other, model_name="m_add")["m_add"], expected_outputs(MULTI["m_add"], other))
    rt2.close()
    del rt2
    settle()
    assert_outputs_equal(outs, want, "outputs after close")
    outs["y"][0, 0] = 42.0  # still writable memory of ours
    assert outs["y"][0, 0] == 42.0
    z = outs.pop("z")
    del outs
    settle()
    assert z.ctypes.data in ucp.own_live_mems().values()  # one output keeps its whole set
    np.testing.assert_array_equal(z, want["z"])
    del z
    settle()
    assert ucp.own_live_mems() == {}
    assert ucp.stat("live_tasks") == ucp.leaked_tasks


def test_input_buffers_outlive_the_runtime_then_are_freed(ucp):
    rt = HB_HBMRuntime(model_file("multi.hbm"))
    bufs = rt.input_buffers("m_nv12")
    feeds = random_inputs(MULTI["m_nv12"], 14)
    bufs["y"][...], bufs["uv"][...] = feeds["y"], feeds["uv"]
    rt.close()
    del rt
    settle()
    assert ucp.own_live_packed() == 0
    assert bufs["y"].ctypes.data in ucp.own_live_mems().values()
    np.testing.assert_array_equal(bufs["y"], feeds["y"])
    np.testing.assert_array_equal(bufs["uv"], feeds["uv"])
    del bufs
    settle()
    # Runtime closed and arrays gone: nothing may keep the model's sysmem.
    assert ucp.own_live_mems() == {}


def test_buffer_sets_return_to_the_pool(hbm_runtime_factory, ucp):
    rt = hbm_runtime_factory(model_file("multi.hbm"))
    model = MULTI["m_nv12"]
    feeds = random_inputs(model, 13)
    want = expected_outputs(model, feeds)
    assert_outputs_equal(rt.run(feeds, model_name="m_nv12")["m_nv12"], want)
    settle()
    one_set = ucp.own_live_mems()
    assert len(one_set) == 3  # y, uv, out
    mallocs = ucp.stat("mallocs")
    for i in range(100):
        out = rt.run(feeds, model_name="m_nv12")["m_nv12"]
        assert out["out"].strides == (1536, 384, 64, 4)
        if i % 10 == 0:
            assert_outputs_equal(out, want)
        del out
    settle()
    assert ucp.own_live_mems() == one_set and ucp.stat("mallocs") == mallocs

    # Outputs kept alive hold their sets, up to HBM_UCP_POOL_SETS (4); the 5th run's set is
    # temporary (outputs copied to host memory, sysmem freed). Once they die the pool
    # serves new runs again.
    kept = [rt.run(feeds, model_name="m_nv12") for _ in range(5)]
    assert len(ucp.own_live_mems()) == 4 * 3
    for r in kept:
        assert_outputs_equal(r["m_nv12"], want)
    del kept, r
    settle()
    mallocs = ucp.stat("mallocs")
    for _ in range(20):
        rt.run(feeds, model_name="m_nv12")
    assert ucp.stat("mallocs") == mallocs and len(ucp.own_live_mems()) == 4 * 3  # reused
    rt.close()
    settle()
    assert ucp.own_live_mems() == {} and ucp.own_live_packed() == 0


@pytest.mark.parametrize("reported", ["library's padded size", "0 (left empty)"])
def test_inputs_with_filled_strides_work_whatever_alignedbytesize_says(hbm_runtime_factory, ucp, tmp_path, reported):
    # A real library reports the padded size of -1-stride inputs (the double does so by
    # default); one that leaves alignedByteSize 0 must work the same: the engine sizes the
    # buffer from the strides it fills.
    text = open(model_file("square_nv12.hbm")).read()
    if reported.startswith("0"):
        text = text.replace("strides=-1,-1,1,1", "strides=-1,-1,1,1 aligned=0")
        text = text.replace("strides=-1,-1,2,1", "strides=-1,-1,2,1 aligned=0")
        assert text.count("aligned=0") == 2
    path = tmp_path / "square.hbm"
    path.write_text(text)
    rt = hbm_runtime_factory(str(path))
    bufs = rt.input_buffers("m_square")
    assert bufs["y"].shape == (1, 8, 8, 1) and bufs["y"].strides == (512, 64, 1, 1)
    assert bufs["uv"].shape == (1, 4, 4, 2) and bufs["uv"].strides == (256, 64, 2, 1)
    for seed in range(3):
        feeds = random_inputs(SQUARE, seed)
        for name, arr in feeds.items():
            bufs[name][...] = arr
        assert_outputs_equal(rt.run(bufs, "m_square")["m_square"], expected_outputs(SQUARE, feeds), reported)
        assert_outputs_equal(rt.run(feeds)["m_square"], expected_outputs(SQUARE, feeds), reported)
