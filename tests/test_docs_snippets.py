"""The migration guides (docs/migrating_from_*.md) and their Chinese twins: every snippet runs.

The convention the guides are written to:

- Every ```python block of a guide is executed, in order, in one namespace per guide, with
  the current directory set to a temporary directory that holds the small .onnx models the
  snippets load (MODEL_FILES, built with tests/models.py). Snippets load .onnx files; on the
  board the same lines load .hbm files. Snippets for the vendor's package run against this
  package (that they port unchanged is the point); onnxruntime snippets run onnxruntime.
- ```python no-run blocks hold code of a library that cannot run here (hobot_dnn's
  pyeasy_dnn exists only on RDK X3/X5 boards). Each one starts with a comment naming that
  library, and the next code block of the guide is its executed hbm_runtime counterpart.
- No other kind of code block is allowed: a misspelt info string would silently leave code
  untested.
- Where a guide says two libraries compute the same thing, CHECKS compares them again from
  the namespace the guide's code left, so the claim holds even if a snippet's own assert is
  edited away.
- The Chinese twin (<guide>_cn.md) has the same headings, code blocks, tables, backticked
  spans and numbers, section by section (the rules test_readme_cn.py applies to the
  READMEs), and each file links the other on the line after its title.

A failing snippet is reported with the guide's file name and the line in it.
"""

from __future__ import annotations

import collections
import gc
import importlib.util
import pathlib
import re
import sys
import traceback
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
import pytest

import hbm_runtime
from hbm_runtime import HB_HBMRuntime

import models
import test_readme_cn as bilingual  # its Markdown parser and span/number rules

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
GUIDES = ["migrating_from_vendor", "migrating_from_pyeasy_dnn", "migrating_from_onnxruntime"]
# Modules a guide's snippets import besides numpy and hbm_runtime (skipped when missing).
GUIDE_NEEDS = {"migrating_from_onnxruntime": ["onnxruntime"]}

RUN = "python"
NO_RUN = "python no-run"
# A no-run block's first line: a comment naming the board-only library it is written for.
NO_RUN_LABEL = re.compile(r"^#.*\b(hobot_dnn|pyeasy_dnn)\b")
BOARD_ONLY = re.compile(r"^\s*(?:from|import)\s+hobot_dnn\b", re.M)  # in an executed block

# The model files the snippets load, by the names they use, and the builder of each.
MODEL_FILES: Dict[str, Callable[[str], str]] = {
    "lanenet256x512.onnx": models.lanenet,             # input [1, 3, 256, 512] F32 -> output, seg
    "yolov5x_672x672_nv12.onnx": models.nv12,          # data_y, data_uv U8 -> three S32 outputs
    "model1.onnx": models.tiny,                        # a, b [2, 8] F32 -> sum, mm
    "model2.onnx": models.single,                      # x [1, 16] F32 -> y
    "model.onnx": models.tiny,
    "dynamic_batch.onnx": models.dynamic_batch,        # x ['N', 3, 4, 5] -> y
    "quantized.onnx": models.qdq,                      # U8 x and F32 offset -> S8 y per channel, ...
}


def guide_path(stem: str, cn: bool = False) -> pathlib.Path:
    return DOCS / f"{stem}{'_cn' if cn else ''}.md"


# ---- reading the guides ------------------------------------------------------------------------


def fence_lines(lines: Sequence[str]) -> List[int]:
    """1-based numbers of the lines opening each fenced code block, in order."""
    out, i = [], 0
    while i < len(lines):
        m = bilingual.FENCE.match(lines[i])
        if m:
            out.append(i + 1)
            mark = m.group(1)
            closing = re.compile(r"^ {0,3}" + re.escape(mark[0]) + "{%d,}\\s*$" % len(mark))
            i += 1
            while i < len(lines) and not closing.match(lines[i]):
                i += 1
        i += 1
    return out


def blocks_with_lines(doc: "bilingual.Doc") -> List[Tuple[int, "bilingual.CodeBlock"]]:
    """(line of the opening fence, block) for every code block of a parsed guide."""
    starts = fence_lines(doc.lines)
    indented = [b for b in doc.code_blocks if b.lang == "(indented)"]
    assert not indented, f"{doc.name}: indented code blocks are not run; use ```python fences"
    assert len(starts) == len(doc.code_blocks), f"{doc.name}: could not place every code block"
    return list(zip(starts, doc.code_blocks))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("guides")
    for name, build in MODEL_FILES.items():
        build(d / name)
    return d


