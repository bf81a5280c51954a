"""Per-phase summaries and the post-rollout analysis, from the records and the audit log.

Only what the records carry: a figure no record has is "not recorded", never estimated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_rollout.campaign.collect import Campaign, RecordEntry
from pytest_rollout.campaign.events import Event, seconds
from pytest_rollout.durations import format_elapsed

NOT_RECORDED = "not recorded"
# The key figures of the post-rollout analysis: (label, pattern on a gate's metric or node id).
# Each must be about recall (or latency), so a formation cycle's p99 or an error counter's
# series inventory in phase 0 does not pass for it.
KEY_METRICS = (
    (
        "p50 latency",
        re.compile(r"(?=.*(recall|latency))(.*\b(p50|median)\b|.*quantile\(0\.5\b)", re.I),
    ),
    ("p99 latency", re.compile(r"(?=.*(recall|latency))(.*\bp99\b|.*quantile\(0\.99\b)", re.I)),
    ("error rate", re.compile(r"(?=.*recall)(.*error rate|.*outcome!=)", re.I)),
    ("confidence", re.compile(r"(?=.*recall).*confidence", re.I)),
)
# Units of gates that count things (series present, queries seen), not figures of the service.
COUNT_UNITS = frozenset({"series", "rules", "queries", "figures", "errors", "episodes"})


@dataclass(frozen=True)
class Figure:
    """One gate's figure at one look."""

    phase: str
    at: str
    metric: str
    gate: Mapping[str, Any]
    record: Path


@dataclass
class PhaseSummary:
    phase: str
    started: str = ""
    started_from: str = ""  # where the start came from
    last_decision_at: str = ""
    held: str = ""
    records: list[RecordEntry] = field(default_factory=list)
    approvals: list[Event] = field(default_factory=list)
    rollbacks: list[Event] = field(default_factory=list)
    reports: list[tuple[str, Path]] = field(default_factory=list)  # (label, report path)

    @property
    def final(self) -> RecordEntry | None:
        return self.records[-1] if self.records else None

    def key_gates(self) -> list[Mapping[str, Any]]:
        """The final look's gates with an interval (the deltas), else every gate it ran."""
        final = self.final
        if final is None:
            return []
        gates = [g for g in final.record.get("gates") or [] if isinstance(g, Mapping)]
        with_interval = [g for g in gates if isinstance(g.get("ci"), list | tuple)]
        return with_interval or gates


def _by_time(entry: RecordEntry) -> tuple[bool, float, str]:
    when = seconds(entry.at)
    return (math.isnan(when), 0.0 if math.isnan(when) else when, str(entry.path))


def summaries(campaign: Campaign, events: list[Event]) -> list[PhaseSummary]:
    phases: dict[str, PhaseSummary] = {}

    def of(name: str) -> PhaseSummary:
        return phases.setdefault(name, PhaseSummary(name))

    for entry in sorted(campaign.records, key=_by_time):
        of(entry.phase).records.append(entry)
    for event in events:
        if not event.phase:
            continue
        if event.kind == "approval":
            of(event.phase).approvals.append(event)
        elif event.kind == "rollback":
            of(event.phase).rollbacks.append(event)
        elif event.kind == "flag" and event.ok and not of(event.phase).started:
            of(event.phase).started = event.at
            of(event.phase).started_from = "first flag change of the phase (audit log)"
    for summary in phases.values():
        final = summary.final
        since = final.record.get("since") if final else None
        if isinstance(since, str) and since:
            summary.started, summary.started_from = since, "the final record's since"
        if final is not None:
            summary.last_decision_at = final.at
        start, end = seconds(summary.started), seconds(summary.last_decision_at)
        if not math.isnan(start) and not math.isnan(end) and end >= start:
            summary.held = format_elapsed(end - start)
        summary.reports = [
            (f"{e.decision} {e.at}", found)
            for e in summary.records
            if (found := report_of(e, campaign.reports_dir)) is not None
        ]
    return sorted(phases.values(), key=_phase_order)


def _phase_order(summary: PhaseSummary) -> tuple[bool, float, str]:
    when = seconds(summary.started)
    if math.isnan(when) and summary.records:
        when = seconds(summary.records[0].at)
    return (math.isnan(when), 0.0 if math.isnan(when) else when, summary.phase)


def report_of(entry: RecordEntry, reports_dir: Path | None) -> Path | None:
    """The HTML report of a record: <reports>/<stem>.html, beside it, or a watch look's."""
    candidates = [entry.path.with_suffix(".html"), entry.path.parent / "report.html"]
    if reports_dir is not None:
        candidates.insert(0, reports_dir / f"{entry.path.stem}.html")
    return next((c for c in candidates if c.is_file()), None)


def key_figures(campaign: Campaign) -> list[tuple[str, Figure | None, Figure | None]]:
    """(label, first look that measured it, final look) per key metric, from verified records.

    A record whose digest failed is not evidence: its figures are left out.
    """
    ordered = sorted((e for e in campaign.records if e.ok), key=_by_time)
    out: list[tuple[str, Figure | None, Figure | None]] = []
    for label, pattern in KEY_METRICS:
        found: list[Figure] = []
        for entry in ordered:
            for gate in entry.record.get("gates") or []:
                if not isinstance(gate, Mapping):
                    continue
                metric = str(gate.get("metric") or gate.get("nodeid") or "")
                if (
                    isinstance(gate.get("observed"), int | float)
                    and str(gate.get("unit") or "") not in COUNT_UNITS
                    and pattern.match(metric)
                ):
                    found.append(Figure(entry.phase, entry.at, metric, gate, entry.path))
                    break
        out.append((label, found[0] if found else None, found[-1] if len(found) > 1 else None))
    return out
