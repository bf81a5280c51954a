"""The campaign as a time-ordered list of events, from audit lines, records and watch looks.

Plain values only; the page escapes them (``page.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_rollout.campaign.collect import AuditLine, Campaign, RecordEntry
from pytest_rollout.flags.audit import reconcile
from pytest_rollout.instants import parse_instant

# Where a rollback came from, read from the reason the writer gave (see docs/report.md).
ALERT_REASON = re.compile(r"\balert (?P<name>\S+) \(fingerprint")
GATE_REASON = re.compile(r"\bABORT \(run ")
# Outcomes of a change after which the flags did not move: left out of the treatment share.
NOT_APPLIED = ("failed", "not-applied")


@dataclass(frozen=True)
class Event:
    at: str
    when: float  # unix seconds, nan when the time is unreadable
    kind: str  # flag | rollback | approval | decision | look
    phase: str
    title: str
    detail: str
    actor: str = ""
    where: str = ""  # file or file:line
    ok: bool = True  # False: a record whose digest failed (marked red)
    decision: str = ""  # GO | HOLD | ABORT for decisions and looks


def seconds(text: Any) -> float:
    if not isinstance(text, str) or not text:
        return math.nan
    try:
        return parse_instant(text)
    except ValueError:
        return math.nan


def rollback_source(line: Mapping[str, Any]) -> str | None:
    """gate | alert | operator for a rollback change, None for an ordinary change."""
    source = line.get("source")
    if isinstance(source, str) and source:
        return source
    reason = str(line.get("reason") or "")
    if ALERT_REASON.search(reason):
        return "alert"
    if GATE_REASON.search(reason):
        return "gate"
    if "rollback" in reason.lower():
        return "operator"
    return None


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


def flag_events(campaign: Campaign) -> list[Event]:
    lines = [a.record for a in campaign.audit_lines]
    first_line = _first_lines(campaign.audit_lines)
    events = []
    for change in reconcile(lines):
        first = change.lines[0]
        source = rollback_source(first)
        moves = ", ".join(
            f"{name} {_value(entry['before'])} → {_value(entry['after'])}"
            for name, entry in change.flags.items()
        )
        status = f" ({change.status})" if change.status != "verified" else ""
        alert = first.get("alert") or _alert_name(change.reason)
        title = f"rollback by {source}" if source else "flag change"
        if source == "alert" and alert:
            title += f" {alert}"
        events.append(
            Event(
                at=change.time,
                when=seconds(change.time),
                kind="rollback" if source else "flag",
                phase=str(first.get("phase") or ""),
                title=f"{title}: {moves}{status}",
                detail=change.reason,
                actor=change.actor,
                where=f"{campaign.audit_log}:{first_line.get(change.id, '?')}",
                ok=change.status not in NOT_APPLIED,
            )
        )
    return events


def _alert_name(reason: str) -> str:
    match = ALERT_REASON.search(reason)
    return match.group("name") if match else ""


def _first_lines(lines: Sequence[AuditLine]) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        change_id = line.record.get("id")
        if isinstance(change_id, str):
            out.setdefault(change_id, line.line)
    return out


def approval_events(campaign: Campaign) -> list[Event]:
    events = []
    for line in campaign.audit_lines:
        record = line.record
        if record.get("kind") != "approval":
            continue
        override = " — overrides an ABORT" if record.get("override_abort") else ""
        events.append(
            Event(
                at=str(record.get("time") or ""),
                when=seconds(record.get("time")),
                kind="approval",
                phase=str(record.get("phase") or ""),
                title=f"approved as {record.get('role') or '?'} by {record.get('by') or '?'}"
                f"{override}",
                detail=str(record.get("reason") or ""),
                actor=str(record.get("actor") or ""),
                where=f"{campaign.audit_log}:{line.line}",
            )
        )
    return events


def decision_events(campaign: Campaign) -> list[Event]:
    events = []
    for entry in campaign.records:
        badge = "digest verified" if entry.ok else f"DIGEST NOT VERIFIED: {entry.problem}"
        actions = "; ".join(
            f"{a.get('action', '?')}: {a.get('result', '?')}"
            for a in entry.record.get("actions") or []
            if isinstance(a, Mapping)
        )
        detail = str(entry.record.get("reason") or "")
        if actions:
            detail += f" — actions: {actions}"
        look = f" (watch look {entry.look})" if entry.look is not None else ""
        events.append(
            Event(
                at=entry.at,
                when=seconds(entry.at),
                kind="decision",
                phase=entry.phase,
                title=f"{entry.decision}{look} — {badge}",
                detail=detail,
                actor=_operator(entry),
                where=str(entry.path),
                ok=entry.ok,
                decision=entry.decision,
            )
        )
    return events


def _operator(entry: RecordEntry) -> str:
    context = entry.record.get("context")
    return str(context.get("operator") or "") if isinstance(context, Mapping) else ""


def look_events(campaign: Campaign) -> list[Event]:
    events = []
    for timeline in campaign.timelines:
        for look in timeline.looks:
            gates = [g for g in look.get("gates") or [] if isinstance(g, Mapping)]
            verdicts = ", ".join(
                f"{g.get('name') or g.get('nodeid')}: {g.get('verdict')}" for g in gates
            )
            at = str(look.get("at") or "")
            events.append(
                Event(
                    at=at,
                    when=seconds(at),
                    kind="look",
                    phase=str(look.get("phase") or ""),
                    title=f"watch look {look.get('look', '?')}: {look.get('decision', '?')}",
                    detail=verdicts,
                    where=str(timeline.path),
                    decision=str(look.get("decision") or ""),
                )
            )
    return events


def all_events(campaign: Campaign) -> list[Event]:
    events = (
        flag_events(campaign)
        + approval_events(campaign)
        + decision_events(campaign)
        + look_events(campaign)
    )
    # Unreadable times last, in their source order: never dropped.
    return sorted(events, key=lambda e: (math.isnan(e.when), 0.0 if math.isnan(e.when) else e.when))


def treatment_share(campaign: Campaign) -> dict[str, list[tuple[float, float]]]:
    """Cohort flag -> [(time, percent after the change)], from the changes that took effect."""
    lines = [a.record for a in campaign.audit_lines]
    steps: dict[str, list[tuple[float, float]]] = {}
    for change in reconcile(lines):
        if change.status in NOT_APPLIED:
            continue
        when = seconds(change.time)
        if math.isnan(when):
            continue
        for name, entry in change.flags.items():
            after = entry.get("after")
            if entry.get("type") != "cohort" or isinstance(after, bool):
                continue
            if isinstance(after, int | float):
                if not steps.get(name) and isinstance(entry.get("before"), int | float):
                    steps.setdefault(name, []).append((when, float(entry["before"])))
                steps.setdefault(name, []).append((when, float(after)))
    return steps