def run_guide(stem: str, workdir: pathlib.Path, monkeypatch) -> Dict[str, Any]:
    """Executes the guide's python blocks in order in one namespace; returns the namespace."""
    for module in GUIDE_NEEDS.get(stem, []):
        pytest.importorskip(module)
    path = guide_path(stem)
    doc = bilingual.parse(path)
    monkeypatch.chdir(workdir)
    ns: Dict[str, Any] = {"__name__": f"guide_{stem}"}
    ran = 0
    for n, (line, block) in enumerate(blocks_with_lines(doc), 1):
        if block.lang != RUN:
            continue
        # Padded so that tracebacks name the guide's own lines (linecache reads the .md file).
        code = compile("\n" * line + block.text, str(path), "exec", dont_inherit=True)
        try:
            exec(code, ns)
        except Exception:
            failure = traceback.format_exc()
            close_runtimes(ns)
            pytest.fail(f"{path.name}: code block {n} (opening at line {line}) failed:\n{failure}",
                        pytrace=False)
        ran += 1
    assert ran, f"{path.name} has no ```python block"
    return ns


def close_runtimes(ns: Dict[str, Any]) -> None:
    for value in list(ns.values()):
        if isinstance(value, HB_HBMRuntime):
            value.close()
    ns.clear()
    gc.collect()


# ---- what the guides claim, checked again from their namespaces --------------------------------


def check_vendor(ns: Dict[str, Any], workdir: pathlib.Path) -> None:
    # The vendor-style code ran against this package, with its results type.
    assert ns["HB_HBMRuntime"] is hbm_runtime.HB_HBMRuntime
    assert ns["QuantParams"] is hbm_runtime.QuantParams and ns["SchedParam"] is hbm_runtime.SchedParam
    assert isinstance(ns["results"], hbm_runtime.RunResult)
    both, one = ns["both"], ns["one"]
    np.testing.assert_array_equal(one["model2"]["y"], both["model2"]["y"])
    if importlib.util.find_spec("onnxruntime") is not None:
        ref = models.ort_reference(workdir / "model2.onnx", {"x": ns["x"]})
        np.testing.assert_allclose(one["model2"]["y"], ref["y"], rtol=1e-5, atol=1e-5)
    assert ns["lane"].sched_params[ns["lane_name"]].bpu_cores == [-1]


