"""A small rollout campaign on disk: a hash-chained audit log, decision records, a watch look.

The audit log's ``prev`` hashes follow the contract of pytest_rollout.flags.audit_chain (sha256
of the previous line's bytes, the first line's of b"pytest-rollout audit log v1"), so the real
verifier checks them once this version has it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_rollout.decision import Decision, GateResult, build_record

CHAIN_HEADER = b"pytest-rollout audit log v1"
T0 = 1_795_600_000  # 2026-11-24T...Z, the campaign's first change


def at(offset_s: float) -> str:
    from pytest_rollout.instants import rfc3339

    return rfc3339(T0 + offset_s)


def write_chained(path: Path, lines: Sequence[Mapping[str, Any]]) -> None:
    """Append ``lines`` to ``path``, each with ``prev`` = sha256 of the line before."""
    existing = path.read_bytes().split(b"\n") if path.exists() else []
    previous = next((line for line in reversed(existing) if line), None)
    out = bytearray()
    for line in lines:
        prev = hashlib.sha256(previous if previous is not None else CHAIN_HEADER).hexdigest()
        data = json.dumps({**line, "prev": prev}).encode("utf-8")
        out += data + b"\n"
        previous = data
    with path.open("ab") as handle:
        handle.write(bytes(out))


def change(
    change_id: str,
    offset_s: float,
    phase: str,
    flag: str,
    before: Any,
    after: Any,
    reason: str,
    *,
    actor: str = "alice",
    kind: str = "cohort",
    status: str = "verified",
    **extra: Any,
) -> list[dict[str, Any]]:
    """The change line and its outcome line, as AuditLog writes them."""
    return [
        {
            "kind": "change",
            "id": change_id,
            "time": at(offset_s),
            "actor": actor,
            "environment": "staging",
            "phase": phase,
            "flag": flag,
            "type": kind,
            "before": before,
            "after": after,
            "reason": reason,
            "run_id": "cli-1",
            "backend": "flagd-file:/tmp/flags.json",
            **extra,
        },
        {
            "kind": "outcome",
            "id": change_id,
            "time": at(offset_s + 1),
            "status": status,
            "message": "read back",
        },
    ]


def approval(offset_s: float, phase: str, role: str, by: str, reason: str) -> dict[str, Any]:
    return {
        "kind": "approval",
        "id": f"approval-{phase}-{by[:8]}-{offset_s:g}",
        "time": at(offset_s),
        "actor": by,
        "phase": phase,
        "role": role,
        "by": by,
        "reason": reason,
        "environment": "staging",
        "commit": None,
        "since": None,
        "run_id": None,
        "override_abort": False,
    }


def gate(
    name: str,
    metric: str,
    observed: float,
    threshold: float,
    *,
    unit: str = "s",
    ci: tuple[float, float] | None = None,
    outcome: str = "pass",
    kind: str = "criterion",
) -> GateResult:
    return GateResult(
        nodeid=f"gates/test_gates.py::{name}",
        kind=kind,
        outcome=outcome,
        reason="" if outcome == "pass" else f"{metric} over the margin",
        record={
            "metric": metric,
            "observed": observed,
            "threshold": threshold,
            "unit": unit,
            "ci": list(ci) if ci else None,
            "n": {"control": 9000, "treatment": 1200},
        },
    )


def write_record(
    path: Path,
    phase: str,
    decision: Decision,
    offset_s: float,
    gates: Sequence[GateResult],
    *,
    since_offset_s: float | None = None,
    reason: str = "",
    actions: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    record = build_record(
        phase=phase,
        decision=decision,
        reason=reason or f"{phase}: {decision.value}",
        evaluated_at=at(offset_s),
        window={"start": at(offset_s - 120), "end": at(offset_s)},
        environment="staging",
        gates=gates,
        flags={"before": {}, "after": {}},
        actions=actions,
        extra={
            "since": at(since_offset_s) if since_offset_s is not None else None,
            "context": {"run_id": f"run-{path.stem}", "operator": "alice", "ci": False},
        },
    )
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


P99 = "engram_recall_duration_seconds p99 delta"
P50 = "engram_recall_duration_seconds p50 delta"
ERRORS = 'engram_recall_total{outcome!="ok"} / engram_recall_total rate delta'


def make_campaign(root: Path, *, hostile: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Phases 0, 2 (GO, then ABORT rolled back by the gate, then GO) and 5, with a watch look.

    ``hostile`` replaces names and reasons: keys "approval_reason", "approval_by", "role",
    "flag_reason", "actor", "record_reason", "look_gate".
    """
    h = dict(hostile or {})
    records = root / "records"
    records.mkdir(parents=True)
    log = root / "flags-audit.jsonl"
    flag_reason = h.get("flag_reason", "staging rehearsal: phase 2")
    actor = h.get("actor", "alice")
    write_chained(
        log,
        [
            *change("c1", 0, "phase0", "blended_recall", 0.0, 0.0, "phase 0", kind="cohort"),
            *change("c2", 600, "phase2", "blended_recall", 0.0, 5.0, flag_reason, actor=actor),
            approval(
                1300,
                "phase2",
                h.get("role", "service owner"),
                h.get("approval_by", "bob"),
                h.get("approval_reason", "canary numbers look fine"),
            ),
            *change(
                "c3",
                1500,
                "phase2",
                "blended_recall",
                5.0,
                0.0,
                "pytest-rollout: phase2 ABORT (run run-phase2-regression)",
                actor="ci",
            ),
            *change("c4", 1800, "phase2", "blended_recall", 0.0, 5.0, "resume after the fix"),
            *change("c5", 2400, "phase5", "blended_recall", 5.0, 100.0, "full rollout"),
            *change(
                "c6",
                3300,
                "phase5",
                "blended_recall",
                100.0,
                0.0,
                "rollback: alert EngramRecallP99High (fingerprint 3f9a)",
                actor="rollout-serve",
            ),
        ],
    )
    gates0 = [
        gate("test_p99_within_5pct_of_baseline", P99, 0.0004, 0.002, ci=(-0.001, 0.0015)),
        gate("test_error_rate", ERRORS, 0.0001, 0.001, unit="ratio", ci=(-0.0002, 0.0004)),
    ]
    write_record(records / "phase0.json", "phase0", Decision.GO, 300, gates0, since_offset_s=0)
    gates2 = [
        gate("test_p99_within_10ms", P99, 0.0012, 0.01, ci=(-0.002, 0.004)),
        gate("test_p50_within_5ms", P50, 0.0003, 0.005, ci=(-0.001, 0.0016)),
        gate("test_error_rate", ERRORS, 0.0002, 0.001, unit="ratio", ci=(-0.0001, 0.0005)),
    ]
    write_record(
        records / "phase2.json",
        "phase2",
        Decision.GO,
        1200,
        gates2,
        since_offset_s=600,
        reason=h.get("record_reason", ""),
    )
    abort = [
        gate(
            "test_abort_when_p99_regresses_over_20ms",
            P99,
            0.031,
            0.02,
            ci=(0.026, 0.036),
            outcome="fail",
            kind="abort",
        )
    ]
    write_record(
        records / "phase2-regression.json",
        "phase2",
        Decision.ABORT,
        1490,
        abort,
        since_offset_s=600,
        actions=[{"action": "rollback", "result": "verified", "at": at(1500)}],
    )
    gates5 = [
        gate("test_p99_within_5pct_of_baseline", P99, 0.0009, 0.002, ci=(0.0001, 0.0017)),
        gate("test_error_rate", ERRORS, 0.0001, 0.001, unit="ratio", ci=(0.0, 0.0003)),
    ]
    write_record(records / "phase5.json", "phase5", Decision.GO, 3200, gates5, since_offset_s=2400)
    for stem in ("phase0", "phase2", "phase2-regression", "phase5"):
        (records / f"{stem}.html").write_text(f"<html><body>{stem} report</body></html>")
    # a non-record JSON file beside them (a baseline) is not a decision record
    (records / "baseline.json").write_text(json.dumps({"p99": 0.012}))
    # a watch of phase 2: one look, its record verified like the others
    watch = records / "watch-phase2"
    (watch / "looks" / "1").mkdir(parents=True)
    write_record(
        watch / "looks" / "1" / "record.json",
        "phase2",
        Decision.HOLD,
        900,
        gates2[:1],
        since_offset_s=600,
    )
    look = {
        "look": 1,
        "at": at(900),
        "phase": "phase2",
        "decision": "HOLD",
        "exit_code": 1,
        "run_id": "run-record",
        "record": "looks/1/record.json",
        "report": "looks/1/report.html",
        "since": at(600),
        "gates": [
            {
                "nodeid": "gates/x.py::test_p99",
                "name": h.get("look_gate", "test_p99"),
                "verdict": "INCONCLUSIVE",
                "lower": -0.002,
                "upper": 0.004,
                "estimate": 0.0012,
                "n": 400,
                "unit": "s",
            }
        ],
        "flag_changes": [],
    }
    (watch / "timeline.jsonl").write_text(json.dumps(look) + "\n")
    return {"log": log, "records": records}
