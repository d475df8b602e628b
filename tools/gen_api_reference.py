#!/usr/bin/env python3
"""Writes docs/api_reference.md, the reference of hbm_runtime's public API, from the package's
docstrings and type stubs.

    python tools/gen_api_reference.py            # rewrite docs/api_reference.md
    python tools/gen_api_reference.py --check    # exit 1 with a unified diff if it is stale

The API part is read from the source tree with ``ast`` only (src/hbm_runtime/*.py and the
extension's committed stub src/hbm_runtime/_hbm_ext.pyi), never from imported objects, so the
page is the same on every Python version and machine, and no build is needed: signatures are
printed from the parsed annotations and defaults, docstrings as written (cleaned as
``inspect.cleandoc`` does). The documented names are those of ``__all__`` in
src/hbm_runtime/__init__.py, found through its imports.

The command line part calls ``build_parser()`` of src/hbm_runtime/__main__.py, loaded from the
source tree under a private package name, without the package's ``__init__`` (so without the
compiled extension). The options are listed from the parser's actions; argparse's own help
text is not used, as its layout depends on the Python version and the terminal width.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import copy
import difflib
import importlib
import importlib.machinery
import importlib.util
import inspect
import pathlib
import re
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = pathlib.Path("docs") / "api_reference.md"
PACKAGE = "hbm_runtime"
COMMAND = "python tools/gen_api_reference.py"
PROG = "python -m hbm_runtime"
NOT_DOCUMENTED = "*Not documented.*"
SIGNATURE_WIDTH = 96

VERSION_TEXT = (
    "The version of the package, a string such as ``'1.2.0'``: the version of the installed "
    "distribution, and the first word of ``HB_HBMRuntime.version``."
)


class GeneratorError(Exception):
    """The sources are not laid out as the generator expects."""


# ---- reading the sources -----------------------------------------------------------------------


class Module:
    """One parsed source file of the package."""

    def __init__(self, name: str, path: pathlib.Path) -> None:
        self.name = name
        self.source = path.read_text(encoding="utf-8")
        self.lines = self.source.splitlines()
        self.tree = ast.parse(self.source, filename=path.name)
        self.doc = ast.get_docstring(self.tree) or ""
        self.defs: Dict[str, ast.stmt] = {}
        self.imports: Dict[str, Tuple[str, Optional[str]]] = {}  # name -> (module, attr or None)
        for node in self.tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                self.defs[node.name] = node
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.defs[target.id] = node
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                self.defs[node.target.id] = node
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    bound = alias.asname or alias.name
                    if node.level == 1 and node.module is None:  # from . import X: a submodule
                        self.imports[bound] = (alias.name, None)
                    elif node.level == 1:
                        self.imports[bound] = (node.module or "", alias.name)
                    else:
                        self.imports[bound] = ("", None)  # outside the package
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    self.imports[alias.asname or alias.name.split(".")[0]] = ("", None)

    def all_names(self) -> List[str]:
        node = self.defs.get("__all__")
        if not isinstance(node, ast.Assign) or not isinstance(node.value, (ast.List, ast.Tuple)):
            raise GeneratorError(f"{self.name}: no literal __all__ list")
        names = []
        for element in node.value.elts:
            if not isinstance(element, ast.Constant) or not isinstance(element.value, str):
                raise GeneratorError(f"{self.name}: __all__ holds something other than strings")
            names.append(element.value)
        return names

    def comment_above(self, node: ast.stmt) -> str:
        """The ``#`` comment lines right above a statement (``#:`` markers dropped)."""
        found: List[str] = []
        i = node.lineno - 2
        while i >= 0 and self.lines[i].lstrip().startswith("#"):
            found.append(re.sub(r"^#:?\s?", "", self.lines[i].strip()))
            i -= 1
        return "\n".join(reversed(found))


class Sources:
    """The package's modules, parsed on demand."""

    def __init__(self, package_dir: pathlib.Path) -> None:
        self.dir = package_dir
        self._modules: Dict[str, Module] = {}
        if not (package_dir / "__init__.py").is_file():
            raise GeneratorError(f"{package_dir} holds no __init__.py")

    def module(self, name: str) -> Module:
        if name not in self._modules:
            stem = "__init__" if name == "" else name
            for suffix in (".pyi", ".py"):  # a stub wins over the code, as for type checkers
                path = self.dir / (stem + suffix)
                if path.is_file():
                    self._modules[name] = Module(name, path)
                    break
            else:
                raise GeneratorError(f"no source for module '{name}' in {self.dir}")
        return self._modules[name]

    def resolve(self, module: Module, name: str) -> Optional[Tuple[Module, ast.stmt]]:
        """Where ``name``, as seen from ``module``, is defined in the package (None: outside)."""
        seen = 0
        while seen < 20:
            seen += 1
            if name in module.defs:
                return module, module.defs[name]
            if name not in module.imports:
                return None
            target, attr = module.imports[name]
            if not target or attr is None:
                return None
            module, name = self.module(target), attr
        raise GeneratorError(f"import cycle resolving {name}")

    def resolve_expr(self, module: Module, expr: ast.expr) -> Optional[Tuple[Module, ast.stmt]]:
        """A Name or ``submodule.Name`` expression (a base class, for instance)."""
        if isinstance(expr, ast.Name):
            return self.resolve(module, expr.id)
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            bound = module.imports.get(expr.value.id)
            if bound and bound[0] and bound[1] is None:  # from . import submodule
                return self.resolve(self.module(bound[0]), expr.attr)
        return None


