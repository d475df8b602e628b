"""Both hbDNNTensorProperties layouts (10 and 8 dims) give the same metadata and outputs,
and missing or incomplete libraries are reported as EngineUnavailableError. Each of these
needs its own process: the engine reads HBM_UCP_LIB_DIR once per process."""

from __future__ import annotations

import ctypes
import json
import shutil
import textwrap

import numpy as np
import pytest

from ucp_support import (build_double, hbm_runtime_factory, layout_report, model_file, python_env,  # noqa: F401
                         run_python, ucp, ucp_double)

LAYOUT_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import ucp_support
    double = ucp_support.Double(ucp_support.DoubleBuild(int(sys.argv[1]), ucp_support.Path(sys.argv[2])))
    assert double.dims() == int(sys.argv[1]), double.dims()
    meta, outputs = ucp_support.layout_report()
    meta["dims"] = double.dims()
    meta["live_tasks"] = double.stat("live_tasks")
    with open(sys.argv[3] + "/meta.json", "w") as f:
        json.dump(meta, f)
    np.savez(sys.argv[3] + "/outputs.npz", **outputs)
""")


def _child(code: str, args, env):
    return run_python("import sys; sys.argv = [''] + " + repr([str(a) for a in args]) + "\n" + code, env)


def test_both_layouts_give_the_same_metadata_and_outputs(ucp, tmp_path):
    meta10, out10 = layout_report()
    build8 = build_double(8)
    _child(LAYOUT_CHILD, [8, build8.build_dir, tmp_path], python_env(build8.lib_dir))
    meta8 = json.loads((tmp_path / "meta.json").read_text())
    assert meta8.pop("dims") == 8
    assert meta8.pop("live_tasks") == 0
    assert meta8 == json.loads(json.dumps(meta10))
    with np.load(tmp_path / "outputs.npz") as out8:
        assert sorted(out8.files) == sorted(out10)
        for key, arr in out10.items():
            assert out8[key].dtype == arr.dtype and np.array_equal(out8[key], arr), key
    assert meta10["output_strides"]["yolov5x_672x672_nv12"]["output"] == [7225344, 86016, 1024, 4]


def test_the_10_dim_layout_in_a_fresh_process(tmp_path):
    """The same report from a child built like the 8-dim one (the layout probe decides per process)."""
    build10 = build_double(10)
    _child(LAYOUT_CHILD, [10, build10.build_dir, tmp_path], python_env(build10.lib_dir))
    assert json.loads((tmp_path / "meta.json").read_text())["dims"] == 10


MISSING_CHILD = textwrap.dedent(r"""
    import ctypes, json, os, re, sys
    import numpy as np
    import onnx
    from onnx import TensorProto, helper
    from hbm_runtime import EngineUnavailableError, HB_HBMRuntime
    import ucp_support

    report = {}
    for attempt in ("first", "second"):  # a failed engine load is retried, and fails again
        try:
            HB_HBMRuntime(ucp_support.model_file("second.hbm"))
            report[attempt] = None
        except EngineUnavailableError as e:
            report[attempt] = str(e)
    # Which of the symbols the message names the directory's libdnn.so really exports.
    dnn = os.path.join(os.environ["HBM_UCP_LIB_DIR"], "libdnn.so")
    report["exported"] = {}
    if report["first"] and os.path.exists(dnn):
        lib = ctypes.CDLL(dnn)
        report["exported"] = {s: hasattr(lib, s) for s in re.findall(r"\bhbDNN\w+", report["first"])}

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["m"]), helper.make_node("Add", ["m", "one"], ["y"])], "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]), helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = sys.argv[1] + "/affine.onnx"
    onnx.save(model, path)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    rt = HB_HBMRuntime(path)
    report["onnx"] = rt.run(x)["affine"]["y"].tolist()
    report["engines"] = sorted(rt.engine_versions)
    try:
        HB_HBMRuntime([path, ucp_support.model_file("second.hbm")])
        report["mixed"] = None
    except EngineUnavailableError as e:
        report["mixed"] = str(e)
    print(json.dumps(report))
""")


def _missing_report(lib_dir, tmp_path):
    proc = _child(MISSING_CHILD, [tmp_path], python_env(lib_dir))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_onnx_still_works(report):
    assert report["onnx"] == (np.arange(6, dtype=np.float32).reshape(2, 3) * 2 + 1).tolist()
    assert "ucp" not in report["engines"]
    assert report["mixed"] is not None


def test_missing_libraries(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    report = _missing_report(empty, tmp_path)
    for attempt in ("first", "second", "mixed"):
        msg = report[attempt]
        assert msg is not None, attempt
        assert "libhbucp.so" in msg and "HBM_UCP_LIB_DIR" in msg, msg
        assert str(empty) in msg, msg  # where it looked
    _assert_onnx_still_works(report)


def test_missing_libdnn(tmp_path):
    only_ucp = tmp_path / "only_ucp"
    only_ucp.mkdir()
    shutil.copy(build_double(10).lib_dir / "libhbucp.so", only_ucp)
    report = _missing_report(only_ucp, tmp_path)
    msg = report["first"]
    assert msg is not None and "libdnn.so" in msg and "HBM_UCP_LIB_DIR" in msg and str(only_ucp) in msg, msg
    assert "cannot load libhbucp.so" not in msg
    _assert_onnx_still_works(report)


def test_libdnn_missing_a_symbol(ucp, tmp_path):
    broken = build_double(10).broken_dir
    report = _missing_report(broken, tmp_path)
    msg = report["first"]
    assert msg is not None
    assert "libdnn.so" in msg and "HBM_UCP_LIB_DIR" in msg, msg
    # It names a symbol the broken library lacks (and the complete one has).
    named = report["exported"]
    assert named and not all(named.values()), msg
    missing = next(s for s, there in named.items() if not there)
    assert hasattr(ucp.lib, missing) or hasattr(ctypes.CDLL(str(ucp.lib_dir / "libdnn.so")), missing)
    _assert_onnx_still_works(report)
