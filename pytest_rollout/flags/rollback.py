"""Verified rollback: apply a phase's rollback state and say loudly what state the flags are in."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_rollout.flags.audit import utc_now
from pytest_rollout.flags.base import FlagController, FlagValue


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback did; goes into the decision record's ``actions`` as :meth:`to_json`."""

    ok: bool
    before: dict[str, FlagValue] | None  # None when the flags could not be read
    after: dict[str, FlagValue] | None
    message: str
    at: str  # RFC 3339, when the rollback started
    duration_s: float
    requested: dict[str, FlagValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "rollback",
            "at": self.at,
            "result": "verified" if self.ok else "failed",
            "requested": self.requested,
            "before": self.before,
            "after": self.after,
            "message": self.message,
            "duration_s": round(self.duration_s, 3),
        }


def _snapshot_or_none(controller: FlagController) -> tuple[dict[str, FlagValue] | None, str]:
    try:
        return controller.snapshot(), ""
    except Exception as exc:  # report, never raise: the caller is already handling an ABORT
        return None, f"{type(exc).__name__}: {exc}"


def perform_rollback(
    controller: FlagController, rollback_state: Mapping[str, FlagValue], *, reason: str
) -> RollbackResult:
    """Apply ``rollback_state`` (e.g. ``{"blended_recall": 0}``), verify it, never raise.

    On failure ``ok`` is False and ``message`` says what failed and what state the flags are in
    now (read again after the failure, or "unknown" if they cannot be read).
    """
    at = utc_now()
    started = time.monotonic()
    requested = dict(rollback_state)
    before, before_error = _snapshot_or_none(controller)
    try:
        if not requested:
            raise ValueError("the rollback state is empty: nothing to roll back to")
        after_states = controller.set_many(requested, reason=reason)
    except Exception as exc:  # every backend failure becomes a loud, recorded result
        after, after_error = _snapshot_or_none(controller)
        now = (
            f"flags are now {after}"
            if after is not None
            else f"flag state UNKNOWN (cannot read them: {after_error})"
        )
        message = (
            f"ROLLBACK FAILED via {controller.uri}: {type(exc).__name__}: {exc}. "
            f"Requested {requested}; {now}."
        )
        return RollbackResult(
            ok=False,
            before=before,
            after=after,
            message=message,
            at=at,
            duration_s=time.monotonic() - started,
            requested=requested,
        )
    after = {name: after_states[name].value for name in sorted(after_states)}
    note = "" if before is not None else f" (flags could not be read before: {before_error})"
    message = f"rolled back and verified via {controller.uri}: {requested}{note}"
    return RollbackResult(
        ok=True,
        before=before,
        after=after,
        message=message,
        at=at,
        duration_s=time.monotonic() - started,
        requested=requested,
    )
