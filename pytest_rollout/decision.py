"""The GO / HOLD / ABORT decision: rules, exit status, one-line summary and the JSON record."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


class Decision(enum.Enum):
    GO = "GO"
    HOLD = "HOLD"
    ABORT = "ABORT"

    @property
    def exit_status(self) -> int:
        return {Decision.GO: 0, Decision.HOLD: 1, Decision.ABORT: 10}[self]


@dataclass(frozen=True)
class GateResult:
    """One gate's outcome as the controller saw it (the record dict holds the numbers)."""

    nodeid: str
    kind: str  # "criterion" | "abort"
    outcome: str  # "pass" | "fail" | "inconclusive" | "error"
    reason: str = ""
    record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.nodeid.rsplit("::", 1)[-1]


def decide(gates: Sequence[GateResult]) -> tuple[Decision, str]:
    """The phase decision and the one-line reason a person reads first.

    ABORT if any abort trigger failed; otherwise HOLD if any gate failed, was inconclusive or
    errored, or if no gate ran at all; otherwise GO.
    """
    if not gates:
        return Decision.HOLD, "no gates were selected: nothing was checked, so nothing may go ahead"
    fired = [g for g in gates if g.kind == "abort" and g.outcome == "fail"]
    if fired:
        noun = "abort trigger fired" if len(fired) == 1 else "abort triggers fired"
        return Decision.ABORT, f"{len(fired)} {noun}: {_list(fired)}"
    blocking = [g for g in gates if g.outcome != "pass"]
    if blocking:
        counts: dict[str, int] = {}
        for g in blocking:
            counts[g.outcome] = counts.get(g.outcome, 0) + 1
        words = {"fail": "failed", "inconclusive": "inconclusive", "error": "errored"}
        parts = [f"{n} {words.get(o, o)}" for o, n in sorted(counts.items())]
        noun = "gate" if len(gates) == 1 else "gates"
        return Decision.HOLD, f"{', '.join(parts)} of {len(gates)} {noun}: {_list(blocking)}"
    return Decision.GO, "the only gate passed" if len(
        gates
    ) == 1 else f"all {len(gates)} gates passed"


def _list(gates: Sequence[GateResult], most: int = 3) -> str:
    shown = [f"{g.name} ({_short(g.reason)})" if g.reason else g.name for g in gates[:most]]
    more = f" and {len(gates) - most} more" if len(gates) > most else ""
    return "; ".join(shown) + more


def _short(reason: str, limit: int = 120) -> str:
    line = reason.strip().splitlines()[0] if reason.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def digest_of(record: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of the record without its ``digest`` field."""
    body = {k: v for k, v in record.items() if k != "digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def build_record(
    *,
    phase: str,
    decision: Decision,
    reason: str,
    evaluated_at: str,
    window: Mapping[str, str],
    environment: str | None,
    gates: Sequence[GateResult],
    flags: Mapping[str, Any],
    actions: Sequence[Mapping[str, Any]],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The decision record of design.md, schema 1, with its digest."""
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "phase": phase,
        "decision": decision.value,
        "reason": reason,
        "evaluated_at": evaluated_at,
        "window": dict(window),
        "environment": environment,
        "gates": [_gate_entry(g) for g in gates],
        "flags": dict(flags),
        "actions": [dict(a) for a in actions],
    }
    if extra:
        record.update(extra)
    record["digest"] = digest_of(record)
    return record


def _gate_entry(gate: GateResult) -> dict[str, Any]:
    r = gate.record
    queries = [q["query"] if isinstance(q, Mapping) else str(q) for q in r.get("queries", [])]
    # A/B gates over the phase: how far the plan is, and when a HOLD should resolve.
    evidence = (r.get("extra") or {}).get("evidence") or {}
    return {
        "nodeid": gate.nodeid,
        "kind": gate.kind,
        "outcome": gate.outcome,
        "metric": r.get("metric"),
        "observed": r.get("observed"),
        "threshold": r.get("threshold"),
        "unit": r.get("unit") or "",
        "n": r.get("n"),
        "p_value": r.get("p_value"),
        "ci": r.get("ci"),
        "information_fraction": evidence.get("information_fraction"),
        "eta": evidence.get("eta"),
        "evidence": dict(evidence) or None,
        "reason": gate.reason,
        "queries": queries,
    }


def verify_record(record: Mapping[str, Any]) -> bool:
    """True when the record's digest matches its content."""
    return record.get("digest") == digest_of(record)
