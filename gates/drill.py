"""The ramp's chaos drill runs once per phase: its result is kept in the flag audit log.

A drill turns the cohort flag off and back on. Its restore is a change into the phase's flags,
so the phase's evidence starts again after it (docs/phase-start.md): the latency the drill
injected never counts against treatment. Run on every look of `rollout watch`, the drill would
therefore restart the evidence each time and a ramp could never accumulate enough to go ahead.
So the gate drills on the first run of the phase and records the outcome as a ``"kind":
"drill"`` line; later runs of the same phase (nothing changed the flags since the restore, so
the phase start is still at or before that line) judge the recorded outcome again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_rollout.flags.audit import AuditLog, default_actor, new_change_id, utc_now
from pytest_rollout.instants import parse_instant

if TYPE_CHECKING:
    from pytest_rollout import Rollout

DRILL_KIND = "drill"


@dataclass(frozen=True)
class DrillResult:
    recovered_s: float | None  # flag off -> treatment latency recovered; None: never
    episodes_lost: dict[str, int] = field(default_factory=dict)  # per space
    slow_probes: int = 0  # treatment probe spaces the chaos slowed down
    injected_ms: float = 0.0  # their median latency under chaos
    before_ms: float = 0.0  # and before it
    performed_at: str = ""  # when the drill was recorded (RFC 3339)
    change_id: str = ""  # the drill's audit id


def _audit_log(rollout: Rollout) -> Path | None:
    audit = rollout.settings.audit_log
    return Path(audit) if audit else None


def recorded_in_phase(rollout: Rollout, phase: str) -> DrillResult | None:
    """The drill recorded since the phase began (and by the pinned instant), if any."""
    path = _audit_log(rollout)
    since = rollout.phase_start(phase).since
    if path is None or since is None:
        return None  # nowhere to keep a drill, or no phase start to scope it: drill again
    for line in reversed(AuditLog(path).records()):
        if line.get("kind") != DRILL_KIND or line.get("phase") != phase:
            continue
        if line.get("environment") != rollout.environment:
            continue
        try:
            when = parse_instant(str(line.get("time")))
        except ValueError:
            continue
        if since <= when <= rollout.at:
            fields = {k: line[k] for k in DrillResult.__dataclass_fields__ if k in line}
            return DrillResult(**fields, performed_at=str(line["time"]), change_id=line["id"])
    return None


def record(rollout: Rollout, phase: str, result: DrillResult) -> DrillResult:
    """Append the drill's outcome to the audit log (when there is one); return it as recorded."""
    path = _audit_log(rollout)
    if path is None:
        return result
    line: dict[str, Any] = {
        "kind": DRILL_KIND,
        "id": new_change_id(),
        "time": utc_now(),
        "actor": default_actor(),
        "phase": phase,
        "environment": rollout.environment,
        "run_id": rollout.run_id,
        **{k: v for k, v in asdict(result).items() if k not in ("performed_at", "change_id")},
    }
    AuditLog(path).append([line])
    return DrillResult(
        **{k: v for k, v in asdict(result).items() if k not in ("performed_at", "change_id")},
        performed_at=line["time"],
        change_id=line["id"],
    )
