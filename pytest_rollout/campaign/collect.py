"""Read what a campaign left behind: the audit log (and its chain), decision records, watch looks.

Nothing here trusts its input: each record's digest is checked with ``rollout verify``'s own
check, the audit log's hash chain with ``pytest_rollout.flags.audit_chain``, and every failure becomes a :class:`Problem` naming the file (and line) for the page and the
exit status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_rollout.flags.audit import AuditLog
from pytest_rollout.flags.audit_chain import verify_chain
from pytest_rollout.flags.base import FlagBackendError
from pytest_rollout.report.verify import check_record

TIMELINE = "timeline.jsonl"


@dataclass(frozen=True)
class Problem:
    """Something that did not verify: it fails the command and is marked red on the page."""

    where: str  # "path" or "path:line"
    message: str


@dataclass(frozen=True)
class ChainView:
    """The audit log's hash chain: verified or broken."""

    state: str  # "ok" | "broken"
    message: str
    broken_line: int | None = None
    legacy_lines: int = 0
    lines: int = 0


@dataclass(frozen=True)
class RecordEntry:
    """One decision record and whether its digest matched."""

    path: Path
    record: Mapping[str, Any]  # {} when unreadable; untrusted unless ok
    ok: bool
    problem: str = ""
    look: int | None = None  # the watch look that wrote it, if any

    @property
    def phase(self) -> str:
        return str(self.record.get("phase") or "?")

    @property
    def decision(self) -> str:
        return str(self.record.get("decision") or "?")

    @property
    def at(self) -> str:
        return str(self.record.get("at") or self.record.get("evaluated_at") or "")

    @property
    def run_id(self) -> str:
        context = self.record.get("context")
        nested = context.get("run_id") if isinstance(context, Mapping) else None
        return str(self.record.get("run_id") or nested or "")


@dataclass(frozen=True)
class AuditLine:
    """A parseable line of the audit log, with its 1-based line number."""

    line: int
    record: Mapping[str, Any]


@dataclass(frozen=True)
class Timeline:
    """A `rollout watch` timeline: one entry per look."""

    path: Path
    looks: tuple[Mapping[str, Any], ...]


@dataclass
class Campaign:
    audit_log: Path
    audit_lines: list[AuditLine] = field(default_factory=list)
    chain: ChainView = field(default_factory=lambda: ChainView("broken", "not checked yet"))
    records: list[RecordEntry] = field(default_factory=list)
    timelines: list[Timeline] = field(default_factory=list)
    reports_dir: Path | None = None
    problems: list[Problem] = field(default_factory=list)


def collect(audit_log: Path, records_dir: Path, reports_dir: Path | None = None) -> Campaign:
    campaign = Campaign(audit_log=audit_log, reports_dir=reports_dir)
    _read_audit_log(campaign)
    campaign.chain = check_chain(audit_log)
    if campaign.chain.state == "broken":
        where = f"{audit_log}:{campaign.chain.broken_line}" if campaign.chain.broken_line else ""
        campaign.problems.append(Problem(where or str(audit_log), campaign.chain.message))
    _read_records(campaign, records_dir)
    return campaign


def check_chain(path: Path) -> ChainView:
    """The chain verdict; a missing log is broken (a campaign always has one)."""
    if not path.exists():
        return ChainView("broken", f"audit log {path} not found: pass --audit-log PATH")
    report = verify_chain(path)
    lines, legacy = int(report.lines), int(report.legacy_lines)
    if report.ok:
        note = f"; {legacy} leading line(s) predate the chain" if legacy else ""
        return ChainView(
            "ok", f"hash chain verified over {lines} line(s){note}", None, legacy, lines
        )
    broken = report.broken_line
    at = f" at line {broken}" if broken else ""
    return ChainView(
        "broken",
        f"hash chain broken{at}: {report.problem} (the log was edited, truncated or reordered "
        "after it was written; compare it with its backup before trusting this history)",
        broken,
        legacy,
        lines,
    )


