"""Shared helpers for the plugin-core tests: running gate files, reading decision records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout.decision import Decision

EXIT = {decision.value: decision.exit_status for decision in Decision}

# Gate bodies for each outcome, so a test can build any combination of gates.
BODIES = {
    "pass": "    assert 0.004 < 0.010",
    "fail": "    assert 0.031 < 0.010, 'p99 delta 0.031 s over the 0.010 s margin'",
    "inconclusive": "    pytest_rollout.inconclusive('only 12 treatment queries, need 1000')",
    "error": "    raise RuntimeError('gate code broke')",
}

RECORD_KEYS = {
    "schema",
    "phase",
    "decision",
    "reason",
    "evaluated_at",
    "window",
    "environment",
    "gates",
    "flags",
    "actions",
    "digest",
}
GATE_KEYS = {
    "nodeid",
    "kind",
    "outcome",
    "metric",
    "observed",
    "threshold",
    "unit",
    "n",
    "p_value",
    "ci",
    "information_fraction",
    "eta",
    "evidence",
    "reason",
    "queries",
}


def gate_source(name: str, outcome: str, *, abort: bool = False, phase: str = "phase2") -> str:
    marks = f"@pytest.mark.{phase}\n" + ("@pytest.mark.abort\n" if abort else "")
    return f"{marks}def {name}():\n{BODIES[outcome]}\n"


def gate_module(*gates: str) -> str:
    return "import pytest\nimport pytest_rollout\n\n\n" + "\n\n".join(gates)


def run_gates(
    pytester: pytest.Pytester, *args: str, xdist: bool = False, subprocess: bool = False
) -> pytest.RunResult:
    """Run pytest on the pytester dir; -n 2 always needs a subprocess."""
    extra = ["-p", "no:cacheprovider", *(["-n", "2"] if xdist else []), *args]
    if xdist or subprocess:
        return pytester.runpytest_subprocess(*extra)
    return pytester.runpytest(*extra)


def read_record(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def recompute_digest(record: dict[str, Any]) -> str:
    """design.md: sha256 over the canonical JSON of the record without the digest field."""
    body = {k: v for k, v in record.items() if k != "digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def last_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.strip()]
    return lines[-1] if lines else ""


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def gate_by_name(record: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [g for g in record["gates"] if g["nodeid"].endswith("::" + name)]
    assert len(matches) == 1, (name, [g["nodeid"] for g in record["gates"]])
    return matches[0]
