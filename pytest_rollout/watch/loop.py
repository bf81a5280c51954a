"""The watch loop: a look every interval, the stop rules, the timeline, the progress lines.

Stop rules (docs/watch.md): ABORT stops with exit 10 (the gate run already rolled back when
asked); GO stops with exit 0, after promoting when asked (exit 3 if the promotion fails: the
next phase's flags are not known to be set); HOLD goes on until a look taken at or after the
end of the phase's duration, then exit 1; ``--max-looks`` and SIGINT/SIGTERM stop it between
looks with exit 1. Nothing here decides: every decision is a gate run's.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from pytest_rollout.decision import Decision
from pytest_rollout.flags.base import FlagValue
from pytest_rollout.instants import parse_instant, rfc3339
from pytest_rollout.looks import LookResult, child_environment, run_look
from pytest_rollout.report.timeline import TIMELINE_ENV, record_since
from pytest_rollout.watch.promote import Promotion, promote
from pytest_rollout.watch.timeline import (
    TIMELINE_NAME,
    append_line,
    flag_changes_between,
    look_entry,
)

EXIT_GO, EXIT_UNDECIDED, EXIT_ABORT, EXIT_PROMOTION_FAILED = 0, 1, 10, 3


@dataclass(frozen=True)
class PromoteTo:
    """Where a GO promotes to: NEXT's flags and the backend that serves them."""

    phase: str
    flags: Mapping[str, FlagValue]
    uri: str
    audit_log: Path | None
    environment: str | None


@dataclass
class WatchPlan:
    phase: str
    gates: Path
    out: Path
    every_s: float
    pytest_args: Sequence[str] = ()
    duration_s: float | None = None
    max_looks: int | None = None
    promote_to: PromoteTo | None = None
    audit_log: Path | None = None
    look_timeout_s: float | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)