# ---- what is documented ------------------------------------------------------------------------


@dataclass
class Member:
    name: str
    kind: str  # "property", "attribute", "method", "staticmethod", "classmethod"
    doc: str
    module: Module
    signatures: List[str] = field(default_factory=list)  # methods: one per overload
    annotation: Optional[str] = None  # properties and attributes
    default: Optional[str] = None  # attributes
    settable: bool = False  # properties
    type_nodes: List[ast.expr] = field(default_factory=list)


@dataclass
class Entry:
    name: str
    kind: str  # "class", "enum", "exception", "function", "data"
    doc: str
    module: Optional[Module]
    node: Optional[ast.stmt]
    bases: List[str] = field(default_factory=list)
    decorators: List[str] = field(default_factory=list)
    constructor: Optional[str] = None
    init_doc: str = ""
    members: List[Member] = field(default_factory=list)
    enum_members: List[Tuple[str, str, str]] = field(default_factory=list)  # name, value, doc
    signatures: List[str] = field(default_factory=list)  # functions
    type_nodes: List[ast.expr] = field(default_factory=list)


class _Unquote(ast.NodeTransformer):
    """String annotations (forward references) become the expressions they spell."""

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if isinstance(node.value, (ast.Name, ast.Attribute)) and ast.unparse(node.value).endswith("Literal"):
            return node
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str):
            try:
                parsed: ast.AST = _Unquote().visit(ast.parse(node.value, mode="eval").body)
                return parsed
            except SyntaxError:
                return node
        return node


def _type_expr(node: Optional[ast.expr]) -> Optional[ast.expr]:
    if node is None:
        return None
    result = _Unquote().visit(copy.deepcopy(node))
    assert isinstance(result, ast.expr)
    return result


def _unparse(node: ast.AST) -> str:
    return ast.unparse(node)


def _decorator_names(node: ast.stmt) -> List[str]:
    decorators = getattr(node, "decorator_list", [])
    return [_unparse(d.func if isinstance(d, ast.Call) else d) for d in decorators]


FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]


def _format_signature(name: str, fn: FunctionNode, drop_first: bool, returns: bool = True,
                      types: Optional[List[ast.expr]] = None) -> str:
    a = fn.args
    params: List[str] = []

    def one(arg: ast.arg, default: Optional[ast.expr]) -> str:
        text = arg.arg
        annotation = _type_expr(arg.annotation)
        if annotation is not None:
            text += ": " + _unparse(annotation)
            if types is not None:
                types.append(annotation)
        if default is not None:
            text += (" = " if annotation is not None else "=") + _unparse(default)
        return text

    positional = list(a.posonlyargs) + list(a.args)
    defaults: List[Optional[ast.expr]] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    pairs = list(zip(positional, defaults))
    n_posonly = len(a.posonlyargs)
    if drop_first and pairs:
        pairs = pairs[1:]
        n_posonly = max(0, n_posonly - 1)
    for i, (arg, default) in enumerate(pairs):
        params.append(one(arg, default))
        if n_posonly and i == n_posonly - 1:
            params.append("/")
    if a.vararg is not None:
        params.append("*" + one(a.vararg, None))
    elif a.kwonlyargs:
        params.append("*")
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        params.append(one(arg, default))
    if a.kwarg is not None:
        params.append("**" + one(a.kwarg, None))
    tail = ""
    if returns and fn.returns is not None:
        ret = _type_expr(fn.returns)
        assert ret is not None
        tail = " -> " + _unparse(ret)
        if types is not None:
            types.append(ret)
    return _wrap_call(name, params, tail)


def _wrap_call(name: str, params: Sequence[str], tail: str = "") -> str:
    flat = f"{name}({', '.join(params)}){tail}"
    if len(flat) <= SIGNATURE_WIDTH or not params:
        return flat
    inner = "".join(f"    {p},\n" for p in params)
    return f"{name}(\n{inner}){tail}"


def _docstring(node: ast.AST) -> str:
    if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
        return ast.get_docstring(node, clean=True) or ""
    return ""


