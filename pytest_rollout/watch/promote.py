"""On GO with ``--promote-to NEXT``: set NEXT's flags through the flag controller, verified.

The controller writes the audit lines (with a ChangeContext naming NEXT and the actor) and reads
the change back (``set_many`` raises FlagVerificationError when the backend serves otherwise).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_rollout.flags.base import FlagValue


@dataclass(frozen=True)
class Promotion:
    """A verified promotion, or the reason it failed (``ok`` False)."""

    ok: bool
    message: str
    change_id: str | None = None
    after: Mapping[str, FlagValue] | None = None


def promote(
    *,
    uri: str,
    audit_log: Path | None,
    environment: str | None,
    next_phase: str,
    flags: Mapping[str, FlagValue],
    reason: str,
) -> Promotion:
    """Set ``flags`` (NEXT's ``[phases.NEXT.flags]`` with the environment's override)."""
    from pytest_rollout.flags.audit import default_actor
    from pytest_rollout.flags.base import FlagError
    from pytest_rollout.flags.registry import open_controller

    try:
        controller = open_controller(
            uri,
            audit_log=audit_log,
            actor=default_actor(),
            environment=environment,
            phase=next_phase,
            run_id=f"watch-{socket.gethostname()}-{os.getpid()}",
        )
        after = controller.set_many(flags, reason=reason)
    except FlagError as exc:
        return Promotion(False, f"promotion to {next_phase} failed: {exc}")
    values = {name: after[name].value for name in flags if name in after}
    change_id = getattr(controller, "last_change_id", None)
    shown = ", ".join(f"{name}={value!r}" for name, value in values.items())
    return Promotion(True, f"{next_phase} flags set and read back: {shown}", change_id, values)
