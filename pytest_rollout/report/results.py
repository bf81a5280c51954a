"""A gate's final result as the controller sees it, for report rows, extras and JUnit properties."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_rollout._state import RunView, gate_payload


def settled(view: RunView, nodeid: str) -> dict[str, Any] | None:
    """The merged result once the controller's RolloutSession has seen every phase."""
    result = view.results.get(nodeid)
    return {**result, "nodeid": nodeid} if result is not None else None


def at_teardown(report: pytest.TestReport) -> dict[str, Any] | None:
    """The final result while the teardown report is still on its way to RolloutSession.

    Every report's payload carries the gate's merged outcome (plugin.pytest_runtest_makereport),
    and the teardown payload the fullest record: read it as it is.
    """
    payload = gate_payload(report)
    return None if payload is None else {**payload, "nodeid": report.nodeid}
