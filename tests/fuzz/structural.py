#!/usr/bin/env python3
"""Structural fuzzer: graph-level lies made with the onnx package, loaded and run through the
public Python API, checked against onnxruntime.

    PYTHONPATH=build/fuzz-dev/pkg python tests/fuzz/structural.py --seconds 60 --seed 1

Each case takes a valid model of tests/fuzz/make_corpus.py and applies 1-3 random lies
(declared dtypes/shapes/ranks that disagree with the graph, huge/zero/negative dims, aliasing
inputs/outputs, duplicate names, missing types, opsets, ...). A worker subprocess loads it with
hbm_runtime.HB_HBMRuntime and runs it on inputs held in read-only memory (mprotect'ed mmap),
so a write into caller memory kills the worker. Acceptable per case: a clear exception
(ValueError, HBMRuntimeError, EngineUnavailableError, MemoryError) or results that match the
model's metadata and, when onnxruntime runs the model too, onnxruntime's outputs. Findings:
worker crash, hang (--timeout), other exception types, input modified, a declared output
missing from the result, dtype/shape different from the metadata, values different from
onnxruntime, or two runs disagreeing. Every case is run and checked, whatever its lies.

Each finding's model is saved in --out. Prints executions and findings; exit status 1 when
there is any finding.
"""
from __future__ import annotations

import argparse
import ctypes
import mmap
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx
from onnx import TensorProto as T, helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_corpus  # noqa: E402

# hbDNNDataType -> numpy
HB_NUMPY = {2: np.int8, 3: np.uint8, 4: np.float16, 5: np.int16, 6: np.uint16, 7: np.float32,
            8: np.int32, 9: np.uint32, 10: np.float64, 11: np.int64, 12: np.uint64, 13: np.bool_}
ELEM_CHOICES = [T.FLOAT, T.UINT8, T.INT8, T.UINT16, T.INT16, T.INT32, T.INT64, T.BOOL, T.FLOAT16,
                T.DOUBLE, T.UINT32, T.UINT64, T.STRING, T.BFLOAT16, T.COMPLEX64, 0, 99]
# No dims that make a tensor of a few GB: OpenVINO allocates (and pages in) static tensors when
# it compiles, which takes minutes and the machine's memory; terabytes fail at once.
DIM_CHOICES = [0, 1, 2, 3, 4, 64, -1, -7, 2 ** 40, 2 ** 62, "N", "M"]


# ---- side files and read-only memory ---------------------------------------------------------

