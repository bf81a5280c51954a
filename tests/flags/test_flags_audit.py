"""The audit log file format, its torn-tail tolerance and the reconciliation rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout.flags.audit import (
    AuditLog,
    ChangeContext,
    change_records,
    default_actor,
    new_change_id,
    outcome_record,
    reconcile,
)
from pytest_rollout.flags.base import FlagState

CTX = ChangeContext(actor="alice", environment="production", phase="phase3", run_id="r1")


def change(change_id: str, parent: str | None, before: float, after: float) -> list[dict[str, Any]]:
    return change_records(
        change_id,
        CTX,
        backend="flagd-file:f.json",
        reason="ramp",
        before={"blended_recall": FlagState("blended_recall", "cohort", before)},
        after={"blended_recall": FlagState("blended_recall", "cohort", after)},
        flags=["blended_recall"],
        parent=parent,
    )


def test_append_writes_whole_lines_and_heals_a_torn_tail(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(change("a", None, 0, 5))
    with (tmp_path / "audit.jsonl").open("ab") as handle:
        handle.write(b'{"kind": "change", "id": "torn", "fl')  # a crash mid-append
    assert log.scan().corrupt == ()  # a torn last line is recognised, not reported
    log.append(change("b", "a", 5, 25))
    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    assert len(lines) == 4
    assert json.loads(lines[2]) | {"time": "t", "prev": "p"} == {  # prev: test_audit_chain.py
        "kind": "repair",
        "prev": "p",
        "line": 2,
        "time": "t",
        "message": "line 2 was torn by a crash mid-append and is ignored",
    }
    assert json.loads(lines[3])["parent"] == "a"
    assert [r["id"] for r in log.records()] == ["a", "b"]
    assert log.scan().corrupt == ()  # healed: still recognised, now by its repair line


def test_a_whole_record_cut_just_before_its_newline_is_kept_without_a_repair_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    path.write_bytes(json.dumps(change("a", None, 0, 5)[0]).encode())  # crash before "\n"
    log.append(change("b", "a", 5, 25))
    assert [json.loads(line)["kind"] for line in path.read_bytes().splitlines()] == ["change"] * 2
    assert [r["id"] for r in log.records()] == ["a", "b"] and log.scan().corrupt == ()


def test_a_corrupt_middle_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append([*change("a", None, 0, 5), outcome_record("a", "verified", "")])
    log.append(change("b", "a", 5, 25))
    log.append([outcome_record("b", "verified", ""), *change("c", "b", 25, 50)])
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"after": 25', b'"after": 2\x00')  # bit rot in b's line
    lines.insert(4, b"[1, 2]\n")  # valid JSON, but no audit record either
    path.write_bytes(b"".join(lines))
    scan = log.scan()
    assert [c.id for c in log.changes()] == ["a", "c"]  # b is lost from the history ...
    assert [(bad.line, bad.reason) for bad in scan.corrupt] == [  # ... but said, with where
        (3, "not valid JSON"),
        (5, 'not an audit record (a JSON object with a string "id")'),
    ]
    assert '"id": "b"' in scan.corrupt[0].text


def test_every_change_line_carries_the_required_fields(tmp_path: Path) -> None:
    [record] = change("a", None, 0, 5)
    assert set(record) >= {
        "time",
        "actor",
        "environment",
        "phase",
        "flag",
        "before",
        "after",
        "reason",
        "run_id",
    }
    assert record["time"].endswith("Z")


def test_outcome_line_decides_the_status() -> None:
    records = [*change("a", None, 0, 5), outcome_record("a", "verified", "ok")]
    [result] = reconcile(records)
    assert (result.status, result.before, result.after) == (
        "verified",
        {"blended_recall": 0},
        {"blended_recall": 5},
    )


def test_without_outcome_the_file_stamp_and_parent_chain_decide() -> None:
    records = [
        *change("a", None, 0, 5),  # writer died after replace: "b" names it as parent
        *change("x", "a", 5, 50),  # writer died before replace: "b" does not name it
        *change("b", "a", 5, 25),
        outcome_record("b", "verified", ""),
        *change("c", "b", 25, 50),  # last one: only the backend can tell
    ]
    statuses = {c.id: c.status for c in reconcile(records)}
    assert statuses == {"a": "applied", "x": "not-applied", "b": "verified", "c": "unknown"}
    read = {c.id: c.status for c in reconcile(records, backend_read=True, current_change_id="c")}
    assert read["c"] == "applied"
    read = {c.id: c.status for c in reconcile(records, backend_read=True, current_change_id="b")}
    assert read["c"] == "not-applied"


def test_backends_without_ids_reconcile_the_last_change_by_value() -> None:
    records = change_records(
        "h",
        CTX,
        backend="http://svc",
        reason="r",
        before={"f": FlagState("f", "boolean", False)},
        after={"f": FlagState("f", "boolean", True)},
        flags=["f"],
        parent=None,
        with_parent=False,
    )
    assert reconcile(records, current_state={"f": True})[0].status == "applied"
    assert reconcile(records, current_state={"f": False})[0].status == "unknown"
    assert reconcile(records)[0].status == "unknown"


def test_change_ids_sort_by_time_and_differ() -> None:
    ids = {new_change_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == len("20261125T140000Z-3f9a1c") for i in ids)


def test_default_actor_prefers_rollout_actor_then_ci_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER", "login")
    monkeypatch.setenv("GITHUB_ACTOR", "ci-bot")
    assert default_actor() == "ci-bot"
    monkeypatch.setenv("ROLLOUT_ACTOR", "oncall-alice")
    assert default_actor() == "oncall-alice"