def check_pyeasy(ns: Dict[str, Any], workdir: pathlib.Path) -> None:
    # "dequantize is (raw - zero_point) * scale along the axis", computed here independently.
    raw, q, value = ns["raw"], ns["q"], ns["value"]
    shape = [1] * raw.ndim
    shape[q.axis] = -1
    expected = (raw.astype(np.float32) - q.zero_point.reshape(shape).astype(np.float32)) * q.scale.reshape(shape)
    assert value.dtype == np.float32
    np.testing.assert_array_equal(value, expected)
    # The single-buffer NV12 layout of X3/X5 is the Y plane followed by the interleaved UV plane.
    y, uv, nv12 = ns["y"], ns["uv"], ns["nv12"]
    assert nv12.shape == (672 * 672 * 3 // 2,)
    np.testing.assert_array_equal(nv12[: 672 * 672], y.ravel())
    np.testing.assert_array_equal(nv12[672 * 672:], uv.ravel())
    sched = ns["rt"].sched_params[ns["name"]]
    assert sched.priority == 200 and sched.bpu_cores == [-1]


def check_onnxruntime(ns: Dict[str, Any], workdir: pathlib.Path) -> None:
    import onnxruntime

    m = ns["m"]
    assert isinstance(ns["sess"], onnxruntime.InferenceSession)
    # sess.run(None, feeds) and rt.run(feeds)[m], output by output, and the list in the same order.
    ref = dict(zip([o.name for o in ns["sess"].get_outputs()], ns["ort_outputs"]))
    assert set(ns["outputs"][m]) == set(ref)
    for name, theirs in ref.items():
        ours = ns["outputs"][m][name]
        assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape), name
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5, err_msg=name)
    assert ns["rt"].output_names[m] == list(ref)
    for ours, theirs in zip(ns["as_list"], ns["ort_outputs"]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    # IOBinding vs input arrays written in place, and the threaded runs.
    np.testing.assert_allclose(ns["mm_from_buffers"], ns["mm_bound"], rtol=1e-5, atol=1e-5)
    assert len(ns["ort_threaded"]) == len(ns["threaded"]) > 1
    for a, b in zip(ns["ort_threaded"], ns["threaded"]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    # Dynamic dimensions.
    np.testing.assert_allclose(ns["dyn_ours"], ns["dyn_ort"], rtol=1e-5, atol=1e-5)
    assert ns["dyn_ours"].shape[0] == 4


CHECKS: Dict[str, Callable[[Dict[str, Any], pathlib.Path], None]] = {
    "migrating_from_vendor": check_vendor,
    "migrating_from_pyeasy_dnn": check_pyeasy,
    "migrating_from_onnxruntime": check_onnxruntime,
}


@pytest.mark.parametrize("stem", GUIDES)
def test_every_snippet_runs(stem, workdir, monkeypatch):
    ns = run_guide(stem, workdir, monkeypatch)
    try:
        CHECKS[stem](ns, workdir)
    finally:
        close_runtimes(ns)


# ---- block kinds and the no-run convention ------------------------------------------------------


@pytest.mark.parametrize("stem", GUIDES)
def test_code_blocks_are_run_or_labelled_board_code(stem):
    path = guide_path(stem)
    doc = bilingual.parse(path)
    blocks = blocks_with_lines(doc)
    problems = []
    public = set(hbm_runtime.__all__) | {n for n in dir(HB_HBMRuntime) if not n.startswith("_")}
    for i, (line, block) in enumerate(blocks):
        where = f"{path.name}, code block {i + 1} (line {line})"
        if block.lang not in (RUN, NO_RUN):
            problems.append(f"{where}: info string {block.lang!r}; a guide's blocks are ```{RUN} "
                            f"(executed) or ```{NO_RUN} (board-only code, not executed)")
            continue
        if block.lang == RUN:
            if BOARD_ONLY.search(block.text):
                problems.append(f"{where}: board-only code in an executed block; put it in ```{NO_RUN}")
            continue
        first = block.text.split("\n", 1)[0]
        if not NO_RUN_LABEL.match(first):
            problems.append(f"{where}: a {NO_RUN} block starts with a comment naming the library it "
                            f"needs (hobot_dnn / pyeasy_dnn); it starts with {first!r}")
        nxt = blocks[i + 1][1] if i + 1 < len(blocks) else None
        if nxt is None or nxt.lang != RUN:
            problems.append(f"{where}: a {NO_RUN} block is followed by its executed hbm_runtime "
                            f"counterpart, a ```{RUN} block; the next block is "
                            f"{'missing' if nxt is None else repr(nxt.lang)}")
        elif not public & set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", nxt.text)):
            problems.append(f"{where}: the block after it uses no hbm_runtime API, so it is not "
                            "its counterpart")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_the_no_run_check_catches_unlabelled_and_unpaired_blocks(tmp_path, monkeypatch):
    """The convention check above fails on the mistakes it is there for."""
    bad = ("# T\n\n```python no-run\nmodels = dnn.load('m.bin')\n```\n\n"
           "```python no-run\n# hobot_dnn\nx = 1\n```\n\n```py\nprint(1)\n```\n\n"
           "```python\nfrom hobot_dnn import pyeasy_dnn\n```\n")
    (tmp_path / "guide.md").write_text(bad, encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "DOCS", tmp_path)
    with pytest.raises(pytest.fail.Exception) as e:
        test_code_blocks_are_run_or_labelled_board_code("guide")
    text = str(e.value)
    assert "code block 1 (line 3): a python no-run block starts with a comment" in text
    assert "code block 2 (line 7): a python no-run block is followed by its executed" in text
    assert "code block 3 (line 12): info string 'py'" in text
    assert "code block 4 (line 16): board-only code in an executed block" in text


def test_a_failing_snippet_names_the_guide_line(tmp_path, monkeypatch):
    (tmp_path / "guide.md").write_text("# T\n\ntext\n\n```python\nx = 1\ny = x / 0\n```\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "DOCS", tmp_path)
    with pytest.raises(pytest.fail.Exception) as e:
        run_guide("guide", tmp_path, monkeypatch)
    assert "guide.md: code block 1 (opening at line 5) failed" in str(e.value)
    assert 'guide.md", line 7' in str(e.value) and "ZeroDivisionError" in str(e.value)


# ---- the Chinese twins --------------------------------------------------------------------------


@pytest.fixture(params=GUIDES)
def twins(request) -> Tuple["bilingual.Doc", "bilingual.Doc"]:
    en, cn = guide_path(request.param), guide_path(request.param, cn=True)
    assert cn.is_file(), f"{cn.name} is missing: it is the Chinese version of {en.name}"
    return bilingual.parse(en), bilingual.parse(cn)


def _fail(problems: List[str], en: "bilingual.Doc", cn: "bilingual.Doc") -> None:
    if problems:
        problems.append(f"keep {en.name} and {cn.name} in step: make the same change in both")
        pytest.fail("\n".join(problems), pytrace=False)


def _where(doc: "bilingual.Doc", index: int) -> str:
    s = doc.sections[index]
    return f"section {'#' * s.level} {s.heading!r}" if s.level else "the text before the first heading"


def _same_levels(en: "bilingual.Doc", cn: "bilingual.Doc") -> bool:
    return [s.level for s in en.sections] == [s.level for s in cn.sections]


def test_twins_link_each_other(twins):
    en, cn = twins
    problems = []
    for doc, other, link_text in ((en, cn, "中文"), (cn, en, "English")):
        link = f"[{link_text}]({other.name})"
        nonblank = [line for line in doc.lines if line.strip()]
        if len(nonblank) < 2 or not bilingual.HEADING.match(nonblank[0]) or nonblank[1].strip() != link:
            problems.append(f"{doc.name}: the line after the title must be {link!r}")
    _fail(problems, en, cn)


def test_twins_have_the_same_sections(twins):
    en, cn = twins
    a = [s.level for s in en.sections[1:]]
    b = [s.level for s in cn.sections[1:]]
    problems = []
    if a != b:
        problems.append(f"heading levels differ: {en.name} {['#' * x for x in a]}, "
                        f"{cn.name} {['#' * x for x in b]}")
        problems += [f"  {en.name}: {'#' * s.level} {s.heading}" for s in en.sections[1:]]
        problems += [f"  {cn.name}: {'#' * s.level} {s.heading}" for s in cn.sections[1:]]
    _fail(problems, en, cn)


def test_twins_have_identical_code_blocks(twins):
    en, cn = twins
    problems = []
    if len(en.code_blocks) != len(cn.code_blocks):
        problems.append(f"{en.name} has {len(en.code_blocks)} code blocks, {cn.name} {len(cn.code_blocks)}")
    for n, (a, b) in enumerate(zip(en.code_blocks, cn.code_blocks), 1):
        where = f"code block {n} ({_where(en, a.section)})"
        if a.lang != b.lang:
            problems.append(f"{where}: info string {a.lang!r} in {en.name}, {b.lang!r} in {cn.name}")
        if a.text != b.text:
            la, lb = a.text.split("\n"), b.text.split("\n")
            diff = next((f"line {i}: {x!r} / {y!r}" for i, (x, y) in enumerate(zip(la, lb), 1) if x != y),
                        f"{len(la)} lines / {len(lb)} lines")
            problems.append(f"{where} differs at {diff}")
        elif a.section != b.section and _same_levels(en, cn):
            problems.append(f"{where} is in {_where(cn, b.section)} of {cn.name}")
    _fail(problems, en, cn)


def _multiset_diff(what: str, where: str, en: "bilingual.Doc", cn: "bilingual.Doc",
                   a: Sequence[str], b: Sequence[str]) -> List[str]:
    ca, cb = collections.Counter(a), collections.Counter(b)
    return [f"{where}: {what} {item!r} appears {ca[item]} time(s) in {en.name}, {cb[item]} in {cn.name}"
            for item in sorted(set(ca) | set(cb)) if ca[item] != cb[item]]


def test_twins_have_the_same_tables(twins):
    en, cn = twins
    problems = []
    if len(en.tables) != len(cn.tables):
        problems.append(f"{en.name} has {len(en.tables)} tables, {cn.name} {len(cn.tables)}")
    for n, (a, b) in enumerate(zip(en.tables, cn.tables), 1):
        where = f"table {n} ({_where(en, a.section)})"
        if len(a.rows) != len(b.rows):
            problems.append(f"{where}: {len(a.rows)} rows in {en.name}, {len(b.rows)} in {cn.name}")
            continue
        for r, (ra, rb) in enumerate(zip(a.rows, b.rows), 1):
            if len(ra) != len(rb):
                problems.append(f"{where}, row {r}: {len(ra)} cells in {en.name}, {len(rb)} in {cn.name}")
                continue
            for c, (xa, xb) in enumerate(zip(ra, rb), 1):
                if bilingual._is_code_or_number(xa) and \
                        bilingual._code_and_numbers(xa) != bilingual._code_and_numbers(xb):
                    problems.append(f"{where}, row {r}, column {c}: {xa!r} is code and numbers; "
                                    f"{cn.name} has {xb!r}")
            problems += _multiset_diff("backticked span", f"{where}, row {r}", en, cn,
                                       bilingual._spans(" | ".join(ra)), bilingual._spans(" | ".join(rb)))
    _fail(problems, en, cn)


def test_twins_have_the_same_spans_and_numbers_per_section(twins):
    en, cn = twins
    if not _same_levels(en, cn):
        pytest.fail("the sections differ (see test_twins_have_the_same_sections)", pytrace=False)
    problems = []
    for n, (a, b) in enumerate(zip(en.sections, cn.sections)):
        ta, tb = "\n".join(a.prose), "\n".join(b.prose)
        problems += _multiset_diff("backticked span", _where(en, n), en, cn,
                                   bilingual._spans(ta), bilingual._spans(tb))
        na, nb = bilingual._numbers(ta), bilingual._numbers(tb)
        problems += [f"{_where(en, n)}: the number {na[k]} is in {en.name} but not in {cn.name}"
                     for k in sorted(na.keys() - nb.keys())]
        problems += [f"{_where(en, n)}: {cn.name} has the number {nb[k]}, {en.name} does not"
                     for k in sorted(nb.keys() - na.keys())]
    _fail(problems, en, cn)


def test_twin_checks_catch_what_a_translation_can_lose(tmp_path):
    """Each twin check fails on the difference it is there for, naming it."""
    en = ("# Title `x`\n\n[中文](g_cn.md)\n\nUses `a` 3 times.\n\n| k | v |\n|---|---|\n| `p` | `q` |\n\n"
          "## S\n\n```python\nprint(1)\n```\n")
    cn = ("# 标题 `x`\n\n[English](g.md)\n\n用 `b` 4 次。\n\n| 键 | 值 |\n|---|---|\n| `p` | `r` |\n\n"
          "## 节\n\n```python\nprint(2)\n```\n")
    (tmp_path / "g.md").write_text(en, encoding="utf-8")
    (tmp_path / "g_cn.md").write_text(cn, encoding="utf-8")
    pair = (bilingual.parse(tmp_path / "g.md"), bilingual.parse(tmp_path / "g_cn.md"))
    test_twins_link_each_other(pair)
    test_twins_have_the_same_sections(pair)
    expected = {
        test_twins_have_identical_code_blocks: "code block 1 (section ## 'S') differs at line 1: 'print(1)' / 'print(2)'",
        test_twins_have_the_same_tables: "row 3, column 2: '`q`' is code and numbers",
        test_twins_have_the_same_spans_and_numbers_per_section: "the number 3 is in g.md but not in g_cn.md",
    }
    for check, message in expected.items():
        with pytest.raises(pytest.fail.Exception) as e:
            check(pair)
        assert message in str(e.value), str(e.value)
    with pytest.raises(pytest.fail.Exception) as e:
        test_twins_have_the_same_spans_and_numbers_per_section(pair)
    assert "backticked span 'a' appears 1 time(s) in g.md, 0 in g_cn.md" in str(e.value)
    bad_link = (pair[0], bilingual.parse(tmp_path / "g.md"))
    with pytest.raises(pytest.fail.Exception, match="the line after the title must be"):
        test_twins_link_each_other(bad_link)
