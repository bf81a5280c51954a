"""A gate's final result as the controller sees it, for report rows, extras and JUnit properties."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_rollout.plugin import gate_payload, session_key


def _has_numbers(record: dict[str, Any]) -> bool:
    return bool(record.get("metric") or record.get("queries"))


def settled(config: pytest.Config, nodeid: str) -> dict[str, Any] | None:
    """The merged result once the controller's RolloutSession has seen every phase."""
    session = config.stash.get(session_key, None)
    if session is None:
        return None
    result = session.results.get(nodeid)
    return {**result, "nodeid": nodeid} if result is not None else None


def at_teardown(config: pytest.Config, report: pytest.TestReport) -> dict[str, Any] | None:
    """The final result while the teardown report is still on its way to RolloutSession.

    Same rule as the plugin's merge: setup/call outcomes stand; a teardown problem only replaces
    a pass. The teardown payload carries the fullest record (the gate is done recording).
    """
    payload = gate_payload(report)
    if payload is None:
        return None
    current = settled(config, report.nodeid)
    if current is None:
        return {**payload, "nodeid": report.nodeid}
    merged = dict(current)
    if current["outcome"] == "pass" and payload["outcome"] != "pass":
        merged.update(outcome=payload["outcome"], reason=payload["reason"])
    if _has_numbers(payload["record"]) or not _has_numbers(current["record"]):
        merged["record"] = payload["record"]
    return merged
