"""Hooks pytest-rollout offers to conftest.py files and other plugins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest


@pytest.hookspec(firstresult=True)
def pytest_rollout_rollback(
    config: pytest.Config, phase: str, rollback_state: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """Roll the phase back after an ABORT with ``--rollout-on-abort=rollback``.

    Return the action record (``{"action": "rollback", "at": ..., "result": "verified" | "failed",
    "message": ...}``).  The built-in implementation applies ``rollback_state`` through the flag
    backend and verifies it by read-back.  Override it to roll back through your deploy tool::

        @pytest.hookimpl(tryfirst=True)
        def pytest_rollout_rollback(config, phase, rollback_state):
            subprocess.run(["argo", "rollouts", "abort", "memory-service"], check=True)
            return {"action": "rollback", "at": now(), "result": "verified", "message": "argo"}

    Called once, on the controller only (never on xdist workers).
    """


@pytest.hookspec
def pytest_rollout_decision(config: pytest.Config, record: Mapping[str, Any]) -> None:
    """Called once on the controller with the final decision record (after any rollback).

    Use it to notify people or systems::

        def pytest_rollout_decision(config, record):
            if record["decision"] != "GO":
                page_oncall(record["phase"], record["reason"])
    """
