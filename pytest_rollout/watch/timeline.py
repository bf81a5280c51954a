"""Writing ``<out>/timeline.jsonl``: one whole, fsynced JSON line per look (docs/watch.md)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_rollout.instants import parse_instant
from pytest_rollout.looks import LookResult
from pytest_rollout.report.timeline import gate_entries, record_since

TIMELINE_NAME = "timeline.jsonl"


def look_entry(
    number: int,
    at: str,
    phase: str,
    result: LookResult,
    out: Path,
    flag_changes: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The timeline line of one look (the format of docs/watch.md)."""
    record = result.record
    context = record.get("context") if isinstance(record.get("context"), Mapping) else {}
    entry: dict[str, Any] = {
        "look": number,
        "at": at,
        "phase": phase,
        "decision": result.decision.value,
        "exit_code": result.exit_code,
        "reason": result.reason,
        "run_id": (context or {}).get("run_id"),
        "record": _relative(result.record_path, out),
        "report": _relative(result.report_path, out),
        "since": record_since(record),
        "gates": gate_entries(record),
        "flag_changes": [dict(c) for c in flag_changes],
    }
    return entry


def _relative(path: Path, out: Path) -> str:
    try:
        return str(path.relative_to(out))
    except ValueError:
        return str(path)


def append_line(path: Path, entry: Mapping[str, Any]) -> None:
    """Append ``entry`` as one line with a single write, then fsync.

    One ``write`` of the whole line on an O_APPEND descriptor: a reader never sees half a line
    unless the machine dies mid-write, and the reader skips a torn last line.
    """
    data = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def flag_changes_between(
    audit_log: Path | None, start: float | None, end: float
) -> list[dict[str, Any]]:
    """The audit log's flag changes in ``(start, end]``, one entry per flag.

    An unreadable log gives no marks: the chart loses its flag lines, the decision nothing.
    """
    if audit_log is None or not audit_log.is_file():
        return []
    from pytest_rollout.flags.audit import AuditLog

    out: list[dict[str, Any]] = []
    try:
        changes = AuditLog(audit_log).changes()
    except OSError:
        return []
    for change in changes:
        try:
            when = parse_instant(change.time)
        except ValueError:
            continue
        if (start is not None and when <= start) or when > end:
            continue
        for flag, states in change.flags.items():
            out.append(
                {
                    "time": change.time,
                    "flag": flag,
                    "before": states.get("before"),
                    "after": states.get("after"),
                    "actor": change.actor,
                    "reason": change.reason,
                    "status": change.status,
                }
            )
    return out
