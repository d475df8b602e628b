"""``info MODEL...``: every model's metadata, as text (long values cut) or as JSON."""

from __future__ import annotations

import shutil
import sys
import unicodedata
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from ._cli_common import engine_names, numpy_dtype, open_runtime, print_json, sched_dict, versions

if TYPE_CHECKING:
    from ._runtime import HB_HBMRuntime

INFO_SCHEMA = "hbm_runtime.info/1"
DEFAULT_WIDTH = 120  # when stdout is not a terminal
MIN_TEXT = 60  # characters of a cut description shown, however long its label
LIST_HEAD = 8  # values shown of a cut scale / zero_point list
LIST_MAX = 16  # lists up to this length are shown whole

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(ch: str) -> str:
    # A cut description stays on one line: control characters are shown escaped.
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ch < " " or ch == "\x7f":
        return f"\\x{ord(ch):02x}"
    return ch


def _columns(piece: str) -> int:
    # Wide (CJK) characters take two terminal columns.
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in piece)


def cut_text(text: str, width: int) -> str:
    """``text`` on one line of at most about ``width`` terminal columns: control characters
    escaped and, when too long, cut with a note saying how many characters were left out."""
    pieces = [_escaped(c) for c in text]
    if sum(_columns(p) for p in pieces) <= width:
        return "".join(pieces)
    # The note's own length depends on the count it gives; the longest count bounds it.
    note_len = len(_note(len(text)))
    budget = max(MIN_TEXT, width - note_len)
    if sum(_columns(p) for p in pieces) <= budget + note_len:
        return "".join(pieces)  # cutting would not shorten the line
    out: List[str] = []
    used = 0
    for piece in pieces:
        cols = _columns(piece)
        if used + cols > budget:
            break
        out.append(piece)
        used += cols
    return "".join(out) + _note(len(text) - len(out))


def _note(more: int) -> str:
    return f" … ({more} more characters; --full shows all)"


def _full_text(text: str, indent: str) -> str:
    # --full: the text as it is, its continuation lines indented under the label.
    return text.replace("\n", "\n" + indent)


def _values(values: List[Any], full: bool) -> str:
    if full or len(values) <= LIST_MAX:
        return str(values)
    head = ", ".join(str(v) for v in values[:LIST_HEAD])
    return f"[{head}, …] ({len(values) - LIST_HEAD} more values; --full shows all)"


class _Printer:
    """Writes the text form, cutting descriptions to ``width`` columns unless ``full``."""

    def __init__(self, full: bool, width: int) -> None:
        self.full = full
        self.width = width
        self.lines: List[str] = []

    def desc(self, label: str, text: str) -> None:
        if self.full:
            indent = " " * (len(label) - len(label.lstrip()) + 2)
            self.lines.append(label + _full_text(text, indent))
        else:
            self.lines.append(label + cut_text(text, max(MIN_TEXT, self.width - len(label))))

    def tensors(self, rt: HB_HBMRuntime, model: str, kind: str) -> None:
        names = getattr(rt, f"{kind}_names")[model]
        shapes, dtypes = getattr(rt, f"{kind}_shapes")[model], getattr(rt, f"{kind}_dtypes")[model]
        strides, quants = getattr(rt, f"{kind}_strides")[model], getattr(rt, f"{kind}_quants")[model]
        descs = getattr(rt, f"{kind}_descs")[model]
        self.lines.append(f"  {kind}s ({len(names)}):")
        for n in names:
            q = quants[n]
            self.lines.append(f"    {n}: shape={shapes[n]} dtype={dtypes[n].name} strides={strides[n]}")
            if q.quant_type != 0:
                self.lines.append(f"      quant: {q.quant_type.name} axis={q.axis} "
                                  f"scale={_values(q.scale.tolist(), self.full)} "
                                  f"zero_point={_values(q.zero_point.tolist(), self.full)}")
            if descs[n]:
                self.desc("      desc: ", descs[n])


def _tensor_records(rt: HB_HBMRuntime, model: str, kind: str) -> List[Dict[str, Any]]:
    names = getattr(rt, f"{kind}_names")[model]
    shapes, dtypes = getattr(rt, f"{kind}_shapes")[model], getattr(rt, f"{kind}_dtypes")[model]
    strides, quants = getattr(rt, f"{kind}_strides")[model], getattr(rt, f"{kind}_quants")[model]
    descs = getattr(rt, f"{kind}_descs")[model]
    out = []
    for n in names:
        q = quants[n]
        quant: Optional[Dict[str, Any]] = None
        if q.quant_type != 0:
            quant = {"type": q.quant_type.name, "axis": q.axis, "scale": q.scale.tolist(),
                     "zero_point": q.zero_point.tolist()}
        out.append({
            "name": n,
            "dtype": dtypes[n].name,
            "numpy_dtype": numpy_dtype(dtypes[n].name).name,
            "shape": list(shapes[n]),
            "strides": list(strides[n]),
            "desc": descs[n],
            "quant": quant,
        })
    return out


def info_record(rt: HB_HBMRuntime) -> Dict[str, Any]:
    """All metadata of the loaded models: the ``hbm_runtime.info/1`` object (docs/cli.md)."""
    engines = engine_names(rt)
    descs = rt.model_descs
    return {
        "schema": INFO_SCHEMA,
        "versions": versions(rt),
        "files": [{"path": path, "desc": desc} for path, desc in rt.hbm_descs.items()],
        "models": [
            {
                "name": model,
                "engine": engines[model],
                "desc": descs[model],
                "sched": sched_dict(rt, model),
                "inputs": _tensor_records(rt, model, "input"),
                "outputs": _tensor_records(rt, model, "output"),
            }
            for model in rt.model_names
        ],
    }


def text_width(width: Optional[int]) -> int:
    """``width`` if given, else the terminal's width when stdout is one, else 120."""
    if width is not None:
        return width
    if sys.stdout.isatty():
        return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return DEFAULT_WIDTH


def info(paths: Sequence[str], full: bool = False, as_json: bool = False, width: Optional[int] = None) -> int:
    """Prints the metadata of the models in ``paths`` (loaded together); returns the exit status."""
    with open_runtime(paths) as rt:
        if as_json:
            print_json(info_record(rt))
            return 0
        p = _Printer(full, text_width(width))
        p.lines.append(f"hbm_runtime {rt.version}")
        for path, desc in rt.hbm_descs.items():
            if desc:
                p.desc(f"file {path}: ", desc)
            else:
                p.lines.append(f"file {path}")
        engines = engine_names(rt)
        descs = rt.model_descs
        for model in rt.model_names:
            s = rt.sched_params[model]
            p.lines.append(f"model {model}")
            p.lines.append(f"  engine: {engines[model]}")
            if descs[model]:
                p.desc("  desc: ", descs[model])
            p.lines.append(f"  sched: priority={s.priority} customId={s.customId} bpu_cores={s.bpu_cores} "
                           f"deviceId={s.deviceId}")
            for kind in ("input", "output"):
                p.tensors(rt, model, kind)
        print("\n".join(p.lines))
    return 0

