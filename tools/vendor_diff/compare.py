"""Compares two probe reports of the vendor differential (probe.py) and prints the diff.

    python compare.py VENDOR.json OURS.json [--json DIFF.json] [--all]

Every item of either report is compared exactly (JSON value, dict key order included). A
difference is *intentional* when an entry of ``intentional.py`` covers the item and both
values; every other difference, an item present on one side only included, is
*unexpected*; one covered by a ``KNOWN`` entry there (a defect of ours, to fix) is *known*.
Exit status: 0 when nothing differs but intentional differences (known ones too with
``--accept-known``), 1 otherwise, 2 on bad input. Entries that covered nothing are listed
as stale (the difference went away) without failing the comparison. Runs on any CPython >= 3.8, with the standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from intentional import INTENTIONAL, KNOWN, MISSING, Intentional  # noqa: E402

SCHEMA = "hbm_runtime.vendor_diff/1"
MAX_SHOWN = 300  # characters of a value shown in the diff


class ReportError(ValueError):
    """A file is not a probe report."""


def load_report(path: str) -> Dict[str, Any]:
    try:
        with open(path) as fh:
            report = json.load(fh)
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: cannot read a report: {e}") from None
    check_report(report, path)
    return report


def check_report(report: Any, what: str) -> None:
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise ReportError(f"{what}: not a probe report (schema {SCHEMA!r} expected)")
    if not isinstance(report.get("items"), dict):
        raise ReportError(f"{what}: the report has no 'items' object")


def canonical(value: Any) -> str:
    """Order-sensitive text of a JSON value: equal texts mean equal values, key order too."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def same_ignoring_order(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def where_different(a: Any, b: Any, path: str = "", limit: int = 6) -> List[Tuple[str, Any, Any]]:
    """The innermost places where two JSON values differ: (path, a's value, b's value)."""
    out: List[Tuple[str, Any, Any]] = []

    def walk(x: Any, y: Any, p: str) -> None:
        if len(out) >= limit:
            return
        if x is MISSING or y is MISSING:
            out.append((p, x, y))
            return
        if canonical(x) == canonical(y):
            return
        if isinstance(x, dict) and isinstance(y, dict):
            if list(x) != list(y) and sorted(x) == sorted(y):
                out.append(((p + " " if p else "") + "(key order)", list(x), list(y)))
                if same_ignoring_order(x, y):
                    return
            for k in list(x) + [k for k in y if k not in x]:
                walk(x.get(k, MISSING), y.get(k, MISSING), f"{p}.{k}" if p else str(k))
            return
        if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (xi, yi) in enumerate(zip(x, y)):
                walk(xi, yi, f"{p}[{i}]")
            return
        out.append((p, x, y))

    walk(a, b, path)
    return out