class Watcher:
    """Runs the looks of one plan; ``stop()`` (the signal handler) ends it between looks."""

    def __init__(
        self,
        plan: WatchPlan,
        *,
        out: TextIO | None = None,
        look: Callable[..., LookResult] = run_look,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plan = plan
        self.stream = out or sys.stdout
        self.look = look
        self.clock = clock
        self.stopping: str | None = None

    def stop(self, signum: int, _frame: FrameType | None = None) -> None:
        self.stopping = signal.Signals(signum).name

    def run(self) -> int:
        previous = {s: signal.signal(s, self.stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _loop(self) -> int:
        plan = self.plan
        (plan.out / "looks").mkdir(parents=True, exist_ok=True)
        timeline = plan.out / TIMELINE_NAME
        env = child_environment({**plan.extra_env, TIMELINE_ENV: str(timeline.resolve())})
        started = self.clock()
        marks_from: float | None = None
        number = _looks_so_far(plan.out)
        while True:
            number += 1
            begun = self.clock()
            result = self.look(
                plan.gates,
                plan.phase,
                plan.out / "looks" / str(number),
                plan.pytest_args,
                env=env,
                timeout_s=plan.look_timeout_s,
            )
            at_text = str(result.record.get("evaluated_at") or rfc3339(begun))
            at = _instant(at_text, begun)
            since = _since(result, started)
            promotion = self._promote(result, number) if result.decision is Decision.GO else None
            now = self.clock()
            # The first look marks the change that began the phase too (since is whole seconds).
            first = since - 1.0
            changes = flag_changes_between(
                plan.audit_log, marks_from if marks_from is not None else first, now
            )
            marks_from = now
            entry = look_entry(number, at_text, plan.phase, result, plan.out, changes)
            if promotion is not None:
                entry["promotion"] = {"ok": promotion.ok, "message": promotion.message}
            append_line(timeline, entry)
            self._progress(number, result, entry)
            code = self._verdict(result, promotion, number, at, since)
            if code is not None:
                return code
            if not self._wait_until(begun + plan.every_s):
                self._say(f"stopped by {self.stopping} after look {number}: no decision")
                return EXIT_UNDECIDED

    def _verdict(
        self, result: LookResult, promotion: Promotion | None, number: int, at: float, since: float
    ) -> int | None:
        """The exit status when this look ends the watch, else None."""
        plan = self.plan
        if result.decision is Decision.ABORT:
            rollbacks = [
                a for a in result.record.get("actions") or [] if a.get("action") == "rollback"
            ]
            done = (
                "; ".join(f"rollback {a.get('result')}" for a in rollbacks) or "no rollback asked"
            )
            self._say(f"ABORT at look {number}: {result.reason} ({done})")
            return EXIT_ABORT
        if result.decision is Decision.GO:
            if promotion is not None and not promotion.ok:
                self._say(f"GO at look {number}, but {promotion.message}")
                return EXIT_PROMOTION_FAILED
            after = f"; {promotion.message}" if promotion is not None else ""
            self._say(f"GO at look {number}: {result.reason}{after}")
            return EXIT_GO
        if plan.duration_s is not None and at >= since + plan.duration_s:
            self._say(
                f"HOLD at look {number}: phase duration over without a decision "
                f"({plan.phase} began {rfc3339(since)}, duration ends "
                f"{rfc3339(since + plan.duration_s)}): {result.reason}"
            )
            return EXIT_UNDECIDED
        if plan.max_looks is not None and number >= plan.max_looks:
            self._say(f"HOLD after --max-looks {plan.max_looks} looks without a decision")
            return EXIT_UNDECIDED
        if self.stopping:
            self._say(f"stopped by {self.stopping} after look {number}: no decision")
            return EXIT_UNDECIDED
        return None

    def _promote(self, result: LookResult, number: int) -> Promotion | None:
        target = self.plan.promote_to
        if target is None:
            return None
        run_id = (result.record.get("context") or {}).get("run_id")
        reason = (
            f"rollout watch: {self.plan.phase} GO at look {number} (run {run_id}, "
            f"{result.record_path}); promote to {target.phase}"
        )
        return promote(
            uri=target.uri,
            audit_log=target.audit_log,
            environment=target.environment,
            next_phase=target.phase,
            flags=target.flags,
            reason=reason,
        )

    def _wait_until(self, deadline: float) -> bool:
        """Sleep until ``deadline``; False when a signal asked to stop."""
        while not self.stopping:
            left = deadline - self.clock()
            if left <= 0:
                return True
            time.sleep(min(left, 0.5))
        return False

    def _progress(self, number: int, result: LookResult, entry: Mapping[str, Any]) -> None:
        open_gates = [g["name"] for g in entry["gates"] if g.get("verdict") != "PASS"]
        etas = sorted((g["eta"], g["name"]) for g in entry["gates"] if g.get("eta"))
        shown = ", ".join(open_gates[:4]) + (
            f" (+{len(open_gates) - 4})" if len(open_gates) > 4 else ""
        )
        nearest = f"{etas[0][0]} ({etas[0][1]})" if etas else "none"
        self._say(
            f"look {number} {entry['at']}: {result.decision.value}; "
            f"open: {shown or 'none'}; nearest ETA: {nearest}"
        )

    def _say(self, line: str) -> None:
        print(f"rollout watch {self.plan.phase}: {line}", file=self.stream, flush=True)


def _looks_so_far(out: Path) -> int:
    """A watch restarted into the same --out goes on numbering after the looks already there."""
    numbers = [int(p.name) for p in (out / "looks").iterdir() if p.name.isdigit()]
    return max(numbers, default=0)


def _instant(text: str, default: float) -> float:
    try:
        return parse_instant(text)
    except ValueError:
        return default


def _since(result: LookResult, started: float) -> float:
    """The phase start the look counted from; the watch's start when the record names none
    (the phase began no later than that, so the duration rule only stops later, never early)."""
    text = record_since(result.record)
    return _instant(text, started) if text else started
