"""docs/api_reference.md: current with the sources (tools/gen_api_reference.py --check), and
covering the whole public API, each name and member with a description."""

from __future__ import annotations

import dataclasses
import difflib
import enum
import importlib
import importlib.util
import inspect
import os
import pathlib
import re
import shutil
import subprocess
import sys
from types import ModuleType
from typing import Dict, List, Tuple

import pytest

import hbm_runtime

REPO = pathlib.Path(__file__).resolve().parents[1]
GENERATOR = REPO / "tools" / "gen_api_reference.py"
PAGE = REPO / "docs" / "api_reference.md"
SOURCES = REPO / "src" / "hbm_runtime"
REGENERATE = "run: python tools/gen_api_reference.py"

_absent = [str(p.relative_to(REPO)) for p in (GENERATOR, PAGE.parent, SOURCES / "__init__.py") if not p.exists()]
if _absent:
    pytest.skip(f"needs the source tree beside the tests ({', '.join(_absent)} absent here)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api_reference", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


@pytest.fixture(scope="module")
def generated(gen: ModuleType) -> Tuple[str, List[str]]:
    return gen.generate(REPO)


@pytest.fixture(scope="module")
def page() -> str:
    assert PAGE.is_file(), f"{PAGE.relative_to(REPO)} is missing; {REGENERATE}"
    return PAGE.read_text(encoding="utf-8")


def _headings(text: str) -> Dict[str, int]:
    """Heading text -> line index, outside fenced code blocks."""
    found: Dict[str, int] = {}
    fenced = False
    for i, line in enumerate(text.splitlines()):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"^#{1,6} ", line):
            found[line.lstrip("#").strip()] = i
    return found


def _section(text: str, heading: str) -> str:
    """The lines under a heading, up to the next heading."""
    lines = text.splitlines()
    headings = _headings(text)
    assert heading in headings, f"docs/api_reference.md has no heading {heading!r}; {REGENERATE}"
    start = headings[heading] + 1
    end = min([i for i in headings.values() if i >= start] + [len(lines)])
    return "\n".join(lines[start:end])


def _prose(section: str) -> str:
    """A section without its fenced code blocks (signatures)."""
    return re.sub(r"^```.*?^```[ \t]*$", "", section, flags=re.M | re.S).strip()


def _assert_described(text: str, heading: str, marker: str) -> None:
    prose = _prose(_section(text, heading))
    assert prose, f"{heading}: no description in docs/api_reference.md"
    assert marker not in prose, f"{heading} has no docstring: write one, then {REGENERATE}"


# ---- current ---------------------------------------------------------------------------------


def test_page_is_current(gen, generated, page):
    text, _ = generated
    if text != page:
        diff = "".join(list(difflib.unified_diff(page.splitlines(keepends=True), text.splitlines(keepends=True),
                                                 "docs/api_reference.md", "generated"))[:120])
        pytest.fail(f"docs/api_reference.md is not current with the docstrings; {REGENERATE}\n{diff}")


