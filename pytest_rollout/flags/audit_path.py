"""Which file is the flag audit log, as every reader and writer of it resolves it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_rollout.settings import Settings


def audit_log_path(settings: Settings, *, actor: str = "", run_id: str = "") -> Path | None:
    """Where flag changes and approvals are written: the audit_log setting, else the flag
    backend's default log (as ``rollout flags`` resolves it), else None."""
    if settings.audit_log:
        return Path(settings.audit_log)
    if not settings.flags:
        return None
    from pytest_rollout.flags.registry import open_controller

    controller = open_controller(
        settings.flags,
        audit_log=None,
        actor=actor,
        environment=settings.environment,
        phase=None,
        run_id=run_id,
    )
    audit = getattr(controller, "audit", None)
    path = getattr(audit, "path", None)
    return Path(path) if path is not None else None