def make_side_files(d: str) -> None:
    pattern = bytes((i * 37 + 11) & 0xFF for i in range(4096))
    with open(os.path.join(d, "weights.bin"), "wb") as f:
        f.write(pattern)
    os.makedirs(os.path.join(d, "sub"), exist_ok=True)
    with open(os.path.join(d, "sub", "w.bin"), "wb") as f:
        f.write(pattern)
    try:
        os.symlink(os.path.join(d, "weights.bin"), os.path.join(d, "link.bin"))
    except OSError:
        pass


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def read_only_array(values: np.ndarray) -> Tuple[np.ndarray, mmap.mmap]:
    """A copy of `values` in anonymous memory that is then mprotect'ed PROT_READ."""
    n = max(values.nbytes, 1)
    size = (n + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
    mem = mmap.mmap(-1, size, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    arr = np.frombuffer(mem, dtype=values.dtype, count=values.size).reshape(values.shape)
    arr[...] = values
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    if _libc.mprotect(ctypes.c_void_p(addr), size, mmap.PROT_READ) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")
    arr = np.frombuffer(mem, dtype=values.dtype, count=values.size).reshape(values.shape)
    arr.flags.writeable = False
    return arr, mem


def pattern(shape, dtype, salt: int) -> np.ndarray:
    n = int(np.prod(shape, dtype=object)) if shape else 1
    v = (np.arange(n) * 7 + salt) % 9 - 4
    if dtype == np.bool_:
        v = v > 0
    elif np.issubdtype(dtype, np.unsignedinteger):
        v = v + 4
    elif np.issubdtype(dtype, np.floating):
        v = v * 0.5
    return v.astype(dtype).reshape(shape)


# ---- the worker: load, run, check ------------------------------------------------------------

class Finding(Exception):
    pass


def check_model(path: str) -> str:
    """'rejected: ...', 'ok' or 'ok+ort'; raises Finding."""
    import hbm_runtime

    clear = (ValueError, hbm_runtime.HBMRuntimeError, hbm_runtime.EngineUnavailableError, MemoryError)
    try:
        rt = hbm_runtime.HB_HBMRuntime(path)
    except clear as e:
        return f"rejected at load: {type(e).__name__}"
    except Exception as e:
        raise Finding(f"load raised {type(e).__name__}: {e}")
    try:
        (m,) = rt.model_names
        feeds: Dict[str, np.ndarray] = {}
        keep = []
        for i, name in enumerate(rt.input_names[m]):
            shape = [2 if d < 0 else d for d in rt.input_shapes[m][name]]
            dtype = HB_NUMPY.get(rt.input_dtypes[m][name])
            if dtype is None or int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize > (32 << 20):
                return "not run (input too large or unusual dtype)"
            try:
                values = pattern(shape, dtype, i)
            except ValueError:  # e.g. [0, 2**62, 2**40]: numpy refuses the shape itself
                return "not run (numpy cannot make such an input)"
            arr, mem = read_only_array(values)
            keep.append(mem)
            feeds[name] = arr
        originals = {k: v.copy() for k, v in feeds.items()}
        try:
            res = rt.run(feeds)
        except clear as e:
            return f"rejected at run: {type(e).__name__}"
        except Exception as e:
            raise Finding(f"run raised {type(e).__name__}: {e}")
        for k, v in feeds.items():
            if not np.array_equal(v, originals[k]):
                raise Finding(f"input '{k}' was modified by run()")
        outs = res[m]
        names = rt.output_names[m]
        if sorted(outs) != sorted(set(names)) or len(outs) != len(names):
            raise Finding(f"result keys {sorted(outs)} != output_names {names}")
        for name in names:
            a = outs[name]
            want = HB_NUMPY.get(rt.output_dtypes[m][name])
            if a.dtype != want:
                raise Finding(f"output '{name}': dtype {a.dtype}, metadata {np.dtype(want)}")
            decl = rt.output_shapes[m][name]
            if decl and (len(decl) != a.ndim or any(d >= 0 and d != s for d, s in zip(decl, a.shape))):
                raise Finding(f"output '{name}': shape {a.shape}, metadata {decl}")
            a.tobytes()  # every byte read
        again = rt.run(feeds)[m]
        for name in names:
            if outs[name].tobytes() != again[name].tobytes():
                raise Finding(f"output '{name}' differs between two runs")
        try:
            import onnxruntime as ort
            ort.set_default_logger_severity(4)
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            ref = sess.run(None, {k: originals[k] for k in feeds})
        except Exception:
            return "ok (onnxruntime refuses it)"
        for o, r in zip(sess.get_outputs(), ref):
            r = np.asarray(r)
            a = outs.get(o.name)
            if a is None:
                continue
            if a.shape != r.shape or a.dtype != r.dtype:
                raise Finding(f"output '{o.name}': {a.dtype}{a.shape}, onnxruntime {r.dtype}{r.shape}")
            if np.issubdtype(a.dtype, np.floating):
                ok = np.allclose(a, r, rtol=1e-3, atol=1e-3, equal_nan=True)
            else:
                ok = np.array_equal(a, r)
            if not ok:
                raise Finding(f"output '{o.name}' differs from onnxruntime")
        return "ok+ort"
    finally:
        rt.close()


def worker(conn) -> None:
    import resource
    # Allocations beyond this fail (MemoryError / a clear engine error) instead of swapping.
    limit = 8 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        path = conn.recv()
        if path is None:
            return
        try:
            conn.send(("ok", check_model(path)))
        except Finding as f:
            conn.send(("finding", str(f)))
        except Exception:
            conn.send(("finding", "harness error: " + traceback.format_exc(limit=3)))


class Worker:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker, args=(child,), daemon=True)
        self.proc.start()

    def check(self, path: str, timeout: float) -> Tuple[str, str]:
        self.conn.send(path)
        if not self.conn.poll(timeout):
            self.proc.kill()
            self.proc.join()
            return "finding", f"hang: no answer in {timeout:.0f} s"
        try:
            return self.conn.recv()
        except EOFError:
            self.proc.join()
            return "finding", f"worker crashed (exit code {self.proc.exitcode})"

    def alive(self) -> bool:
        return self.proc.is_alive()

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()


# ---- mutations -------------------------------------------------------------------------------

def _dims(vi: onnx.ValueInfoProto):
    return vi.type.tensor_type.shape.dim


def _set_dim(dim, v) -> None:
    if isinstance(v, str):
        dim.dim_param = v
    else:
        dim.dim_value = v


def mutate(m: onnx.ModelProto, rng: random.Random) -> List[str]:
    g = m.graph
    tags: List[str] = []
    kinds = ["out_dtype", "in_dtype", "out_shape", "in_shape", "out_rank", "in_rank", "out_is_input",
             "dup_output", "dup_input", "rename_out_to_in", "no_type", "no_shape", "identity_chain",
             "out_initializer", "opset", "ir_version", "unknown_domain"]
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(kinds)
        outs, ins = list(g.output), list(g.input)
        if kind == "out_dtype" and outs:
            rng.choice(outs).type.tensor_type.elem_type = rng.choice(ELEM_CHOICES)
        elif kind == "in_dtype" and ins:
            rng.choice(ins).type.tensor_type.elem_type = rng.choice(ELEM_CHOICES)
        elif kind in ("out_shape", "in_shape"):
            vis = outs if kind == "out_shape" else ins
            dims = _dims(rng.choice(vis)) if vis else None
            if not dims:
                continue
            _set_dim(dims[rng.randrange(len(dims))], rng.choice(DIM_CHOICES))
        elif kind in ("out_rank", "in_rank"):
            vis = outs if kind == "out_rank" else ins
            if not vis:
                continue
            dims = _dims(rng.choice(vis))
            if dims and rng.random() < 0.5:
                del dims[rng.randrange(len(dims))]
            else:
                _set_dim(dims.add(), rng.choice([1, 2, "R"]))
        elif kind == "out_is_input" and ins:
            g.output.insert(rng.randrange(len(outs) + 1), ins[rng.randrange(len(ins))])
        elif kind == "dup_output" and outs:
            g.output.append(rng.choice(outs))
        elif kind == "dup_input" and ins:
            g.input.append(rng.choice(ins))
        elif kind == "rename_out_to_in" and outs and ins:
            o, i = rng.choice(outs), rng.choice(ins)
            for n in g.node:
                for k, name in enumerate(n.output):
                    if name == o.name:
                        n.output[k] = i.name
            o.name = i.name
        elif kind == "no_type":
            vis = outs + ins
            if vis:
                rng.choice(vis).ClearField("type")
        elif kind == "no_shape":
            vis = outs + ins
            if vis:
                rng.choice(vis).type.tensor_type.ClearField("shape")
        elif kind == "identity_chain" and outs:
            o = rng.choice(outs)
            for n in g.node:
                for k, name in enumerate(n.output):
                    if name == o.name:
                        n.output[k] = o.name + "_pre"
            g.node.append(helper.make_node("Identity", [o.name + "_pre"], [o.name]))
            if not any(o.name + "_pre" in n.output for n in g.node[:-1]):
                g.node[-1].input[0] = ins[0].name if ins else o.name  # output was an input: alias it
        elif kind == "out_initializer" and g.initializer:
            t = rng.choice(list(g.initializer))
            g.output.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        elif kind == "opset":
            m.opset_import[0].version = rng.choice([1, 7, 11, 13, 17, 21, 23, 10000, 2 ** 62])
        elif kind == "ir_version":
            m.ir_version = rng.choice([1, 3, 4, 7, 8, 10, 12, 10000])
        elif kind == "unknown_domain" and g.node:
            n = rng.choice(list(g.node))
            n.domain = "no.such"
            m.opset_import.append(helper.make_opsetid("no.such", 1))
        else:
            continue
        tags.append(kind)
    return tags


# ---- driver ----------------------------------------------------------------------------------

def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="structural ONNX fuzzer for hbm_runtime")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30, help="seconds per case before it counts as a hang")
    ap.add_argument("--out", default="build/fuzz-findings/structural", help="where findings are saved")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args(argv)

    if not os.environ.get("HBM_RUNTIME_OPENVINO_PACKAGE_LIBS"):
        import importlib.util
        spec = importlib.util.find_spec("openvino")
        if spec and spec.submodule_search_locations:
            os.environ["HBM_RUNTIME_OPENVINO_PACKAGE_LIBS"] = os.path.join(
                list(spec.submodule_search_locations)[0], "libs")
    rng = random.Random(args.seed)
    # Mostly valid models, lied about here; the corpus's lying models (external data refs,
    # subgraphs, sparse/string initializers, ...) get further lies too.
    bases = make_corpus.valid_models()
    lies = make_corpus.lie_models()
    names = sorted(bases) * 3 + sorted(lies)
    bases.update(lies)
    tmp = tempfile.mkdtemp(prefix="hbm_structural_")
    make_side_files(tmp)
    os.makedirs(args.out, exist_ok=True)
    w = Worker()
    deadline = time.monotonic() + args.seconds
    execs = 0
    outcomes: Dict[str, int] = {}
    findings: List[str] = []
    try:
        while time.monotonic() < deadline:
            base = rng.choice(names)
            m = onnx.ModelProto()
            m.CopyFrom(bases[base])
            tags = mutate(m, rng)
            path = os.path.join(tmp, f"case{execs}.onnx")
            with open(path, "wb") as f:
                f.write(m.SerializeToString())
            status, detail = w.check(path, args.timeout)
            execs += 1
            if status == "ok":
                key = detail.split(":")[0]
                outcomes[key] = outcomes.get(key, 0) + 1
                if args.verbose:
                    print(f"case {execs - 1} {base} {tags}: {detail}")
                os.unlink(path)
            else:
                saved = os.path.join(args.out, f"seed{args.seed}_case{execs - 1}_{base}.onnx")
                shutil.move(path, saved)
                line = f"FINDING: {saved} (base {base}, lies {tags}): {detail}"
                print(line, flush=True)
                findings.append(line)
            if not w.alive():
                w = Worker()
    finally:
        w.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"structural fuzz: seed {args.seed}, {execs} executions in {args.seconds:.0f} s; outcomes {outcomes}; "
          f"{len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