def shown(value: Any) -> str:
    if value is MISSING:
        return "(no such item)"
    text = canonical(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


class Result:
    def __init__(self, accept_known: bool = False) -> None:
        self.accept_known = accept_known
        self.compared = 0
        self.same = 0
        self.intentional: List[Tuple[str, Intentional, Any, Any]] = []
        self.known: List[Tuple[str, Intentional, Any, Any]] = []
        self.unexpected: List[Tuple[str, Any, Any]] = []
        self.stale: List[Intentional] = []

    @property
    def ok(self) -> bool:
        return not self.unexpected and (self.accept_known or not self.known)

    def to_json(self) -> Dict[str, Any]:
        def by_entry(found: List[Tuple[str, Intentional, Any, Any]]) -> Dict[str, List[str]]:
            out: Dict[str, List[str]] = {}
            for item, entry, _, _ in found:
                out.setdefault(entry.key, []).append(item)
            return out
        return {
            "ok": self.ok, "compared": self.compared, "same": self.same,
            "intentional": len(self.intentional), "known": len(self.known),
            "unexpected": len(self.unexpected),
            "intentional_by_entry": by_entry(self.intentional),
            "known_by_entry": by_entry(self.known),
            "unexpected_items": [{"item": i, "vendor": None if v is MISSING else v,
                                  "ours": None if o is MISSING else o} for i, v, o in self.unexpected],
            "stale_entries": [e.key for e in self.stale],
        }


def compare(vendor: Dict[str, Any], ours: Dict[str, Any],
            intentional: Sequence[Intentional] = INTENTIONAL, known: Sequence[Intentional] = KNOWN,
            accept_known: bool = False) -> Result:
    check_report(vendor, "vendor report")
    check_report(ours, "our report")
    v_items, o_items = vendor["items"], ours["items"]
    result = Result(accept_known)
    used = set()
    keys = list(v_items) + [k for k in o_items if k not in v_items]
    for item in keys:
        v = v_items.get(item, MISSING)
        o = o_items.get(item, MISSING)
        result.compared += 1
        if v is not MISSING and o is not MISSING and canonical(v) == canonical(o):
            result.same += 1
            continue
        entry = next((e for e in intentional if e.covers(item, v, o)), None)
        if entry is not None:
            used.add(entry.key)
            result.intentional.append((item, entry, v, o))
            continue
        entry = next((e for e in known if e.covers(item, v, o)), None)
        if entry is not None:
            used.add(entry.key)
            result.known.append((item, entry, v, o))
            continue
        result.unexpected.append((item, v, o))
    result.stale = [e for e in list(intentional) + list(known) if e.key not in used]
    return result


def _grouped(lines: List[str], found: List[Tuple[str, Intentional, Any, Any]], show_all: bool) -> None:
    groups: Dict[str, List[str]] = {}
    entries: Dict[str, Intentional] = {}
    for item, entry, _, _ in found:
        groups.setdefault(entry.key, []).append(item)
        entries[entry.key] = entry
    for key, items in groups.items():
        lines.append(f"  [{key}] {len(items)} item(s): {entries[key].summary}")
        for item in items if show_all else items[:3]:
            lines.append(f"      {item}")
        if not show_all and len(items) > 3:
            lines.append(f"      ... and {len(items) - 3} more (--all lists them)")


def format_result(result: Result, vendor: Dict[str, Any], ours: Dict[str, Any], show_all: bool = False) -> str:
    lines: List[str] = []
    vi, oi = vendor.get("info", {}), ours.get("info", {})
    lines.append(f"vendor: {vi.get('dist', '?')} (Python {vi.get('python', '?')} {vi.get('machine', '?')})")
    lines.append(f"ours:   {oi.get('dist', '?')} (Python {oi.get('python', '?')} {oi.get('machine', '?')})")
    v_notes, o_notes = vendor.get("notes", {}), ours.get("notes", {})
    if result.unexpected:
        lines.append("")
        lines.append(f"UNEXPECTED differences ({len(result.unexpected)}):")
        for item, v, o in result.unexpected:
            lines.append(f"  {item}")
            if v is MISSING or o is MISSING:
                lines.append(f"      vendor: {shown(v)}")
                lines.append(f"      ours:   {shown(o)}")
            else:
                for path, a, b in where_different(v, o):
                    at = f" at {path}" if path else ""
                    lines.append(f"    {at.strip() or 'value'}:")
                    lines.append(f"      vendor: {shown(a)}")
                    lines.append(f"      ours:   {shown(b)}")
            for side, notes in (("vendor", v_notes), ("ours", o_notes)):
                note = notes.get(item)
                if note:
                    first = note.splitlines()[0] if not show_all else note.replace("\n", "\n               ")
                    lines.append(f"      ({side} said: {first[:400]})")
    if result.known:
        lines.append("")
        lines.append(f"KNOWN differences, to fix ({len(result.known)} items, KNOWN in intentional.py"
                     + (", accepted by --accept-known):" if result.accept_known else "):"))
        _grouped(lines, result.known, show_all)
    if result.intentional:
        lines.append("")
        lines.append(f"intentional differences ({len(result.intentional)} items, INTENTIONAL in intentional.py):")
        _grouped(lines, result.intentional, show_all)
    if result.stale:
        lines.append("")
        lines.append("listed in intentional.py but not seen in this run (the difference went away?):")
        for e in result.stale:
            lines.append(f"  [{e.key}] {e.summary}")
    lines.append("")
    lines.append(f"compared {result.compared} items: {result.same} the same, {len(result.intentional)} "
                 f"intentional differences, {len(result.known)} known (to fix), "
                 f"{len(result.unexpected)} unexpected")
    if result.unexpected:
        verdict = "DIFFERENT (see UNEXPECTED above)"
    elif result.known and not result.accept_known:
        verdict = "DIFFERENT, only in KNOWN differences to fix (--accept-known accepts them)"
    else:
        verdict = "OK, only intentional" + (" and known" if result.known else "") + " differences"
    lines.append("RESULT: " + verdict)
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("vendor", help="the vendor package's report (probe.py --out)")
    ap.add_argument("ours", help="our package's report")
    ap.add_argument("--json", help="also write the result as JSON here")
    ap.add_argument("--all", action="store_true", help="list every intentional item and whole notes")
    ap.add_argument("--accept-known", action="store_true",
                    help="do not fail on the KNOWN differences (defects of ours, to fix)")
    args = ap.parse_args(argv)
    try:
        vendor, ours = load_report(args.vendor), load_report(args.ours)
    except ReportError as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2
    result = compare(vendor, ours, accept_known=args.accept_known)
    print(format_result(result, vendor, ours, show_all=args.all))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result.to_json(), fh, indent=1)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