def _attribute_docs(body: Sequence[ast.stmt]) -> Dict[str, str]:
    """Docstrings written right after an assignment (``x: int = 0`` then ``\"\"\"...\"\"\"``)."""
    docs: Dict[str, str] = {}
    for stmt, following in zip(body, body[1:]):
        if (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            target = None
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                target = stmt.target.id
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                target = stmt.targets[0].id
            if target is not None:
                docs[target] = inspect.cleandoc(following.value.value)
    return docs


def _class_body(node: ast.ClassDef) -> List[ast.stmt]:
    """The class's statements, with those under ``if TYPE_CHECKING:`` (typed declarations)."""
    body: List[ast.stmt] = []
    for stmt in node.body:
        if isinstance(stmt, ast.If) and _unparse(stmt.test).endswith("TYPE_CHECKING"):
            body.extend(stmt.body)
        else:
            body.append(stmt)
    return body


def _is_public_member(name: str, doc: str) -> bool:
    if name.startswith("__") and name.endswith("__"):
        return bool(doc) and name not in ("__init__", "__new__")
    return not name.startswith("_")


def _own_members(module: Module, node: ast.ClassDef, is_dataclass: bool) -> List[Member]:
    body = _class_body(node)
    attr_docs = _attribute_docs(body)
    members: Dict[str, Member] = {}
    overloads: Dict[str, List[str]] = {}
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decorators = _decorator_names(stmt)
            name = stmt.name
            doc = _docstring(stmt)
            if any(d.endswith(".setter") or d.endswith(".deleter") for d in decorators):
                if name in members:
                    members[name].settable = True
                continue
            if "property" in decorators:
                ret = _type_expr(stmt.returns)
                members[name] = Member(name, "property", doc, module,
                                       annotation=_unparse(ret) if ret is not None else None,
                                       type_nodes=[ret] if ret is not None else [])
                continue
            static = "staticmethod" in decorators
            kind = "staticmethod" if static else "classmethod" if "classmethod" in decorators else "method"
            types: List[ast.expr] = []
            signature = _format_signature(name, stmt, drop_first=not static, types=types)
            if "overload" in decorators or "typing.overload" in decorators:
                overloads.setdefault(name, []).append(signature)
                members.setdefault(name, Member(name, kind, "", module))
                members[name].type_nodes.extend(types)
                continue
            member = members.get(name)
            if member is not None and name in overloads:  # the implementation of overloads
                member.signatures = overloads[name]
                member.doc = doc
            else:
                members[name] = Member(name, kind, doc, module, signatures=[signature], type_nodes=types)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            target = stmt.target if isinstance(stmt, ast.AnnAssign) else stmt.targets[0]
            if not isinstance(target, ast.Name):
                continue
            annotation = _type_expr(stmt.annotation) if isinstance(stmt, ast.AnnAssign) else None
            if annotation is not None and _unparse(annotation).startswith("ClassVar") and not stmt.value:
                continue
            default = None
            if is_dataclass and isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                default = _dataclass_default(module, stmt.value)
            members[target.id] = Member(
                target.id, "attribute", attr_docs.get(target.id, ""), module,
                annotation=_unparse(annotation) if annotation is not None else None, default=default,
                type_nodes=[annotation] if annotation is not None else [])
    return [m for m in members.values() if _is_public_member(m.name, m.doc)]


def _dataclass_default(module: Module, value: ast.expr) -> str:
    """A field's default as the constructor shows it (a default_factory's returned value)."""
    if isinstance(value, ast.Call) and _unparse(value.func).endswith("field"):
        for keyword in value.keywords:
            if keyword.arg == "default":
                return _unparse(keyword.value)
            if keyword.arg == "default_factory":
                factory = keyword.value
                if isinstance(factory, ast.Name) and isinstance(module.defs.get(factory.id), ast.FunctionDef):
                    fn = module.defs[factory.id]
                    assert isinstance(fn, ast.FunctionDef)
                    stmts = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
                    if len(stmts) == 1 and isinstance(stmts[0], ast.Return) and stmts[0].value is not None:
                        return _unparse(stmts[0].value)
                if isinstance(factory, ast.Name) and factory.id in ("list", "dict", "set", "tuple"):
                    return {"list": "[]", "dict": "{}", "set": "set()", "tuple": "()"}[factory.id]
                return "<factory>"
    return _unparse(value)


_ENUM_BASES = ("Enum", "IntEnum", "IntFlag", "Flag", "StrEnum")


class Collector:
    def __init__(self, sources: Sources) -> None:
        self.src = sources

    def is_exception(self, module: Module, node: ast.ClassDef, depth: int = 0) -> bool:
        for base in node.bases:
            if isinstance(base, ast.Name) and isinstance(getattr(builtins, base.id, None), type) \
                    and issubclass(getattr(builtins, base.id), BaseException):
                return True
            found = self.src.resolve_expr(module, base)
            if found and isinstance(found[1], ast.ClassDef) and depth < 20 \
                    and self.is_exception(found[0], found[1], depth + 1):
                return True
        return False

    def entry(self, name: str) -> Entry:
        init = self.src.module("")
        if name == "__version__":
            return Entry(name, "data", VERSION_TEXT, None, None)
        found = self.src.resolve(init, name)
        if found is None:
            raise GeneratorError(f"__all__ names {name}, which is not defined in the package")
        module, node = found
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            types: List[ast.expr] = []
            signature = _format_signature(name, node, drop_first=False, types=types)
            return Entry(name, "function", _docstring(node), module, node, signatures=[signature],
                         type_nodes=types)
        if isinstance(node, ast.ClassDef):
            return self.class_entry(name, module, node)
        doc = _attribute_docs(module.tree.body).get(name, "") or module.comment_above(node)
        return Entry(name, "data", doc, module, node)

    def class_entry(self, name: str, module: Module, node: ast.ClassDef) -> Entry:
        base_names = [_unparse(b) for b in node.bases]
        decorators = _decorator_names(node)
        is_dataclass = any(d.split(".")[-1] == "dataclass" for d in decorators)
        if any(b.split(".")[-1] in _ENUM_BASES for b in base_names):
            kind = "enum"
        elif self.is_exception(module, node):
            kind = "exception"
        else:
            kind = "class"
        entry = Entry(name, kind, _docstring(node), module, node,
                      decorators=[d for d in decorators if d.split(".")[-1] == "dataclass"])
        entry.bases = [b for b in base_names if not b.split(".")[-1].startswith("_")]
        if kind == "enum":
            docs = _attribute_docs(node.body)
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) \
                        and not stmt.targets[0].id.startswith("_"):
                    member_name = stmt.targets[0].id
                    entry.enum_members.append((member_name, _unparse(stmt.value), docs.get(member_name, "")))
            return entry
        # Members: this class's, then those its package base classes add (docstrings inherited
        # as inspect.getdoc does, the most derived signature kept).
        chain: List[Tuple[Module, ast.ClassDef]] = [(module, node)]
        while True:
            cur_module, cur = chain[-1]
            nxt = None
            for base in cur.bases:
                found = self.src.resolve_expr(cur_module, base)
                if found and isinstance(found[1], ast.ClassDef):
                    nxt = (found[0], found[1])
                    break
            if nxt is None or len(chain) > 20:
                break
            chain.append(nxt)
        merged: Dict[str, Member] = {}
        for i, (cur_module, cur) in enumerate(chain):
            for member in _own_members(cur_module, cur, is_dataclass and i == 0):
                if member.name not in merged:
                    merged[member.name] = member
                elif not merged[member.name].doc:
                    merged[member.name].doc = member.doc
        entry.members = list(merged.values())
        types: List[ast.expr] = []
        init = next((s for s in _class_body(node) if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
        if init is not None:
            entry.constructor = _format_signature(name, init, drop_first=True, returns=False, types=types)
            entry.init_doc = _docstring(init)
        elif is_dataclass:
            params = []
            for m in entry.members:
                if m.kind == "attribute" and m.annotation is not None:
                    text = f"{m.name}: {m.annotation}"
                    if m.default is not None:
                        text += f" = {m.default}"
                    params.append(text)
                    types.extend(m.type_nodes)
            entry.constructor = _wrap_call(name, params)
        entry.type_nodes = types
        for m in entry.members:
            entry.type_nodes.extend(m.type_nodes)
        return entry


# ---- docstrings to Markdown -------------------------------------------------------------------


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


class Linker:
    """Turns ``:func:`name``` references into links to this page's sections."""

    def __init__(self) -> None:
        self.anchors: Dict[str, str] = {}

    def add(self, name: str, heading: str) -> None:
        self.anchors[name] = slug(heading)

    def find(self, target: str, context: Optional[str]) -> Optional[str]:
        target = target.lstrip("~")
        if target.startswith(PACKAGE + "."):  # spelled out in full: not a member of the context
            return self.anchors.get(target[len(PACKAGE) + 1:])
        if context and f"{context}.{target}" in self.anchors:
            return self.anchors[f"{context}.{target}"]
        return self.anchors.get(target)


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Return|Yields|Raises|Attributes|"
                      r"Examples?|Notes?|See Also|Warnings?):\s*$")
_ITEM_SECTIONS = {"Args", "Arguments", "Parameters", "Raises", "Attributes"}
_INLINE = re.compile(r"(?P<role>:(?:py:)?(?P<kind>func|meth|attr|class|data|exc|mod|obj):`(?P<target>[^`]+)`)"
                     r"|(?P<lit>``.+?``)"
                     r"|(?P<code>`[^`]+`)", re.S)


def _escape_text(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("*", "\\*").replace("<", "\\<")
    text = re.sub(r"(?<![\w\\])_", r"\\_", text)  # _x or __x__ would start emphasis
    return re.sub(r"^(\s*)([#>+=]|\d+[.)])", lambda m: m.group(1) + "\\" + m.group(2), text, flags=re.M)


def _code_span(content: str) -> str:
    ticks = "``" if "`" in content else "`"
    pad = " " if ticks == "``" or content.startswith(" ") or content.endswith(" ") else ""
    return f"{ticks}{pad}{content}{pad}{ticks}"


def inline(text: str, linker: Linker, context: Optional[str]) -> str:
    out: List[str] = []
    pos = 0
    for m in _INLINE.finditer(text):
        out.append(_escape_text(text[pos:m.start()]))
        pos = m.end()
        if m.group("role"):
            target = m.group("target").strip()
            shown = target.lstrip("~")
            if m.group("kind") in ("func", "meth"):
                shown += "()"
            anchor = linker.find(target, context)
            out.append(f"[{_code_span(shown)}](#{anchor})" if anchor else _code_span(shown))
        elif m.group("lit"):
            out.append(_code_span(m.group("lit")[2:-2]))
        else:
            out.append(m.group("code"))
    out.append(_escape_text(text[pos:]))
    return "".join(out)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _fence(lang: str, lines: List[str]) -> List[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    while lines and not lines[0].strip():
        lines = lines[1:]
    body = textwrap.dedent("\n".join(lines)).splitlines()
    return ["", f"```{lang}", *body, "```", ""]


def _items(lines: List[str], linker: Linker, context: Optional[str]) -> List[str]:
    """``name: text`` items of an Args/Raises/Attributes section as a Markdown list."""
    items: List[Tuple[str, List[str]]] = []
    for line in lines:
        if not line.strip():
            continue
        m = re.match(r"^([\w.*]+(?:\s*,\s*[\w.*]+)*)(?:\s+\(([^)]*)\))?:(?:\s+(.*))?$", line)
        if not line.startswith(" ") and m:
            names = ", ".join(_code_span(n.strip()) for n in m.group(1).split(","))
            if m.group(2):
                names += f" ({_code_span(m.group(2))})"
            items.append((names, [m.group(3) or ""]))
        elif items:
            items[-1][1].append(line.strip())
        else:
            items.append(("", [line.strip()]))
    out = []
    for names, text in items:
        body = inline("\n".join(t for t in text if t), linker, context).replace("\n", "\n  ")
        out.append(f"- {names}: {body}" if names else f"- {body}")
    return ["", *out, ""]


def doc_to_markdown(doc: str, linker: Linker, context: Optional[str] = None) -> List[str]:
    """A cleaned docstring (reST inline markup, doctests, ``::`` blocks, Google-style sections)
    as Markdown lines."""
    lines = doc.splitlines()
    out: List[str] = []
    paragraph: List[str] = []

    def flush() -> None:
        if paragraph:
            text = inline("\n".join(paragraph), linker, context)
            for line in text.splitlines():
                # Markdown would take 4+ leading spaces as a code block: keep list continuations only.
                out.append(" " * min(_indent(line), 2) + line.lstrip(" "))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            flush()
            out.append("")
            i += 1
            continue
        if stripped.startswith(">>>"):
            flush()
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out.extend(_fence("pycon", block))
            continue
        section = _SECTION.match(line)
        if section:
            flush()
            title = section.group(1)
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                block.append(lines[i])
                i += 1
            body = textwrap.dedent("\n".join(block)).strip("\n").splitlines()
            out.extend(["", f"**{title}:**", ""])
            if title in _ITEM_SECTIONS:
                out.extend(_items(body, linker, context))
            else:
                out.extend(doc_to_markdown("\n".join(body), linker, context))
            out.append("")
            continue
        if stripped.endswith("::"):
            text = stripped[:-2].rstrip()
            if text:
                paragraph.append(" " * _indent(line) + (text if line.rstrip().endswith(" ::") else text + ":"))
            flush()
            base = _indent(line)
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
                block.append(lines[i])
                i += 1
            out.extend(_fence("python", block))
            continue
        paragraph.append(line)
        i += 1
    flush()
    return _tidy(out)


def _tidy(lines: List[str]) -> List[str]:
    """No leading, trailing or repeated blank lines."""
    out: List[str] = []
    for line in lines:
        line = line.rstrip()
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return out


def summary(doc: str, linker: Linker, context: Optional[str] = None) -> str:
    """The first paragraph of a docstring on one line, for a table cell."""
    first = doc.strip().split("\n\n")[0]
    text = " ".join(line.strip() for line in first.splitlines())
    return inline(text, linker, context).replace("|", "\\|") if text else NOT_DOCUMENTED


# ---- the command line -------------------------------------------------------------------------


def load_cli(package_dir: pathlib.Path) -> argparse.ArgumentParser:
    """The command line's parser, built by the source tree's __main__.py, which is loaded under
    a private package name: neither the package's __init__ nor the compiled extension runs."""
    name = "_hbm_runtime_api_reference_source"
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(package_dir)]
    package = importlib.util.module_from_spec(spec)
    saved = {k: v for k, v in sys.modules.items() if k == name or k.startswith(name + ".")}
    sys.modules[name] = package
    try:
        try:
            cli = importlib.import_module(name + ".__main__")
        except ImportError as e:
            raise GeneratorError(
                f"cannot load {package_dir.name}/__main__.py without the package's __init__ ({e}): "
                "the command line section needs build_parser() to import nothing compiled at the "
                "top of the module") from e
        setattr(cli, "_prog", lambda: PROG)  # not the name of this script
        parser: argparse.ArgumentParser = cli.build_parser()
    finally:
        for k in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[k]
        sys.modules.update(saved)
    return parser


def _actions(parser: argparse.ArgumentParser) -> List[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS]


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.option_strings:
        return action.dest.upper()
    return action.dest


def _with_values(head: str, action: argparse.Action) -> str:
    if action.nargs == 0:
        return head
    mv = _metavar(action)
    nargs = action.nargs
    if nargs is None:
        values = mv
    elif nargs == "?":
        values = f"[{mv}]"
    elif nargs == "*":
        values = f"[{mv} ...]"
    elif nargs == "+":
        values = f"{mv} [{mv} ...]"
    elif isinstance(nargs, int):
        values = " ".join([mv] * nargs)
    else:
        values = "..."
    return f"{head} {values}" if head else values


def _argument(action: argparse.Action) -> str:
    if not action.option_strings:
        return _with_values("", action)
    if isinstance(action, argparse.BooleanOptionalAction):
        return " | ".join(action.option_strings)
    return _with_values(action.option_strings[0], action)


def _usage(command: str, parser: argparse.ArgumentParser) -> str:
    groups = {id(a): g for g in parser._mutually_exclusive_groups for a in g._group_actions}
    parts: List[str] = []
    done: Set[int] = set()
    for action in _actions(parser):
        if id(action) in done:
            continue
        group = groups.get(id(action))
        if group is not None:
            members = [a for a in group._group_actions if a.help != argparse.SUPPRESS]
            done.update(id(a) for a in members)
            text = " | ".join(_argument(a) for a in members)
            parts.append(f"({text})" if group.required else f"[{text}]")
            continue
        text = _argument(action)
        if action.option_strings and not action.required:
            text = f"[{text}]"
        parts.append(text)
    # Wrapped as argparse does, at a fixed width, under the first argument.
    head = f"{PROG} {command} "
    lines, line = [], head
    for part in parts:
        if line.strip() != head.strip() and len(line) + len(part) > SIGNATURE_WIDTH:
            lines.append(line.rstrip())
            line = " " * len(head)
        line += part + " "
    lines.append(line.rstrip())
    return "\n".join(lines)


def _help_text(action: argparse.Action) -> str:
    text = action.help or ""
    if "%" in text:
        params = dict(vars(action), prog=PROG)
        text = text % params
    return text


def _subcommands(parser: argparse.ArgumentParser) -> List[Tuple[str, str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


# ---- the page --------------------------------------------------------------------------------


_SECTIONS = (("class", "Classes"), ("enum", "Enumerations"), ("exception", "Exceptions"),
             ("function", "Functions"), ("data", "Module attributes"))
_KIND_LABEL = {"class": "class", "enum": "enumeration", "exception": "exception", "function": "function",
               "data": "attribute"}
_COMPAT_HEADING = "The hbm_runtime.HB_HBMRuntime module"
_TYPES_HEADING = "Types in signatures"
_CLI_HEADING = "Command line"


def _member_label(entry: Entry, member: Member) -> str:
    return f"{entry.name}.{member.name}"


def _member_sort_key(member: Member) -> int:
    return 0 if member.kind in ("attribute", "property") else 1


class Page:
    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.package_dir = root / "src" / PACKAGE
        self.src = Sources(self.package_dir)
        self.linker = Linker()
        self.undocumented: List[str] = []

    def _doc(self, doc: str, label: str, context: Optional[str] = None) -> List[str]:
        if not doc.strip():
            self.undocumented.append(label)
            return [NOT_DOCUMENTED]
        return doc_to_markdown(doc, self.linker, context)

    def render(self) -> str:
        init = self.src.module("")
        names = init.all_names()
        public = set(names)
        collector = Collector(self.src)
        entries = [collector.entry(n) for n in names]
        by_kind: Dict[str, List[Entry]] = {}
        for e in entries:
            by_kind.setdefault(e.kind, []).append(e)
        for e in entries:
            self.linker.add(e.name, e.name)
            for m in e.members:
                self.linker.add(_member_label(e, m), _member_label(e, m))
        compat = self.src.module("HB_HBMRuntime")
        parser = load_cli(self.package_dir)
        commands = _subcommands(parser)
        cli_main = self.src.module("__main__").defs.get("main")

        out: List[str] = [f"# {PACKAGE} API reference", ""]
        out.append(f"Generated by `{COMMAND}` from the package's docstrings and type stubs: do not edit "
                   f"it by hand. `{COMMAND} --check` tells whether it is current.")
        out.append("")
        out.extend(doc_to_markdown(init.doc, self.linker))
        out.append("")
        out.append("Everything below is importable from `hbm_runtime` (`from hbm_runtime import "
                   "HB_HBMRuntime`); the names are those of `hbm_runtime.__all__`.")
        out.extend(["", "## Contents", ""])
        out.append("- [Public names](#public-names)")
        for kind, title in _SECTIONS:
            if kind in by_kind:
                links = ", ".join(f"[`{e.name}`](#{slug(e.name)})" for e in by_kind[kind])
                out.append(f"- [{title}](#{slug(title)}): {links}")
        out.append(f"- [{_COMPAT_HEADING}](#{slug(_COMPAT_HEADING)})")
        out.append(f"- [{_TYPES_HEADING}](#{slug(_TYPES_HEADING)})")
        cmd_links = ", ".join(f"[`{n}`](#{slug(PROG + ' ' + n)})" for n, _, _ in commands)
        out.append(f"- [{_CLI_HEADING}](#{slug(_CLI_HEADING)}): {cmd_links}")

        out.extend(["", "## Public names", "", "| name | kind | summary |", "|---|---|---|"])
        for e in entries:
            out.append(f"| [`{e.name}`](#{slug(e.name)}) | {_KIND_LABEL[e.kind]} | "
                       f"{summary(e.doc, self.linker, e.name if e.kind != 'function' else None)} |")

        type_nodes: List[Tuple[Module, ast.expr]] = []
        for kind, title in _SECTIONS:
            if kind not in by_kind:
                continue
            out.extend(["", f"## {title}"])
            for e in by_kind[kind]:
                out.extend(self._entry(e))
                if e.module is not None:
                    type_nodes.extend((e.module, t) for t in e.type_nodes)
                    for m in e.members:
                        type_nodes.extend((m.module, t) for t in m.type_nodes)

        out.extend(["", f"## {_COMPAT_HEADING}", ""])
        out.extend(self._doc(compat.doc, "hbm_runtime.HB_HBMRuntime module"))
        out.append("")
        links = ", ".join(f"[`{n}`](#{slug(n)})" if n in public else f"`{n}`" for n in compat.all_names())
        out.append(f"Its names (`hbm_runtime.HB_HBMRuntime.__all__`): {links}.")

        out.extend(self._types(type_nodes, public))
        out.extend(self._cli(parser, commands, cli_main))
        return "\n".join(_tidy(out)) + "\n"

    def _entry(self, e: Entry) -> List[str]:
        out = ["", f"### `{e.name}`", ""]
        code: List[str] = []
        if e.kind == "function":
            code.extend(e.signatures)
        elif e.kind == "data":
            code.append(f"{PACKAGE}.{e.name}: str" if e.name == "__version__" else f"{PACKAGE}.{e.name}")
        else:
            code.extend(f"@{d}" for d in e.decorators)
            code.append(f"class {e.name}" + (f"({', '.join(e.bases)})" if e.bases else ""))
            if e.constructor:
                code.append(e.constructor)
        out.extend(["```python", *code, "```", ""])
        out.extend(self._doc(e.doc, e.name, e.name))
        if e.init_doc:
            out.extend(["", f"**Constructor** `{e.name}(...)`:", ""])
            out.extend(doc_to_markdown(e.init_doc, self.linker, e.name))
        if e.kind == "enum":
            out.extend(["", "| member | value | meaning |", "|---|---|---|"])
            for name, value, doc in e.enum_members:
                if not doc:
                    self.undocumented.append(f"{e.name}.{name}")
                cell = summary(doc, self.linker, e.name) if doc else NOT_DOCUMENTED
                out.append(f"| `{e.name}.{name}` | `{value}` | {cell} |")
        members = sorted(e.members, key=_member_sort_key)  # stable: source order within a kind
        if members:
            index = " · ".join(f"[`{m.name}`](#{slug(_member_label(e, m))})" for m in members)
            out.extend(["", f"Members: {index}"])
        for m in members:
            label = _member_label(e, m)
            out.extend(["", f"#### `{label}`", ""])
            if m.kind == "property":
                note = "property, settable" if m.settable else "property, read-only"
                text = f"{label}: {m.annotation}" if m.annotation else label
                out.extend(["```python", f"{text}  # {note}", "```", ""])
            elif m.kind == "attribute":
                text = f"{label}: {m.annotation}" if m.annotation else label
                if m.default is not None:
                    text += f" = {m.default}"
                out.extend(["```python", text, "```", ""])
            else:
                prefix = {"staticmethod": "@staticmethod\n", "classmethod": "@classmethod\n"}.get(m.kind, "")
                sigs = [f"{e.name}.{s}" for s in m.signatures]
                out.extend(["```python", prefix + "\n".join(sigs), "```", ""])
            out.extend(self._doc(m.doc, label, e.name))
        return out

    def _types(self, type_nodes: List[Tuple[Module, ast.expr]], public: Set[str]) -> List[str]:
        """Aliases and protocols of the package that public signatures name."""
        found: List[Tuple[str, Module, ast.stmt]] = []
        seen: Set[Tuple[str, str]] = set()
        queue = list(type_nodes)
        while queue:
            module, node = queue.pop(0)
            for name_node in [n for n in ast.walk(node) if isinstance(n, ast.Name)]:
                name = name_node.id
                if name in public:
                    continue
                resolved = self.src.resolve(module, name)
                if resolved is None:
                    continue
                def_module, stmt = resolved
                if (name, def_module.name) in seen or name in public:
                    continue
                seen.add((name, def_module.name))
                found.append((name, def_module, stmt))
                if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
                    value = _type_expr(stmt.value)
                    assert value is not None
                    queue.append((def_module, value))
                elif isinstance(stmt, ast.ClassDef):
                    for sub in ast.walk(stmt):
                        if isinstance(sub, ast.FunctionDef):
                            queue.extend((def_module, t) for t in
                                         [_type_expr(sub.returns), *[_type_expr(a.annotation) for a in sub.args.args]]
                                         if t is not None)
        out = ["", f"## {_TYPES_HEADING}", ""]
        out.append("Annotations are shown as the sources write them: `np` is numpy, `npt` is "
                   "numpy.typing, and `Any`, `Dict`, `List`, `Mapping`, `Optional`, `Sequence`, "
                   "`Tuple`, `Union` come from typing. These names of the package appear in them:")
        for name, module, stmt in found:
            out.extend(["", f"### `{name}`", ""])
            if isinstance(stmt, ast.ClassDef):
                bases = f"({', '.join(_unparse(b) for b in stmt.bases)})" if stmt.bases else ""
                lines = [f"class {name}{bases}:"]
                for sub in stmt.body:
                    if isinstance(sub, ast.FunctionDef):
                        for d in _decorator_names(sub):
                            lines.append(f"    @{d}")
                        lines.append(f"    def {_format_signature(sub.name, sub, drop_first=False)}: ...")
                out.extend(["```python", *lines, "```"])
                doc = _docstring(stmt)
            else:
                value = _type_expr(getattr(stmt, "value", None))
                text = f"{name} = {_unparse(value)}" if value is not None else name
                out.extend(["```python", text, "```"])
                doc = module.comment_above(stmt)
            if doc:
                out.append("")
                out.extend(doc_to_markdown(doc, self.linker))
        return out

    def _cli(self, parser: argparse.ArgumentParser, commands: List[Tuple[str, str, argparse.ArgumentParser]],
             cli_main: Optional[ast.stmt]) -> List[str]:
        out = ["", f"## {_CLI_HEADING}", ""]
        out.extend(doc_to_markdown(inspect.cleandoc(parser.description or ""), self.linker))
        out.extend(["", "[cli.md](cli.md) documents every command in full: output formats, JSON "
                        "schemas, exit statuses.", "", "```", f"{PROG} {{{','.join(n for n, _, _ in commands)}}} ...",
                    f"hbm-runtime {{{','.join(n for n, _, _ in commands)}}} ...   # the installed console script",
                    "```", "", "| command | what it does |", "|---|---|"])
        for name, help_text, _ in commands:
            what = inline(help_text, self.linker, None).replace("|", "\\|")
            out.append(f"| [`{name}`](#{slug(PROG + ' ' + name)}) | {what} |")
        out.extend(["", "Every command also takes `-h` / `--help`."])
        for name, help_text, sub in commands:
            heading = f"{PROG} {name}"
            out.extend(["", f"### `{heading}`", ""])
            description = sub.description or help_text
            out.extend(doc_to_markdown(inspect.cleandoc(description), self.linker) if description
                       else [NOT_DOCUMENTED])
            out.extend(["", "```", _usage(name, sub), "```", "", "| argument | meaning |", "|---|---|"])
            for action in _actions(sub):
                meaning = inline(_help_text(action), self.linker, None).replace("|", "\\|") or NOT_DOCUMENTED
                if meaning == NOT_DOCUMENTED:
                    self.undocumented.append(f"{heading} {_argument(action)}")
                out.append(f"| {_code_span(_argument(action)).replace('|', chr(92) + '|')} | {meaning} |")
        if isinstance(cli_main, ast.FunctionDef):
            out.extend(["", "From Python, the same command line runs as `hbm_runtime.__main__.main`:", "",
                        "```python", _format_signature("main", cli_main, drop_first=False), "```", ""])
            out.extend(self._doc(_docstring(cli_main), "hbm_runtime.__main__.main"))
        return out


def generate(root: pathlib.Path = ROOT) -> Tuple[str, List[str]]:
    """The page for the source tree at ``root``, and the names it found without a docstring."""
    page = Page(root)
    text = page.render()
    return text, page.undocumented


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Writes docs/api_reference.md from hbm_runtime's docstrings and type stubs.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 with a unified diff if the page is not current")
    parser.add_argument("--root", type=pathlib.Path, default=ROOT, help="source tree (default: this script's)")
    parser.add_argument("--output", type=pathlib.Path, default=None,
                        help=f"the page (default: ROOT/{PAGE.as_posix()})")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    output = args.output if args.output is not None else root / PAGE
    try:
        text, undocumented = generate(root)
    except GeneratorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name in undocumented:
        print(f"warning: {name} has no docstring", file=sys.stderr)
    current = output.read_text(encoding="utf-8") if output.is_file() else ""
    shown = PAGE.as_posix() if output == root / PAGE else str(output)
    if args.check:
        if current == text:
            print(f"{shown} is current")
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            current.splitlines(keepends=True), text.splitlines(keepends=True),
            f"{shown} (on disk)", f"{shown} (generated)"))
        print(f"{shown} is not current: run {COMMAND}", file=sys.stderr)
        return 1
    if current == text:
        print(f"{shown} is current")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