def test_check_option_reports_a_stale_page_with_a_diff(gen, generated, tmp_path, capsys):
    text, _ = generated
    lines = text.splitlines(keepends=True)
    dropped = next(line for line in lines if line.startswith("| [`quantize`]"))
    stale = tmp_path / "api_reference.md"
    stale.write_text("".join(line for line in lines if line is not dropped), encoding="utf-8")

    assert gen.main(["--check", "--root", str(REPO), "--output", str(stale)]) == 1
    out, err = capsys.readouterr()
    assert "+" + dropped in out.splitlines(keepends=True), out  # a unified diff naming the line
    assert out.startswith("---") and "\n+++" in out
    assert "not current" in err and "gen_api_reference.py" in err
    assert dropped not in stale.read_text(encoding="utf-8"), "--check must not write"

    assert gen.main(["--root", str(REPO), "--output", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == text
    capsys.readouterr()
    assert gen.main(["--check", "--root", str(REPO), "--output", str(stale)]) == 0
    assert capsys.readouterr().out.strip().endswith("is current")


def _copy_sources(tmp_path: pathlib.Path) -> pathlib.Path:
    copy = tmp_path / "src" / "hbm_runtime"
    copy.mkdir(parents=True)
    for f in SOURCES.iterdir():
        if f.suffix in (".py", ".pyi"):
            shutil.copyfile(f, copy / f.name)
    return copy


def test_docstrings_drive_the_page_and_the_version_does_not(gen, generated, tmp_path):
    text, _ = generated
    copy = _copy_sources(tmp_path)
    (copy / "_version.py").write_text('__version__ = "987.65.4321"\n')
    assert gen.generate(tmp_path)[0] == text, "the page must not change with the release number"

    nv12 = (copy / "_nv12.py").read_text(encoding="utf-8")
    old = "Converts an RGB image to the two NV12 planes"
    assert old in nv12
    (copy / "_nv12.py").write_text(nv12.replace(old, "Turns an RGB picture into the two NV12 planes"),
                                   encoding="utf-8")
    changed = gen.generate(tmp_path)[0]
    assert changed != text
    assert "Turns an RGB picture into the two NV12 planes" in _section(changed, "`rgb_to_nv12`")


def test_same_page_in_another_process_directory_and_terminal(generated, tmp_path):
    """No dependence on the terminal width (argparse wraps to COLUMNS), hash seed or cwd."""
    text, _ = generated
    out = tmp_path / "page.md"
    env = dict(os.environ, COLUMNS="37", LINES="10", PYTHONHASHSEED="4242")
    proc = subprocess.run([sys.executable, str(GENERATOR), "--output", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_text(encoding="utf-8") == text
    for leak in (str(REPO), str(tmp_path)):
        assert leak not in text
    assert not re.search(r" at 0x[0-9a-fA-F]+", text), "an object's address in the page"


# ---- coverage ----------------------------------------------------------------------------------


def test_no_public_docstring_is_missing(gen, generated):
    _, undocumented = generated
    assert not undocumented, (
        "public names without a docstring (shown as 'Not documented' in docs/api_reference.md): "
        + ", ".join(undocumented))


def test_every_public_name_has_a_described_section(gen, page):
    table = _section(page, "Public names")
    for name in hbm_runtime.__all__:
        assert f"| [`{name}`](#" in table, f"{name} missing from the table of public names"
        _assert_described(page, f"`{name}`", gen.NOT_DOCUMENTED)


def _public_members(cls: type) -> List[str]:
    """Public attributes, properties and methods the package's classes define (inherited from
    the extension's base included; those of builtins such as dict left out)."""
    names: List[str] = []
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] != "hbm_runtime":
            continue
        names.extend(n for n in vars(klass) if not n.startswith("_"))
    if dataclasses.is_dataclass(cls):
        names.extend(f.name for f in dataclasses.fields(cls))
    return list(dict.fromkeys(names))


def test_every_public_member_has_a_described_section(gen, page):
    classes = [getattr(hbm_runtime, n) for n in hbm_runtime.__all__ if inspect.isclass(getattr(hbm_runtime, n))]
    assert hbm_runtime.HB_HBMRuntime in classes
    checked = 0
    for cls in classes:
        if issubclass(cls, enum.Enum):
            continue
        for member in _public_members(cls):
            _assert_described(page, f"`{cls.__name__}.{member}`", gen.NOT_DOCUMENTED)
            checked += 1
    # The extension's own methods are documented with the class that inherits them.
    for member in ("run", "run_async", "input_shapes", "set_scheduling_params", "close", "closed", "input_buffers"):
        assert member in _public_members(hbm_runtime.HB_HBMRuntime)
    assert checked >= 30


@pytest.mark.parametrize("enum_name", ["hbDNNDataType", "hbDNNQuantiType"])
def test_enum_members_with_values_and_meanings(gen, page, enum_name):
    cls = getattr(hbm_runtime, enum_name)
    rows = {}
    for line in _section(page, f"`{enum_name}`").splitlines():
        m = re.match(rf"^\| `{enum_name}\.(\w+)` \| `(-?\d+)` \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = (int(m.group(2)), m.group(3).strip())
    assert list(rows) == list(cls.__members__), "the page lists other members than the enum has"
    for name, member in cls.__members__.items():
        value, meaning = rows[name]
        assert value == int(member), f"{enum_name}.{name} is {int(member)}, the page says {value}"
        assert meaning and meaning != gen.NOT_DOCUMENTED, f"{enum_name}.{name} has no description"


def test_vendor_module_path_section(gen, page):
    module = importlib.import_module("hbm_runtime.HB_HBMRuntime")
    assert isinstance(module, ModuleType)
    section = _section(page, "The hbm_runtime.HB_HBMRuntime module")
    assert "from hbm_runtime.HB_HBMRuntime import" in section
    for name in module.__all__:
        assert f"[`{name}`](#" in section, f"hbm_runtime.HB_HBMRuntime.{name} missing from its section"


def test_command_line_section_lists_every_command_and_option(gen, page):
    from hbm_runtime.__main__ import build_parser

    parser = build_parser()
    sub_actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    assert len(sub_actions) == 1
    commands = sub_actions[0].choices
    assert set(commands) >= {"info", "bench", "demo"}
    cli = page[page.index("\n## Command line\n"):]
    assert "](cli.md)" in cli and (REPO / "docs" / "cli.md").is_file()
    for name, sub in commands.items():
        section = _section(page, f"`python -m hbm_runtime {name}`")
        assert _prose(section), f"command {name}: no description"
        for action in sub._actions:
            if action.help is None or action.help == "==SUPPRESS==" or "-h" in action.option_strings:
                continue
            spelled = action.option_strings or [action.metavar or action.dest]
            for option in spelled:
                assert re.search(rf"^\| `[^`]*{re.escape(option)}\b", section, re.M), (
                    f"{name} {option} missing from the command's table")
            row = next(line for line in section.splitlines() if line.startswith("| `") and spelled[0] in line)
            assert row.rstrip(" |").split(" | ")[-1].strip(), f"{name} {spelled[0]}: no description"


def test_links_point_at_headings(gen, page):
    anchors = {gen.slug(h) for h in _headings(page)}
    targets = re.findall(r"\]\(#([^)]+)\)", page)
    assert len(targets) > 50
    broken = sorted({t for t in targets if t not in anchors})
    assert not broken, f"links to missing sections: {broken}"
    assert page.splitlines()[0] == "# hbm_runtime API reference"
    assert "python tools/gen_api_reference.py" in "\n".join(page.splitlines()[:4])
    assert "## Contents" in page[:3000]
