"""The bundled example scenarios: GO, ABORT and HOLD with exit codes 0, 10 and 1, also -n 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {"healthy": ("GO", 0), "regression": ("ABORT", 10), "stale": ("HOLD", 1)}


def _run(scenario: str, *extra: str) -> tuple[int, dict]:
    status = subprocess.call(
        [sys.executable, str(ROOT / "examples" / "run_scenario.py"), scenario, *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )
    record = json.loads((ROOT / "out" / "examples" / scenario / "decision.json").read_text())
    return status, record


def _comparable(record: dict) -> dict:
    """The record without what differs by design between two runs: the run id, the port of
    each run's own Prometheus, and so the digest."""
    context = {k: v for k, v in record["context"].items() if k not in ("run_id", "prometheus_url")}
    return {
        **{k: v for k, v in record.items() if k not in ("digest", "context")},
        "context": context,
    }


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_scenario_decision_and_exit_code_serial_and_xdist(scenario: str) -> None:
    decision, code = EXPECTED[scenario]
    serial_status, serial = _run(scenario)
    assert (serial["decision"], serial_status) == (decision, code), serial["reason"]
    xdist_status, xdist = _run(scenario, "-n", "2")
    assert (xdist["decision"], xdist_status) == (decision, code), xdist["reason"]
    assert _comparable(xdist) == _comparable(serial)
    report = (ROOT / "out" / "examples" / scenario / "report.html").read_text()
    assert f">{decision}<" in report
