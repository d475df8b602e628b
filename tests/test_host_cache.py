"""The host engine's compiled-model cache (HBM_RUNTIME_CACHE_DIR) and weight sharing between
threads.

Every load runs in a child process, as a cache is shared between processes and read when a
model is loaded. Assertions are on observable facts only (files in the cache directory and
their identity, results equal to onnxruntime's, messages), never on load times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import models

# Loads argv[1], runs it on the inputs in argv[2] (.npz), saves the outputs to argv[3] (.npz)
# and prints one JSON line. argv[4], when given, is a file to wait for before loading (so that
# several children load at once).
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np
    import hbm_runtime
    path, inputs, outputs = sys.argv[1:4]
    if len(sys.argv) > 4:
        while not os.path.exists(sys.argv[4]):
            time.sleep(0.005)
    feeds = dict(np.load(inputs))
    try:
        rt = hbm_runtime.HB_HBMRuntime(path)
        (m,) = rt.model_names
        res = rt.run(feeds)[m]
    except (ValueError, hbm_runtime.HBMRuntimeError) as e:
        print(json.dumps({"status": "error", "type": type(e).__name__, "message": str(e)}))
        sys.exit(0)
    np.savez(outputs, **res)
    print(json.dumps({"status": "ok", "outputs": list(res)}))
    """
)


def _env(cache_dir) -> dict:
    env = dict(os.environ)
    env.pop("HBM_RUNTIME_CACHE_DIR", None)
    if cache_dir is not None:
        env["HBM_RUNTIME_CACHE_DIR"] = os.fspath(cache_dir)
    return env


