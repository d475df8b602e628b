"""The comparison logic of the vendor differential (tools/vendor_diff): two synthetic probe
reports in, the verdict and the printed diff out. Needs neither qemu nor the vendor's wheel."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "vendor_diff"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"vendor_diff_{name}", TOOL / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


compare = _load("compare")
intentional = sys.modules["intentional"]  # the module compare.py reads its list from

VENDOR_ERR = intentional.VENDOR_RUNTIME_ERROR
OUR_ERR = intentional.OUR_INVALID_ARGUMENT


def report(side: str, items: dict, notes: dict = None) -> dict:
    return {"schema": compare.SCHEMA, "side": side,
            "info": {"dist": f"{side}-dist", "python": "3.10.7", "machine": "aarch64"},
            "items": items, "notes": notes or {}}


BASE = {
    "meta[multi.hbm].input_shapes": {"m_add": {"a": [2, 3], "b": [2, 3]}},
    "run[multi.hbm].m_add.dict.m_add.out[y]": {"shape": [2, 3], "dtype": "float32", "strides": [12, 4],
                                               "sha256": "4f7fdcd999326c11"},
    "sched[bpu_cores=[0, 1]].submitted": [{"priority": "0", "custom_id": "0", "backend": "0x3", "device": "0"}],
    "error[run wrong dtype]": VENDOR_ERR,
}


def pair(vendor_changes: dict = None, our_changes: dict = None):
    v, o = copy.deepcopy(BASE), copy.deepcopy(BASE)
    v.update(vendor_changes or {})
    o.update(our_changes or {})
    return report("vendor", v), report("ours", o)


def test_identical_reports_pass():
    v, o = pair()
    result = compare.compare(v, o)
    assert result.ok
    assert (result.compared, result.same, result.intentional, result.unexpected) == (4, 4, [], [])
    assert "RESULT: OK" in compare.format_result(result, v, o)


def test_listed_difference_passes_and_is_named():
    v, o = pair(our_changes={"error[run wrong dtype]": OUR_ERR})
    result = compare.compare(v, o)
    assert result.ok
    assert [(item, entry.key) for item, entry, _, _ in result.intentional] == [("error[run wrong dtype]", "value-error")]
    text = compare.format_result(result, v, o)
    assert "[value-error] 1 item(s)" in text and "error[run wrong dtype]" in text
    assert "1 intentional differences, 0 known (to fix), 0 unexpected" in text


def test_checksum_difference_fails_and_names_item_and_field():
    changed = dict(BASE["run[multi.hbm].m_add.dict.m_add.out[y]"], sha256="0000000000000000")
    v, o = pair(our_changes={"run[multi.hbm].m_add.dict.m_add.out[y]": changed})
    result = compare.compare(v, o)
    assert not result.ok
    assert [item for item, _, _ in result.unexpected] == ["run[multi.hbm].m_add.dict.m_add.out[y]"]
    text = compare.format_result(result, v, o)
    assert "UNEXPECTED differences (1)" in text
    assert "run[multi.hbm].m_add.dict.m_add.out[y]" in text
    assert "at sha256" in text and '"4f7fdcd999326c11"' in text and '"0000000000000000"' in text
    assert "RESULT: DIFFERENT" in text


def test_listed_item_with_other_values_fails():
    # The item matches the value-error entry, but ours raises TypeError: not what is listed.
    v, o = pair(our_changes={"error[run wrong dtype]": intentional.VENDOR_TYPE_ERROR})
    result = compare.compare(v, o)
    assert not result.ok and [i for i, _, _ in result.unexpected] == ["error[run wrong dtype]"]
    text = compare.format_result(result, v, o)
    assert "at error.raised[0]" in text


def test_listed_values_on_an_unlisted_item_fail():
    # The same pair of exceptions, on an item no entry names (a model load).
    v, o = pair({"load[multi.hbm]": VENDOR_ERR}, {"load[multi.hbm]": OUR_ERR})
    result = compare.compare(v, o)
    assert [i for i, _, _ in result.unexpected] == ["load[multi.hbm]"]


def test_key_order_is_compared():
    item = "log[lifecycle multi.hbm]"  # no entry accepts an order difference there
    v, o = pair({item: {"mallocs": [], "flushes": []}}, {item: {"flushes": [], "mallocs": []}})
    result = compare.compare(v, o)
    assert not result.ok and [i for i, _, _ in result.unexpected] == [item]
    text = compare.format_result(result, v, o)
    assert f"  {item}\n    at (key order):" in text
    assert '["mallocs","flushes"]' in text and '["flushes","mallocs"]' in text


def test_key_on_one_side_only_is_named():
    grown = {"m_add": {"a": [2, 3], "b": [2, 3], "c": [1]}}
    v, o = pair(our_changes={"meta[multi.hbm].input_shapes": grown})
    text = compare.format_result(compare.compare(v, o), v, o)
    assert "at m_add.c:" in text and "vendor: (no such item)" in text and "ours:   [1]" in text


def test_item_on_one_side_only_fails():
    v, o = pair(our_changes={"sched[device_id=1].run": "ok"})
    result = compare.compare(v, o)
    assert [(i, vv is intentional.MISSING) for i, vv, _ in result.unexpected] == [("sched[device_id=1].run", True)]
    assert "(no such item)" in compare.format_result(result, v, o)


def test_notes_are_shown_not_compared():
    v, o = pair(our_changes={"error[run wrong dtype]": intentional.VENDOR_TYPE_ERROR})
    v["notes"]["error[run wrong dtype]"] = "RuntimeError: Input tensor dtype mismatch"
    o["notes"]["error[run wrong dtype]"] = "TypeError: something else"
    text = compare.format_result(compare.compare(v, o), v, o)
    assert "(vendor said: RuntimeError: Input tensor dtype mismatch)" in text
    assert "(ours said: TypeError: something else)" in text
    v2, o2 = pair()
    v2["notes"]["meta[multi.hbm].input_shapes"] = "only a note differs"
    assert compare.compare(v2, o2).ok


def test_missing_and_any_markers():
    entry = intentional.Intentional(key="k", summary="s", reason="r", items=["sched[device_id=1].*"],
                                    vendor=intentional.MISSING, ours=intentional.ANY)
    assert entry.covers("sched[device_id=1].run", intentional.MISSING, "ok")
    assert not entry.covers("sched[device_id=1].run", "ok", "ok")
    assert not entry.covers("sched[device_id=1].run", intentional.MISSING, intentional.MISSING)
    assert not entry.covers("sched[device_id=2].run", intentional.MISSING, "ok")
    # '[' in item ids is literal, not a character class.
    entry2 = intentional.Intentional(key="k2", summary="s", reason="r", items=["a[b]"], vendor=1, ours=2)
    assert entry2.covers("a[b]", 1, 2) and not entry2.covers("ab", 1, 2)


def test_stale_entries_are_listed_without_failing():
    v, o = pair()
    result = compare.compare(v, o)
    assert {e.key for e in result.stale} == {e.key for e in intentional.INTENTIONAL + intentional.KNOWN}
    text = compare.format_result(result, v, o)
    assert "not seen in this run" in text and result.ok


def test_every_entry_has_a_reason_and_a_unique_key():
    entries = intentional.INTENTIONAL + intentional.KNOWN
    keys = [e.key for e in entries]
    assert len(keys) == len(set(keys))
    loose = (intentional.ANY, intentional.NO_ERROR)
    for e in entries:
        assert e.summary and len(e.reason) > 40 and e.items, e.key
        assert e.pairs or e.normalize, e.key
        for v, o in e.pairs:  # a pair must pin down at least one side
            assert not (v in loose and o in loose), e.key


# A KNOWN entry of the kind the list holds while a defect of ours is open (key order once was).
KNOWN_EXAMPLE = [intentional.Intentional(
    key="dict-order", summary="order of dict keys", reason="an example of a defect of ours to fix: "
    "the dicts' key order differed from the vendor's", items=["meta[*"], normalize=intentional._ignore_order)]


def test_known_difference_is_named_and_fails_unless_accepted():
    reordered = {"m_add": {"b": [2, 3], "a": [2, 3]}}
    v, o = pair({"meta[multi.hbm].input_shapes": reordered})
    result = compare.compare(v, o, known=KNOWN_EXAMPLE)
    assert not result.ok and result.unexpected == []
    assert [(i, e.key) for i, e, _, _ in result.known] == [("meta[multi.hbm].input_shapes", "dict-order")]
    text = compare.format_result(result, v, o)
    assert "KNOWN differences, to fix (1 items" in text and "[dict-order]" in text
    assert "RESULT: DIFFERENT, only in KNOWN differences" in text
    accepted = compare.compare(v, o, known=KNOWN_EXAMPLE, accept_known=True)
    assert accepted.ok
    assert "RESULT: OK, only intentional and known differences" in compare.format_result(accepted, v, o)
    # Order plus another change: not covered by the order-only entry.
    v2, o2 = pair({"meta[multi.hbm].input_shapes": {"m_add": {"b": [2, 3], "a": [2, 4]}}})
    assert [i for i, _, _ in compare.compare(v2, o2, known=KNOWN_EXAMPLE, accept_known=True).unexpected] == [
        "meta[multi.hbm].input_shapes"]
    # With nothing KNOWN, a reordering is unexpected.
    assert [i for i, _, _ in compare.compare(v, o, known=[]).unexpected] == ["meta[multi.hbm].input_shapes"]


def test_normalized_entry_covers_only_what_it_normalizes():
    entry = next(e for e in intentional.INTENTIONAL if e.key == "min-buffer-64")
    vendor = {"mallocs": [[8, 1], [24, 1], [128, 1]], "flushes": [["CLEAN", 8], ["INVALIDATE", 128]]}
    ours = {"mallocs": [[64, 1], [64, 1], [128, 1]], "flushes": [["CLEAN", 64], ["INVALIDATE", 128]]}
    assert entry.covers("log[lifecycle multi.hbm]", vendor, ours)
    assert not entry.covers("log[run multi.hbm].m_add.dict", vendor, ours)  # not a listed item
    more = dict(ours, mallocs=ours["mallocs"] + [[64, 1]])  # one allocation more
    assert not entry.covers("log[lifecycle multi.hbm]", vendor, more)
    bigger = dict(ours, mallocs=[[64, 1], [128, 1], [128, 1]])  # 24 -> 128: not the 64 minimum
    assert not entry.covers("log[lifecycle multi.hbm]", vendor, bigger)


def test_no_error_marker():
    entry = next(e for e in intentional.INTENTIONAL if e.key == "quantparams-constructor")
    assert entry.covers("api.QuantParams()", intentional.VENDOR_TYPE_ERROR, {"quant_type": ["NONE", 0]})
    assert not entry.covers("api.QuantParams()", intentional.VENDOR_TYPE_ERROR, OUR_ERR)
    assert not entry.covers("api.QuantParams()", intentional.VENDOR_TYPE_ERROR, intentional.MISSING)


def test_command_line_exit_status_and_json(tmp_path):
    v, o = pair(our_changes={"error[run wrong dtype]": OUR_ERR})
    paths = []
    for name, r in (("v", v), ("o", o)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(r))
    out = tmp_path / "diff.json"
    proc = subprocess.run([sys.executable, str(TOOL / "compare.py"), *map(str, paths), "--json", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(out.read_text())
    assert (summary["ok"], summary["compared"], summary["intentional"], summary["known"],
            summary["unexpected"]) == (True, 4, 1, 0, 0)
    assert summary["intentional_by_entry"] == {"value-error": ["error[run wrong dtype]"]}

    o["items"]["meta[multi.hbm].input_shapes"] = {"m_add": {"a": [2, 4], "b": [2, 3]}}
    paths[1].write_text(json.dumps(o))
    proc = subprocess.run([sys.executable, str(TOOL / "compare.py"), *map(str, paths)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "meta[multi.hbm].input_shapes" in proc.stdout and "at m_add.a[1]" in proc.stdout

    paths[1].write_text(json.dumps({"items": {}}))
    proc = subprocess.run([sys.executable, str(TOOL / "compare.py"), *map(str, paths)], capture_output=True, text=True)
    assert proc.returncode == 2 and "not a probe report" in proc.stderr


def test_log_summary_renumbers_ids_and_counts_leaks():
    pytest.importorskip("numpy")
    probe = _load("probe")
    log = [
        "malloc mem=17 bytes=256 cached=1 vir=0x7f00",
        "malloc mem=18 bytes=64 cached=1 vir=0x7f40",
        "flush mem=17 flag=CLEAN bytes=256",
        "infer task=9 model=m inputs=17 outputs=18",
        "submit task=9 priority=3 custom_id=-4 backend=0x2 device=0",
        "wait task=9 status=0",
        "flush mem=18 flag=INVALIDATE bytes=64",
        "release task=9 state=done",
        "free mem=17",
    ]
    summary, normalized = probe.summarize_log(log)
    assert summary["mallocs"] == [[64, 1], [256, 1]]
    assert summary["flushes"] == [["CLEAN", 256], ["INVALIDATE", 64]]
    assert summary["submits"] == [{"priority": "3", "custom_id": "-4", "backend": "0x2", "device": "0"}]
    assert summary["infers"] == 1 and summary["unreleased_tasks"] == 0
    assert summary["live_mems_after"] == [64]  # mem 18 never freed
    assert normalized[0] == "malloc mem=m0 bytes=256 cached=1 vir=*"
    assert normalized[3] == "infer task=t0 model=m inputs=m0 outputs=m1"


def test_error_record_families():
    pytest.importorskip("numpy")
    probe = _load("probe")

    class InvalidArgument(ValueError, RuntimeError):
        pass

    assert probe.error_record(InvalidArgument("x")) == OUR_ERR["error"]
    assert probe.error_record(RuntimeError("x")) == VENDOR_ERR["error"]
    assert probe.error_record(TypeError("x")) == intentional.VENDOR_TYPE_ERROR["error"]


def test_run_sh_rejects_unknown_steps():
    proc = subprocess.run(["bash", str(TOOL / "run.sh"), "--steps", "probe,bogus"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown step 'bogus'" in proc.stderr


def test_docs_list_every_entry():
    doc = (TOOL.parents[1] / "docs" / "vendor_diff.md").read_text()
    for e in intentional.INTENTIONAL + intentional.KNOWN:
        assert f"| `{e.key}` |" in doc, f"docs/vendor_diff.md does not list {e.key}"
