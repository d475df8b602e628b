"""README_cn.md follows README.md: the same headings, code blocks, `$ ` command lines, tables,
backticked spans and numbers, section by section. Prose is free; whatever a reader would copy
(a command, an option, an env variable, an API name, a figure) must be in both files.

When this fails, the message names the section (by its English heading), the block, table or
row, and the span or number that is missing, and from which file."""

from __future__ import annotations

import collections
import difflib
import pathlib
import re
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
EN_PATH = REPO / "README.md"
CN_PATH = REPO / "README_cn.md"
EN_LINK = "[中文说明](README_cn.md)"
CN_LINK = "[English](README.md)"
HOW_TO_FIX = "keep README.md and README_cn.md in step: make the same change in both"

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")
SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
LINK_TARGET = re.compile(r"\]\([^)]*\)")
# A number written with digits and not glued to a word on its left (so `S100`, `x86_64`, `p99`,
# `int32` are names, not numbers); thousands separators are normalised away.
NUMBER = re.compile(r"(?<![A-Za-z0-9_.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
# A table cell "made of code and numbers" once its spans and units are removed.
UNIT = re.compile(r"(?<=[\d\s*])(?:µs|ms|MiB|GiB|KiB|MB|KB|GB|s|x)(?![A-Za-z])")
CODE_OR_NUMBER_REST = re.compile(r"^[\s\d.,:;+\-–—%±()\[\]/<>=*~]*$")


@dataclass
class CodeBlock:
    lang: str  # the info string after the fence, or "(indented)"
    text: str
    section: int


@dataclass
class Table:
    rows: List[List[str]]  # cells of every row, the separator row included
    section: int


@dataclass
class Section:
    level: int  # 0 for the text before the first heading
    heading: str
    prose: List[str] = field(default_factory=list)  # lines outside code blocks, heading included


@dataclass
class Doc:
    name: str
    lines: List[str]
    sections: List[Section]
    code_blocks: List[CodeBlock]
    tables: List[Table]


def _cells(row: str) -> List[str]:
    body = row.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|"):
        body = body[:-1]
    # a `|` inside a code span or escaped does not split cells
    cells, cur, in_code, i = [], "", False, 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            cur += body[i : i + 2]
            i += 2
            continue
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
        i += 1
    cells.append(cur.strip())
    return cells


def parse(path: pathlib.Path) -> Doc:
    lines = path.read_text(encoding="utf-8").split("\n")
    sections = [Section(0, "(text before the first heading)")]
    code_blocks: List[CodeBlock] = []
    tables: List[Table] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        cur = len(sections) - 1
        fence = FENCE.match(line)
        if fence:
            mark = fence.group(1)
            body: List[str] = []
            i += 1
            closing = re.compile(r"^ {0,3}" + re.escape(mark[0]) + "{%d,}\\s*$" % len(mark))
            while i < len(lines) and not closing.match(lines[i]):
                body.append(lines[i])
                i += 1
            code_blocks.append(CodeBlock(fence.group(2).strip(), "\n".join(body), cur))
            i += 1
            continue
        prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        if (
            line.startswith(("    ", "\t"))
            and line.strip()
            and i > 0
            and not lines[i - 1].strip()
            and not prev.startswith((" ", "\t"))
            and not LIST_ITEM.match(prev)
        ):
            body = []
            while i < len(lines) and (lines[i].startswith(("    ", "\t")) or not lines[i].strip()):
                body.append(lines[i][4:] if lines[i].startswith("    ") else lines[i].lstrip("\t"))
                i += 1
            while body and not body[-1].strip():
                body.pop()
            code_blocks.append(CodeBlock("(indented)", "\n".join(body), cur))
            continue
        heading = HEADING.match(line)
        if heading:
            sections.append(Section(len(heading.group(1)), heading.group(2), [heading.group(2)]))
            i += 1
            continue
        if line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(_cells(lines[i]))
                sections[cur].prose.append(lines[i])
                i += 1
            tables.append(Table(rows, cur))
            sections[cur].prose.append("")  # a table ends a paragraph
            continue
        sections[cur].prose.append(line)
        i += 1
    return Doc(path.name, lines, sections, code_blocks, tables)


@pytest.fixture(scope="module")
def docs() -> Tuple[Doc, Doc]:
    assert CN_PATH.is_file(), f"{CN_PATH.name} is missing: it is the Chinese version of README.md"
    return parse(EN_PATH), parse(CN_PATH)


def _where(en: Doc, index: int) -> str:
    s = en.sections[index]
    return f"section {'#' * s.level} {s.heading!r}" if s.level else "the text before the first heading"


def _spans(text: str) -> List[str]:
    """Inline code spans of a piece of prose, whitespace inside a span collapsed (a span may be
    wrapped over two lines), never across a blank line."""
    out: List[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        out.extend(re.sub(r"\s+", " ", m.group(2)).strip() for m in SPAN.finditer(paragraph))
    return out


def _numbers(text: str) -> Dict[str, str]:
    """Numbers written with digits in prose, outside code spans and link targets: the value with
    thousands separators removed -> the number as first written."""
    paragraphs = [SPAN.sub(" ", p) for p in re.split(r"\n\s*\n", text)]
    plain = LINK_TARGET.sub("]", "\n\n".join(paragraphs))
    found: Dict[str, str] = {}
    for m in NUMBER.finditer(plain):
        found.setdefault(m.group(0).replace(",", ""), m.group(0))
    return found


def _number_diff(where: str, en_text: str, cn_text: str) -> List[str]:
    a, b = _numbers(en_text), _numbers(cn_text)
    problems = [
        f"{where}: the number {a[k]} is in README.md but not in README_cn.md"
        for k in sorted(a.keys() - b.keys())
    ]
    problems += [
        f"{where}: README_cn.md has the number {b[k]}, README.md does not (a count the English spells out "
        "in words is spelled out in the Chinese too)"
        for k in sorted(b.keys() - a.keys())
    ]
    return problems


def _multiset_diff(what: str, where: str, en: Sequence[str], cn: Sequence[str]) -> List[str]:
    a, b = collections.Counter(en), collections.Counter(cn)
    problems = []
    for item in sorted(set(a) | set(b)):
        if a[item] != b[item]:
            problems.append(
                f"{where}: {what} {item!r} appears {a[item]} time(s) in README.md "
                f"but {b[item]} time(s) in README_cn.md"
            )
    return problems


def _fail(problems: List[str]) -> None:
    if problems:
        pytest.fail("\n".join(problems + [HOW_TO_FIX]), pytrace=False)


def _require_same_headings(en: Doc, cn: Doc) -> None:
    if [s.level for s in en.sections] != [s.level for s in cn.sections]:
        pytest.fail(
            "the two READMEs do not have the same headings, so their sections cannot be compared "
            "(see test_same_headings_in_the_same_order)",
            pytrace=False,
        )


def test_link_lines(docs):
    en, cn = docs
    problems = []
    for doc, link, other in ((en, EN_LINK, "README_cn.md"), (cn, CN_LINK, "README.md")):
        nonblank = [line for line in doc.lines if line.strip()]
        if len(nonblank) < 2 or not HEADING.match(nonblank[0]) or nonblank[1].strip() != link:
            problems.append(f"{doc.name}: the line after the title must be {link!r} (the link to {other})")
    _fail(problems)


def test_same_headings_in_the_same_order(docs):
    en, cn = docs
    a = [(s.level, s.heading) for s in en.sections[1:]]
    b = [(s.level, s.heading) for s in cn.sections[1:]]
    problems = []
    if len(a) != len(b):
        problems.append(f"README.md has {len(a)} headings, README_cn.md {len(b)}")
    matcher = difflib.SequenceMatcher(a=[lvl for lvl, _ in a], b=[lvl for lvl, _ in b], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        gone = ", ".join(f"{'#' * lvl} {h!r} (heading {k + 1})" for k, (lvl, h) in enumerate(a[i1:i2], i1))
        extra = ", ".join(f"{'#' * lvl} {h!r} (heading {k + 1})" for k, (lvl, h) in enumerate(b[j1:j2], j1))
        problems.append(
            f"heading levels differ: README.md has [{gone or 'nothing'}] where README_cn.md has "
            f"[{extra or 'nothing'}]"
        )
    _fail(problems)


def _first_difference(a: str, b: str) -> str:
    la, lb = a.split("\n"), b.split("\n")
    for n, (x, y) in enumerate(zip(la, lb), 1):
        if x != y:
            return f"line {n}: README.md {x!r} / README_cn.md {y!r}"
    return f"README.md has {len(la)} lines, README_cn.md {len(lb)}"


def test_code_blocks_are_identical(docs):
    en, cn = docs
    problems = []
    key = lambda block: (block.lang, block.text)  # noqa: E731
    if len(en.code_blocks) != len(cn.code_blocks):
        problems.append(
            f"README.md has {len(en.code_blocks)} code blocks, README_cn.md {len(cn.code_blocks)}"
        )
        matcher = difflib.SequenceMatcher(
            a=[key(b) for b in en.code_blocks], b=[key(b) for b in cn.code_blocks], autojunk=False
        )
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            for n in range(i1, i2) if op != "equal" else ():
                blk = en.code_blocks[n]
                problems.append(
                    f"code block {n + 1} of README.md ({blk.lang or 'no language'}, "
                    f"in {_where(en, blk.section)}, starting {blk.text.splitlines()[0] if blk.text else ''!r}) "
                    "is not in README_cn.md"
                )
            for n in range(j1, j2) if op != "equal" else ():
                blk = cn.code_blocks[n]
                problems.append(
                    f"code block {n + 1} of README_cn.md ({blk.lang or 'no language'}, starting "
                    f"{blk.text.splitlines()[0] if blk.text else ''!r}) is not in README.md"
                )
    else:
        for n, (a, b) in enumerate(zip(en.code_blocks, cn.code_blocks), 1):
            where = f"code block {n} ({_where(en, a.section)})"
            if a.lang != b.lang:
                problems.append(f"{where}: language {a.lang!r} in README.md, {b.lang!r} in README_cn.md")
            if a.text != b.text:
                problems.append(f"{where} differs at {_first_difference(a.text, b.text)}")
            elif a.section != b.section and [s.level for s in en.sections] == [s.level for s in cn.sections]:
                problems.append(f"{where} is in {_where(cn, b.section)} in README_cn.md")
    _fail(problems)


def test_dollar_lines_are_identical(docs):
    en, cn = docs
    a = [line for line in en.lines if line.startswith("$ ")]
    b = [line for line in cn.lines if line.startswith("$ ")]
    problems = []
    if not a:
        problems.append("README.md has no `$ ` command lines (.ci/run takes the test command from one)")
    for n in range(max(len(a), len(b))):
        x = a[n] if n < len(a) else "(none)"
        y = b[n] if n < len(b) else "(none)"
        if x != y:
            problems.append(f"`$ ` command line {n + 1}: README.md {x!r} / README_cn.md {y!r}")
    _fail(problems)


def _is_code_or_number(cell: str) -> bool:
    rest = UNIT.sub("", SPAN.sub("", cell))
    return bool(cell.strip()) and bool(CODE_OR_NUMBER_REST.match(rest))


def _code_and_numbers(cell: str) -> List[str]:
    """The spans and the numbers with their units of a cell, in order: what a cell made of code
    and numbers must keep in the translation (its separators may change, `a`, `b` -> `a`、`b`)."""
    return [
        m.group(1) or re.sub(r"\s+", " ", m.group(2))
        for m in re.finditer(r"(`[^`]+`)|(" + NUMBER.pattern + r"(?:\s*" + UNIT.pattern + r")?)", cell)
    ]


def test_tables_have_the_same_shape_and_code(docs):
    en, cn = docs
    _require_same_headings(en, cn)
    problems = []
    if len(en.tables) != len(cn.tables):
        problems.append(f"README.md has {len(en.tables)} tables, README_cn.md {len(cn.tables)}")
        for n, t in enumerate(en.tables, 1):
            problems.append(f"  README.md table {n}: {len(t.rows)} rows, in {_where(en, t.section)}")
        for n, t in enumerate(cn.tables, 1):
            problems.append(f"  README_cn.md table {n}: {len(t.rows)} rows, in {_where(en, t.section)}")
        _fail(problems)
    for n, (a, b) in enumerate(zip(en.tables, cn.tables), 1):
        where = f"table {n} ({_where(en, a.section)}, header {' | '.join(a.rows[0])!r})"
        if a.section != b.section:
            problems.append(f"{where} is in {_where(en, b.section)} in README_cn.md")
        if len(a.rows) != len(b.rows):
            problems.append(f"{where}: {len(a.rows)} rows in README.md, {len(b.rows)} in README_cn.md")
            # rows are told apart by their code and numbers, the prose being in two languages
            sig = lambda row: tuple(sorted(_code_and_numbers(" | ".join(row))))  # noqa: E731
            matcher = difflib.SequenceMatcher(
                a=[sig(x) for x in a.rows], b=[sig(x) for x in b.rows], autojunk=False
            )
            for op, i1, i2, j1, j2 in matcher.get_opcodes():
                for r in range(i1, i2) if op != "equal" else ():
                    problems.append(f"  README.md row {r + 1} {' | '.join(a.rows[r])!r} has no counterpart")
                for r in range(j1, j2) if op != "equal" else ():
                    problems.append(
                        f"  README_cn.md row {r + 1} {' | '.join(b.rows[r])!r} has no counterpart"
                    )
            continue
        for r, (ra, rb) in enumerate(zip(a.rows, b.rows), 1):
            if len(ra) != len(rb):
                problems.append(f"{where}, row {r}: {len(ra)} cells in README.md, {len(rb)} in README_cn.md")
                continue
            for c, (ca, cb) in enumerate(zip(ra, rb), 1):
                if _is_code_or_number(ca) and _code_and_numbers(ca) != _code_and_numbers(cb):
                    problems.append(
                        f"{where}, row {r}, column {c}: the cell {ca!r} is code or numbers and must keep "
                        f"them, in order, in README_cn.md, which has {cb!r}"
                    )
            problems += _multiset_diff(
                "backticked span", f"{where}, row {r}", _spans(" | ".join(ra)), _spans(" | ".join(rb))
            )
            problems += _number_diff(f"{where}, row {r}", " | ".join(ra), " | ".join(rb))
    _fail(problems)


def test_backticked_spans_per_section(docs):
    en, cn = docs
    _require_same_headings(en, cn)
    problems = []
    for n, (a, b) in enumerate(zip(en.sections, cn.sections)):
        problems += _multiset_diff(
            "backticked span", _where(en, n), _spans("\n".join(a.prose)), _spans("\n".join(b.prose))
        )
    _fail(problems)


def test_numbers_in_prose_per_section(docs):
    en, cn = docs
    _require_same_headings(en, cn)
    problems = []
    for n, (a, b) in enumerate(zip(en.sections, cn.sections)):
        problems += _number_diff(_where(en, n), "\n".join(a.prose), "\n".join(b.prose))
    _fail(problems)


@pytest.mark.parametrize(
    "text, spans, numbers",
    [
        ("a `b\n  c` d `e`", ["b c", "e"], set()),
        ("`x` `x`\n\n`y`", ["x", "x", "y"], set()),
        (
            "3,596,997 runs, 0.85x, 138.9 MiB, `1, 2` x86_64 S100 p99 int32",
            ["1, 2"],
            {"3596997", "0.85", "138.9"},
        ),
        ("[docs/v2.md](docs/v2.md) 第 2 个模型，约 50 ms，2**62", [], {"2", "50", "62"}),
    ],
)
def test_span_and_number_extraction(text, spans, numbers):
    assert _spans(text) == spans
    assert set(_numbers(text)) == numbers


def test_parser_finds_blocks_tables_and_sections(tmp_path):
    md = tmp_path / "x.md"
    md.write_text(
        "# T\n\nintro `a`\n\n```python\nx = 1\n```\n\n## S\n\n| a | b |\n|---|---|\n| `c` | 2 ms |\n\n"
        "- item\n\n      not code\n\ntext\n\n    indented code\n\n### U\n",
        encoding="utf-8",
    )
    doc = parse(md)
    assert [(s.level, s.heading) for s in doc.sections[1:]] == [(1, "T"), (2, "S"), (3, "U")]
    assert [(b.lang, b.text, b.section) for b in doc.code_blocks] == [
        ("python", "x = 1", 1),
        ("(indented)", "indented code", 2),
    ]
    assert [(t.rows, t.section) for t in doc.tables] == [([["a", "b"], ["---", "---"], ["`c`", "2 ms"]], 2)]
    assert _is_code_or_number("`c`") and _is_code_or_number("56.7 ms (**9.4x**)")
    assert not _is_code_or_number("a b") and not _is_code_or_number("1.60x (small CNN)")
    assert _code_and_numbers("56.7 ms (**9.4x**), `a`, `b`") == ["56.7 ms", "9.4x", "`a`", "`b`"]
    assert _code_and_numbers("`a`、`b`") == _code_and_numbers("`a`, `b`")