def _start(path, feeds_file, out_file, cache_dir, go_file=None) -> subprocess.Popen:
    args = [sys.executable, "-c", CHILD, os.fspath(path), os.fspath(feeds_file), os.fspath(out_file)]
    if go_file is not None:
        args.append(os.fspath(go_file))
    return subprocess.Popen(args, env=_env(cache_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, out_file):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["status"] == "ok", report
    with np.load(out_file) as z:
        return {k: z[k] for k in report["outputs"]}, err


def _load_and_run(tmp_path, path, cache_dir, tag="run"):
    """Runs `path` in a child process with the cache at `cache_dir` (None: off); returns
    (outputs, stderr) after checking the outputs against onnxruntime's."""
    models._sessions.pop(os.fspath(path), None)
    feeds = models.random_feeds(path, seed=3)
    feeds_file = tmp_path / f"{tag}_in.npz"
    out_file = tmp_path / f"{tag}_out.npz"
    np.savez(feeds_file, **feeds)
    got, err = _finish(_start(path, feeds_file, out_file, cache_dir), out_file)
    models._sessions.pop(os.fspath(path), None)  # the file may have changed since the last session
    models.assert_outputs_match(got, models.ort_reference(path, feeds), tag)
    return got, err


def _entries(cache_dir):
    return sorted(p for p in os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []


def _blobs(entry_dir):
    return sorted(n for n in os.listdir(entry_dir) if n.endswith(".blob"))


def _leftovers(cache_dir):
    found = []
    for root, dirs, files in os.walk(cache_dir):
        found += [os.path.join(root, n) for n in dirs + files if n.startswith(".")]
    return found


def _mlp(path, hidden: int, seed: int) -> str:
    """x[1, 64] -> MatMul(64 x hidden) -> Relu -> MatMul(hidden x 10): hidden sets the weight size."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((64, hidden)) / 8).astype(np.float32)
    w2 = (rng.standard_normal((hidden, 10)) / np.sqrt(hidden)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = models.IR_VERSION
    onnx.save(model, os.fspath(path))
    return os.fspath(path)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    return models.lanenet(tmp_path_factory.mktemp("cache_models") / "lanenet.onnx")


@pytest.fixture(scope="module")
def large_model(tmp_path_factory):
    # About 5 MB of weights: compiled once with one stream per core (shared weights).
    return _mlp(tmp_path_factory.mktemp("cache_models") / "large.onnx", 20000, seed=1)


@pytest.mark.parametrize("which", ["small_model", "large_model"])
def test_cache_is_written_then_read(request, tmp_path, which):
    path = request.getfixturevalue(which)
    cache = tmp_path / "cache"
    _load_and_run(tmp_path, path, cache, "first")
    (entry,) = _entries(cache)
    entry_dir = cache / entry
    with open(path, "rb") as a, open(entry_dir / "model.onnx", "rb") as b:
        assert a.read() == b.read()
    blobs = _blobs(entry_dir)
    assert blobs, os.listdir(entry_dir)
    identity = {b: (os.stat(entry_dir / b).st_ino, os.stat(entry_dir / b).st_mtime_ns) for b in blobs}
    assert not _leftovers(cache)

    # A second process imports the published blob: no new entry, no blob written anew (a
    # recompile would have published a new file in its place).
    _load_and_run(tmp_path, path, cache, "second")
    assert _entries(cache) == [entry]
    assert {b: (os.stat(entry_dir / b).st_ino, os.stat(entry_dir / b).st_mtime_ns) for b in _blobs(entry_dir)} == identity
    assert not _leftovers(cache)


def test_same_bytes_at_another_path_use_the_same_entry(tmp_path, small_model):
    cache = tmp_path / "cache"
    _load_and_run(tmp_path, small_model, cache, "original")
    (entry,) = _entries(cache)
    blobs = {b: os.stat(cache / entry / b).st_ino for b in _blobs(cache / entry)}
    other = tmp_path / "elsewhere" / "renamed.onnx"
    other.parent.mkdir()
    with open(small_model, "rb") as a, open(other, "wb") as b:
        b.write(a.read())
    _load_and_run(tmp_path, other, cache, "copy")
    assert _entries(cache) == [entry]
    assert {b: os.stat(cache / entry / b).st_ino for b in _blobs(cache / entry)} == blobs


def test_changed_model_at_the_same_path_is_not_served_a_stale_blob(tmp_path):
    cache = tmp_path / "cache"
    path = tmp_path / "m.onnx"
    _mlp(path, 256, seed=1)
    first, _ = _load_and_run(tmp_path, path, cache, "a")
    size = os.path.getsize(path)
    stat = os.stat(path)
    # Same shapes, other weights, same size, and the same modification time: what OpenVINO's
    # own file check (path, size, mtime in seconds) cannot tell apart.
    _mlp(path, 256, seed=2)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.path.getsize(path) == size
    second, _ = _load_and_run(tmp_path, path, cache, "b")  # checked against onnxruntime on the new file
    assert not np.allclose(first["y"], second["y"])
    assert len(_entries(cache)) == 2


def test_unusable_cache_dir_falls_back_with_one_warning(tmp_path, small_model):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    _, err = _load_and_run(tmp_path, small_model, blocker / "cache", "blocked")
    assert err.count("HBM_RUNTIME_CACHE_DIR") == 1, err

    # Several models in one process: still one warning.
    second = models.tiny(tmp_path / "tiny.onnx")
    script = ("import sys, hbm_runtime; rt = hbm_runtime.HB_HBMRuntime(sys.argv[1:]); "
              "print(len(rt.model_names))")
    proc = subprocess.run([sys.executable, "-c", script, small_model, second], env=_env(blocker / "cache"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "2", proc.stderr
    assert proc.stderr.count("HBM_RUNTIME_CACHE_DIR") == 1, proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not bind root")
def test_read_only_cache_dir(tmp_path, small_model):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        _, err = _load_and_run(tmp_path, small_model, cache, "ro_empty")
        assert "HBM_RUNTIME_CACHE_DIR" in err
    finally:
        cache.chmod(0o755)
    # A populated entry made read-only is still read.
    _load_and_run(tmp_path, small_model, cache, "populate")
    (entry,) = _entries(cache)
    for d in (cache / entry, cache):
        d.chmod(0o555)
    try:
        _, err = _load_and_run(tmp_path, small_model, cache, "ro_full")
        assert "HBM_RUNTIME_CACHE_DIR" not in err, err
    finally:
        for d in (cache, cache / entry):
            d.chmod(0o755)


@pytest.mark.parametrize("which", ["small_model", "large_model"])
def test_processes_loading_at_once(request, tmp_path, which):
    path = request.getfixturevalue(which)
    cache = tmp_path / "cache"
    feeds = models.random_feeds(path, seed=5)
    np.savez(tmp_path / "in.npz", **feeds)
    ref = models.ort_reference(path, feeds)
    for round_ in range(2):  # empty cache, then a populated one
        go = tmp_path / f"go{round_}"
        procs = [_start(path, tmp_path / "in.npz", tmp_path / f"out{round_}_{i}.npz", cache, go) for i in range(3)]
        time.sleep(0.5)
        go.write_text("")
        for i, proc in enumerate(procs):
            got, _ = _finish(proc, tmp_path / f"out{round_}_{i}.npz")
            models.assert_outputs_match(got, ref, f"round {round_} process {i}")
    (entry,) = _entries(cache)
    assert _blobs(cache / entry)
    assert not _leftovers(cache)


def test_damaged_copy_in_the_cache_is_replaced(tmp_path, small_model):
    cache = tmp_path / "cache"
    _load_and_run(tmp_path, small_model, cache, "populate")
    (entry,) = _entries(cache)
    copy = cache / entry / "model.onnx"
    size = os.path.getsize(copy)
    os.chmod(copy, 0o644)
    with open(copy, "r+b") as f:  # what a power loss can leave behind
        f.write(bytes(size))
    _load_and_run(tmp_path, small_model, cache, "after")
    with open(small_model, "rb") as a, open(copy, "rb") as b:
        assert a.read() == b.read()


def test_models_with_external_data_are_not_cached(tmp_path):
    path = models.qdq_external(tmp_path / "ext.onnx")
    cache = tmp_path / "cache"
    _load_and_run(tmp_path, path, cache, "ext")
    assert _entries(cache) == []


def test_dynamic_model_from_the_cache_keeps_shape_checks(tmp_path):
    path = models.dynamic_matmul(tmp_path / "dyn.onnx")
    cache = tmp_path / "cache"
    script = textwrap.dedent(
        """
        import sys, numpy as np, hbm_runtime
        rt = hbm_runtime.HB_HBMRuntime(sys.argv[1])
        a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
        assert rt.run({"a": a, "b": b})["dyn"]["y"].shape == (2, 4)
        try:
            rt.run({"a": a, "b": np.ones((4, 2), np.float32)})
        except hbm_runtime.HBMRuntimeError:
            print("refused")
        """
    )
    for _ in range(2):  # compiled and written, then imported
        proc = subprocess.run([sys.executable, "-c", script, path], env=_env(cache), capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "refused"
    (entry,) = _entries(cache)
    assert _blobs(cache / entry)


def test_threads_share_the_weights_of_a_large_model(tmp_path):
    # 32 MB of weights: a compiled replica per calling thread would add about that much each.
    path = _mlp(tmp_path / "big.onnx", 125000, seed=4)
    script = textwrap.dedent(
        """
        import sys, threading, numpy as np, hbm_runtime
        def rss_mb():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
        hbm_runtime.set_host_cores(4)
        rt = hbm_runtime.HB_HBMRuntime(sys.argv[1])
        x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
        ref = rt.run(x)["big"]["y"]
        base = rss_mb()
        bad = []
        def work():
            for _ in range(15):
                if not np.array_equal(rt.run(x)["big"]["y"], ref):
                    bad.append(1)
        ts = [threading.Thread(target=work) for _ in range(4)]
        for t in ts: t.start()
        for t in ts: t.join()
        print(rss_mb() - base, len(bad))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script, path], env=_env(None), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    growth, bad = proc.stdout.split()
    assert int(bad) == 0
    assert float(growth) < 12, f"RSS grew by {growth} MB running from 4 threads"


# The mappings of files in the directory `cache` and their resident size, from /proc/self/smaps.
CACHE_MAPPINGS = textwrap.dedent(
    """
    def cache_mappings(cache):
        cache = os.path.realpath(cache) + "/"
        mappings, rss_kb, inside = 0, 0, False
        with open("/proc/self/smaps") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 5 and "-" in fields[0] and ":" in fields[3]:  # a mapping's header
                    inside = len(fields) >= 6 and line.split(None, 5)[5].startswith(cache)
                    mappings += inside
                elif inside and fields[0] == "Rss:":
                    rss_kb += int(fields[1])
        return {"mappings": mappings, "rss_kb": rss_kb}
    """
)

# argv: cache dir, threads, files. With threads == 0, loads every file into one runtime; else
# loads the one file in that many threads at once, a runtime each. Runs every model on the same
# input, saves the outputs beside the cache directory and prints cache_mappings().
LOADING_CHILD = textwrap.dedent(
    """
    import json, os, sys, threading
    import numpy as np
    import hbm_runtime
    """
) + CACHE_MAPPINGS + textwrap.dedent(
    """
    cache, threads, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    outputs, runtimes = {}, []
    if threads == 0:
        rt = hbm_runtime.HB_HBMRuntime(paths)
        runtimes.append(rt)
        outputs = {m: rt.run(x, model_name=m)[m]["y"] for m in rt.model_names}
    else:
        start, errors = threading.Barrier(threads), []
        def load(i):
            try:
                start.wait()
                rt = hbm_runtime.HB_HBMRuntime(paths[0])
                runtimes.append(rt)
                (m,) = rt.model_names
                outputs[f"t{i}"] = rt.run(x)[m]["y"]
            except Exception as e:
                errors.append(repr(e))
        ts = [threading.Thread(target=load, args=(i,)) for i in range(threads)]
        for t in ts: t.start()
        for t in ts: t.join()
        assert not errors, errors
    np.savez(os.path.join(cache, "..", "outputs.npz"), **outputs)
    print(json.dumps(cache_mappings(cache)))
    """
)


def _load_in_child(tmp_path, cache, threads, paths):
    """Runs LOADING_CHILD; returns (its report, the outputs it saved)."""
    proc = subprocess.run([sys.executable, "-c", LOADING_CHILD, os.fspath(cache), str(threads)] + paths,
                          env=_env(cache), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "outputs.npz") as z:
        return json.loads(proc.stdout.strip().splitlines()[-1]), {k: z[k] for k in z.files}


def _assert_blobs_released(report):
    # OpenVINO keeps each imported blob mapped for the compiled model's life; once it has copied
    # the weights into its own layout, those pages must not stay resident.
    assert report["mappings"] >= 1, report
    assert report["rss_kb"] < 1024, f"blob pages still resident after import: {report}"


def test_imported_blobs_leave_the_rss_when_models_load_at_once(tmp_path):
    # Three models of 5 MB of weights compiled side by side from one runtime: each compile drops
    # only the mappings it made itself, with the others still running.
    paths = [_mlp(tmp_path / f"w{i}.onnx", 20000, seed=20 + i) for i in range(3)]
    cache = tmp_path / "cache"
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    for round_ in ("compile", "import"):
        report, got = _load_in_child(tmp_path, cache, 0, paths)
        for i, p in enumerate(paths):
            models.assert_outputs_match({"y": got[f"w{i}"]}, models.ort_reference(p, {"x": x}), f"{round_} w{i}")
    assert len(_entries(cache)) == 3
    assert report["mappings"] >= 3, report
    _assert_blobs_released(report)
    assert not _leftovers(cache)


@pytest.mark.parametrize("which", ["small_model_64", "large_model"])
def test_threads_loading_one_model_at_once(request, tmp_path, which):
    # Every thread's compile works in its own directory of hard links to the entry's blobs (the
    # same files): each releases its own mappings only, and every result is right.
    path = request.getfixturevalue(which)
    cache = tmp_path / "cache"
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    ref = models.ort_reference(path, {"x": x})
    for round_ in ("empty cache", "populated cache"):
        report, got = _load_in_child(tmp_path, cache, 4, [path])
        assert sorted(got) == ["t0", "t1", "t2", "t3"]
        for k, y in got.items():
            models.assert_outputs_match({"y": y}, ref, f"{round_} thread {k}")
    (entry,) = _entries(cache)
    assert _blobs(cache / entry)
    assert not _leftovers(cache)
    _assert_blobs_released(report)


@pytest.fixture(scope="module")
def small_model_64(tmp_path_factory):
    # Small weights: one stream of one thread, replicated per calling thread.
    return _mlp(tmp_path_factory.mktemp("cache_models") / "small64.onnx", 256, seed=2)
