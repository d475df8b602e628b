"""Shared fixtures of the hbm_runtime API tests: generated model files and runtimes."""

from __future__ import annotations

import gc
from typing import List

import pytest

import models
from hbm_runtime import HB_HBMRuntime, host_cores, set_host_cores


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def lanenet_path(model_dir) -> str:
    return models.lanenet(model_dir / f"{models.LANENET_NAME}.onnx")


@pytest.fixture(scope="session")
def nv12_path(model_dir) -> str:
    return models.nv12(model_dir / f"{models.NV12_NAME}.onnx")


@pytest.fixture(scope="session")
def qdq_path(model_dir) -> str:
    return models.qdq(model_dir / "qdq.onnx")


@pytest.fixture(scope="session")
def qdq_nozp_path(model_dir) -> str:
    return models.qdq_no_zero_point(model_dir / "qdq_nozp.onnx")


@pytest.fixture(scope="session")
def dyn_path(model_dir) -> str:
    return models.dynamic_batch(model_dir / "dyn.onnx")


@pytest.fixture(scope="session")
def dyn_seq_path(model_dir) -> str:
    return models.dynamic_seq(model_dir / "dyn_seq.onnx")


@pytest.fixture(scope="session")
def mlp_path(model_dir) -> str:
    return models.mlp(model_dir / "mlp.onnx")


@pytest.fixture(scope="session")
def single_path(model_dir) -> str:
    return models.single(model_dir / "single.onnx")


@pytest.fixture(scope="session")
def tiny_path(model_dir) -> str:
    return models.tiny(model_dir / "tiny.onnx")


@pytest.fixture(scope="session")
def dtypes_path(model_dir) -> str:
    return models.dtypes(model_dir / "dtypes.onnx")


@pytest.fixture
def open_runtime():
    """open_runtime(files) -> HB_HBMRuntime, closed at the end of the test."""
    opened: List[HB_HBMRuntime] = []

    def _open(files, **kwargs) -> HB_HBMRuntime:
        rt = HB_HBMRuntime(files, **kwargs)
        opened.append(rt)
        return rt

    yield _open
    for rt in opened:
        rt.close()
    opened.clear()
    gc.collect()


@pytest.fixture
def lanenet_rt(open_runtime, lanenet_path):
    return open_runtime(lanenet_path)


@pytest.fixture
def nv12_rt(open_runtime, nv12_path):
    return open_runtime(nv12_path)


@pytest.fixture
def two_cores():
    """The seed's examples bind models to cores [0, 1]: make sure the host scheduler has
    at least two virtual cores (restored afterwards)."""
    before = host_cores()
    if before < 2:
        set_host_cores(2)
    yield host_cores()
    if host_cores() != before:
        set_host_cores(before)
