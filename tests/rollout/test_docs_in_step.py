"""The operator docs stay in step with gates/rollout.toml and the gate modules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pytest_rollout.config import load_config
from pytest_rollout.doc_tables import render, sync

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "gates" / "rollout.toml")
OPERATIONS = sorted((ROOT / "docs" / "operations").glob("*.md"))


def test_threshold_tables_match_rollout_toml() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync_doc_tables.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout


def test_every_phase_has_its_threshold_table_in_the_runbook() -> None:
    runbook = (ROOT / "docs" / "operations" / "dual_memory_rollout.md").read_text()
    for key in CONFIG.phases:
        if CONFIG.phases[key].thresholds:
            assert f"<!-- rollout-table: {key} -->" in runbook, key
    assert "<!-- rollout-table: phases -->" in runbook


def test_a_changed_threshold_would_be_caught() -> None:
    runbook = (ROOT / "docs" / "operations" / "dual_memory_rollout.md").read_text()
    table = render("phase2", CONFIG)
    assert table in runbook
    tampered = runbook.replace(
        table, table.replace("| `p99_delta_abort_s` | 0.02 |", "| `p99_delta_abort_s` | 0.05 |")
    )
    assert tampered != runbook and sync(tampered, CONFIG) == runbook


def test_gate_tests_named_in_the_docs_exist() -> None:
    gate_sources = "".join(p.read_text() for p in (ROOT / "gates").glob("test_*.py"))
    defined = set(re.findall(r"def (test_\w+)", gate_sources))
    defined |= {p.stem for p in (ROOT / "tests").rglob("test_*.py")}  # docs cite test modules
    for doc in OPERATIONS:
        for name in set(re.findall(r"\b(test_(?!phase\d)[a-z0-9]+_\w+)", doc.read_text())):
            assert name in defined, f"{doc.name} names {name}, which no gate defines"
