"""A look fails closed on a bad gate run; the timeline section escapes what it shows."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from pytest_rollout.decision import Decision, build_record
from pytest_rollout.looks import read_look
from pytest_rollout.report.timeline import read_timeline, timeline_html
from pytest_rollout.watch.timeline import append_line


def write_record(path: Path, decision: Decision) -> dict[str, Any]:
    record = build_record(
        phase="phase2",
        decision=decision,
        reason="r",
        evaluated_at="2026-11-30T20:00:00Z",
        window={},
        environment=None,
        gates=[],
        flags={},
        actions=[],
    )
    path.write_text(json.dumps(record))
    return record


def test_a_verified_record_with_its_exit_status_is_the_decision(tmp_path: Path) -> None:
    write_record(tmp_path / "record.json", Decision.GO)
    look = read_look(0, tmp_path / "record.json", tmp_path / "report.html")
    assert (look.decision, look.exit_code) == (Decision.GO, 0)


def test_exit_0_without_a_record_is_hold(tmp_path: Path) -> None:
    look = read_look(0, tmp_path / "record.json", tmp_path / "report.html")
    assert look.decision is Decision.HOLD
    assert "wrote no decision record" in look.reason


def test_a_tampered_record_is_hold(tmp_path: Path) -> None:
    record = write_record(tmp_path / "record.json", Decision.HOLD)
    record["decision"] = "GO"
    (tmp_path / "record.json").write_text(json.dumps(record))
    look = read_look(0, tmp_path / "record.json", tmp_path / "report.html")
    assert look.decision is Decision.HOLD and "does not verify" in look.reason


def test_exit_status_and_record_disagreeing_is_hold(tmp_path: Path) -> None:
    write_record(tmp_path / "record.json", Decision.HOLD)
    look = read_look(0, tmp_path / "record.json", tmp_path / "report.html")
    assert look.decision is Decision.HOLD and "exit 0 means GO" in look.reason


def test_a_pytest_failure_exit_is_hold_naming_it(tmp_path: Path) -> None:
    write_record(tmp_path / "record.json", Decision.HOLD)
    look = read_look(4, tmp_path / "record.json", tmp_path / "report.html")
    assert look.decision is Decision.HOLD and look.reason == "gate run failed: exit 4"


def test_appended_lines_read_back_and_a_torn_tail_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    append_line(path, {"look": 1, "decision": "HOLD"})
    append_line(path, {"look": 2, "decision": "GO"})
    with path.open("a") as handle:
        handle.write('{"look": 3, "deci')  # a crash mid-line
    assert [e["look"] for e in read_timeline(path)] == [1, 2]


def test_the_timeline_section_escapes_every_value() -> None:
    hostile = "<script>alert(1)</script>"
    looks = [
        {
            "look": 1,
            "at": "2026-11-30T20:00:00Z",
            "decision": hostile,
            "gates": [],
            "flag_changes": [{"time": "2026-11-30T19:59:00Z", "flag": hostile, "after": 1}],
        },
        {
            "look": 2,
            "at": "2026-11-30T20:10:00Z",
            "decision": "ABORT",
            "gates": [
                {
                    "name": "g",
                    "kind": "abort",
                    "metric": hostile,
                    "lower": 0.03,
                    "upper": 0.09,
                    "abort_margin": 0.02,
                    "unit": "s",
                }
            ],
        },
    ]
    section = timeline_html(looks, lambda v: html.escape(str(v), quote=True))
    assert "<script>" not in section
    assert "&lt;script&gt;" in section
    assert section.count("data:image/png;base64,") == 1
    assert "became certain at look #2" in section
