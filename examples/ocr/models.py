"""Where the OCR example's models come from: a folder you give, or the PP-OCR models shipped
inside the ``rapidocr-onnxruntime`` 1.4.4 wheel, downloaded once with pip into a cache folder.

Nothing here is ever committed to the repository: the wheel (15 MB) is fetched with
``pip download rapidocr-onnxruntime==1.4.4 --no-deps``, checked against its pinned SHA-256,
and unpacked whole into ``<cache>/rapidocr_onnxruntime-1.4.4/`` (the models are under
``rapidocr_onnxruntime/models/`` there; the Python package next to them is what the test
compares against).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple, Optional, Union

WHEEL_PROJECT = "rapidocr-onnxruntime"
WHEEL_VERSION = "1.4.4"
WHEEL_NAME = "rapidocr_onnxruntime-1.4.4-py3-none-any.whl"
WHEEL_SHA256 = "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
UNPACKED_NAME = "rapidocr_onnxruntime-1.4.4"

PathLike = Union[str, "os.PathLike[str]"]


class ModelFetchError(RuntimeError):
    """The wheel could not be downloaded (no registry, no pip, pip failed)."""


class OcrModels(NamedTuple):
    """Paths of the three PP-OCR models."""
    det: Path
    cls: Path
    rec: Path


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/hbm_runtime`` (``~/.cache/hbm_runtime`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hbm_runtime"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_wheel(cache_dir: PathLike, *, timeout_s: float = 300.0) -> Path:
    """Returns ``<cache_dir>/rapidocr_onnxruntime-1.4.4-py3-none-any.whl``, downloading it with
    pip first when it is not there. Raises ModelFetchError when it cannot be downloaded and
    ValueError when a file's SHA-256 is not the pinned one."""
    cache = Path(cache_dir)
    wheel = cache / WHEEL_NAME
    if wheel.is_file():
        digest = _sha256(wheel)
        if digest != WHEEL_SHA256:
            raise ValueError(f"{wheel}: SHA-256 {digest}, expected {WHEEL_SHA256}; delete the file "
                             "to download it again")
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", f"{WHEEL_PROJECT}=={WHEEL_VERSION}",
               "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "--timeout", "20", "--retries", "1", "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ModelFetchError(f"could not run {' '.join(cmd)}: {exc}") from exc
        got = Path(tmp) / WHEEL_NAME
        if proc.returncode != 0 or not got.is_file():
            tail = " / ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            raise ModelFetchError(f"pip download {WHEEL_PROJECT}=={WHEEL_VERSION} failed "
                                  f"(exit {proc.returncode}): {tail}")
        digest = _sha256(got)
        if digest != WHEEL_SHA256:
            raise ValueError(f"downloaded {WHEEL_NAME} has SHA-256 {digest}, expected {WHEEL_SHA256}")
        os.replace(got, wheel)  # atomic: a concurrent run sees the whole file or none
    return wheel


def unpacked_wheel(cache_dir: PathLike, *, timeout_s: float = 300.0) -> Path:
    """Returns ``<cache_dir>/rapidocr_onnxruntime-1.4.4``: the wheel unpacked (fetched first if
    needed). The folder appears whole or not at all, so concurrent runs can share a cache."""
    cache = Path(cache_dir)
    dest = cache / UNPACKED_NAME
    if (dest / "rapidocr_onnxruntime" / "models").is_dir():
        return dest
    wheel = fetch_wheel(cache, timeout_s=timeout_s)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".unpack-"))
    try:
        tmp.chmod(0o755)  # mkdtemp's folder is private; the cache is not
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)  # zipfile drops absolute paths and ".." components
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / "rapidocr_onnxruntime" / "models").is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def find_models(models_dir: PathLike) -> OcrModels:
    """The detection, direction-classifier and recognition ``.onnx`` files of a folder: the
    one file whose name contains ``det``, ``cls`` and ``rec`` respectively."""
    folder = Path(models_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"models folder {folder} does not exist")
    found = {}
    for role in ("det", "cls", "rec"):
        hits = sorted(p for p in folder.glob("*.onnx") if role in p.name)
        if len(hits) != 1:
            what = "none" if not hits else f"{len(hits)} ({', '.join(p.name for p in hits)})"
            raise FileNotFoundError(f"{folder}: expected one .onnx file with '{role}' in its name, "
                                    f"found {what}")
        found[role] = hits[0]
    return OcrModels(**found)


def ensure_models(models_dir: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None) -> OcrModels:
    """The models of ``models_dir`` when given; otherwise those of the rapidocr-onnxruntime
    wheel in ``cache_dir`` (default: default_cache_dir()), downloaded if needed."""
    if models_dir is not None:
        return find_models(models_dir)
    root = unpacked_wheel(cache_dir if cache_dir is not None else default_cache_dir())
    return find_models(root / "rapidocr_onnxruntime" / "models")