def _read_audit_log(campaign: Campaign) -> None:
    path = campaign.audit_log
    if not path.is_file():
        campaign.problems.append(
            Problem(str(path), "audit log not found: pass the environment's audit_log file")
        )
        return
    try:
        scan = AuditLog(path).scan()
        raw = path.read_bytes()
    except (FlagBackendError, OSError) as exc:
        campaign.problems.append(Problem(str(path), f"cannot read the audit log: {exc}"))
        return
    for bad in scan.corrupt:
        campaign.problems.append(
            Problem(f"{path}:{bad.line}", f"{bad.reason}: {bad.text!r} (a change may be lost)")
        )
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            value = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # reported above (or a torn last line)
        if isinstance(value, dict):
            campaign.audit_lines.append(AuditLine(number, value))


def _read_records(campaign: Campaign, records_dir: Path) -> None:
    if not records_dir.is_dir():
        campaign.problems.append(Problem(str(records_dir), "--records is not a directory"))
        return
    seen: set[Path] = set()
    for path in sorted(records_dir.glob("*.json")):
        entry = _record(path)
        if entry is not None:
            seen.add(path.resolve())
            _add_record(campaign, entry)
    dirs = [records_dir] + ([campaign.reports_dir] if campaign.reports_dir else [])
    timelines = sorted({p.resolve() for d in dirs for p in _timelines(d)})
    for path in timelines:
        timeline = _read_timeline(campaign, path)
        campaign.timelines.append(timeline)
        for look in timeline.looks:
            record = look.get("record")
            if not isinstance(record, str) or not record:
                continue
            record_path = (path.parent / record).resolve()
            if record_path in seen:
                continue
            seen.add(record_path)
            number = look.get("look")
            look_no = number if isinstance(number, int) else None
            if not record_path.exists():
                where = f"{path}:look {look_no}"
                campaign.problems.append(Problem(where, f"record {record} named here is missing"))
                continue
            found = _record(record_path, look=look_no, force=True)
            if found is not None:
                _add_record(campaign, found)


def _timelines(directory: Path) -> list[Path]:
    """``DIR/timeline.jsonl`` and ``DIR/*/timeline.jsonl`` (one watch output per phase)."""
    if not directory.is_dir():
        return []
    return [p for p in [directory / TIMELINE, *directory.glob(f"*/{TIMELINE}")] if p.is_file()]


def _read_timeline(campaign: Campaign, path: Path) -> Timeline:
    looks: list[Mapping[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        campaign.problems.append(Problem(str(path), f"cannot read the watch timeline: {exc}"))
        return Timeline(path, ())
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            if number < len(lines):  # an unterminated last line is a look being written
                campaign.problems.append(Problem(f"{path}:{number}", "not a JSON look"))
            continue
        if isinstance(value, dict):
            looks.append(value)
    return Timeline(path, tuple(looks))


def _record(path: Path, *, look: int | None = None, force: bool = False) -> RecordEntry | None:
    """The record at ``path``, or None for another JSON file (a baseline, a probe summary)."""
    check = check_record(path)
    record = check.record or {}
    if not force and not _looks_like_record(record, check.problem):
        return None
    return RecordEntry(path, record, check.ok, "" if check.ok else check.problem, look)


def _looks_like_record(record: Mapping[str, Any], problem: str) -> bool:
    """A decision record names its phase and decision; a file that is not JSON is suspect too."""
    if not record:
        return bool(problem) and "no digest field" not in problem
    return "digest" in record or ("phase" in record and "decision" in record)


def _add_record(campaign: Campaign, entry: RecordEntry) -> None:
    campaign.records.append(entry)
    if not entry.ok:
        expected = "" if entry.record else " (fix or remove the file)"
        campaign.problems.append(Problem(str(entry.path), f"{entry.problem}{expected}"))
