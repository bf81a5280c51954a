"""Phase-level evidence for the decision record: the phase start, and the ``min_hold`` gate.

A phase with ``min_hold`` (e.g. 24h, a full diurnal cycle) cannot GO before it has run that
long, however clear its first hours look: the built-in gate ``rollout::min_hold[phaseN]`` is
inconclusive (HOLD) until then and says when the hold ends. The record carries where the
phase start came from (``since``, ``since_source``) so a reviewer can check it.
"""

from __future__ import annotations

from typing import Any

from pytest_rollout.context import RolloutContext
from pytest_rollout.decision import GateResult
from pytest_rollout.durations import format_duration, format_elapsed
from pytest_rollout.instants import rfc3339


def phase_evidence(
    context: RolloutContext, phase_key: str | None
) -> tuple[dict[str, Any], list[GateResult]]:
    """(record fields, built-in gates) of the decided phase; empty for an unknown phase."""
    if phase_key is None:
        return {}, []
    cfg = context.phase(phase_key).config
    explicit = context.window_override_s is not None
    evidence = "window" if explicit or cfg.evidence == "window" else "phase"
    fields: dict[str, Any] = {"evidence_kind": evidence}
    if explicit:
        fields["evidence_note"] = (
            f"--rollout-window {format_duration(context.window_override_s or 0.0)}: A/B gates "
            "judged a sliding window, not the phase since its start"
        )
    if evidence == "window" and not cfg.min_hold_s:
        return fields, []
    start = context.phase_start(phase_key)
    fields.update(
        since=rfc3339(start.since) if start.since is not None else None,
        since_source=start.source,
        since_detail=start.detail,
    )
    if start.problem:
        fields["since_problem"] = start.problem
    if not cfg.min_hold_s:
        return fields, []
    return fields, [_min_hold_gate(phase_key, cfg.min_hold_s, start.since, start, context.at)]


def _min_hold_gate(
    phase_key: str, min_hold_s: float, since: float | None, start: Any, at: float
) -> GateResult:
    nodeid = f"rollout::min_hold[{phase_key}]"
    hold = format_duration(min_hold_s)
    record: dict[str, Any] = {
        "metric": "time since the phase start",
        "threshold": min_hold_s,
        "unit": "s",
    }
    if since is None:
        reason = (
            f"{phase_key} has min_hold {hold} but its start is unknown: {start.problem}; "
            "no GO until the start is known and the hold has passed"
        )
        return GateResult(nodeid, "criterion", "inconclusive", reason, record)
    ran = at - since
    record["observed"] = ran
    ends = rfc3339(since + min_hold_s)
    if ran < min_hold_s:
        reason = (
            f"{phase_key} has run {format_elapsed(max(ran, 0.0))} of its min_hold {hold} "
            f"(since {rfc3339(since)}, {start.source}); no GO before {ends}: the phase must "
            "cover a full cycle of traffic"
        )
        return GateResult(nodeid, "criterion", "inconclusive", reason, record)
    reason = f"{phase_key} has run {format_elapsed(ran)}, at least its min_hold {hold}"
    return GateResult(nodeid, "criterion", "pass", reason, record)
