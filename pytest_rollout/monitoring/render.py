"""Render all monitoring artifacts from rollout.toml into a directory tree, deterministically.

``render(settings)`` returns {relative path: text}; ``write(...)`` puts them on disk and removes
stale rendered files it owns, so a renamed dashboard does not linger next to its successor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_rollout.monitoring.dashboards import dashboards
from pytest_rollout.monitoring.rules import rollout_rules
from pytest_rollout.monitoring.ruletests_rollout import rollout_tests
from pytest_rollout.monitoring.ruletests_slo import slo_tests
from pytest_rollout.monitoring.settings import MonitoringSettings
from pytest_rollout.monitoring.slo import slo_rules
from pytest_rollout.monitoring.yamlout import dump

HEADER = (
    "# Rendered by `rollout render monitoring` from {source}{env}.\n"
    "# Do not edit: change the thresholds there and render again (tests fail on drift).\n"
)
OWNED = ("prometheus/*.rules.yml", "prometheus/*.test.yml", "grafana/*.json")


def render(settings: MonitoringSettings, source_name: str) -> dict[str, str]:
    env = f" (environment {settings.environment})" if settings.environment else ""
    header = HEADER.format(source=source_name, env=env)
    files: dict[str, str] = {}
    rollout, slo = rollout_rules(settings), slo_rules(settings)
    tests: list[tuple[Any, dict[str, Any]]] = [(rollout, rollout_tests(settings, rollout))]
    if slo.groups:
        tests.append((slo, slo_tests(settings, slo)))
    for rules, test in tests:
        stem = rules.filename.removesuffix(".rules.yml")
        files[f"prometheus/{rules.filename}"] = header + dump(rules.document())
        files[f"prometheus/{stem}.test.yml"] = header + dump(test)
    for uid, board in dashboards(settings, source_name).items():
        files[f"grafana/{uid}.json"] = json.dumps(board, indent=2, sort_keys=True) + "\n"
    return dict(sorted(files.items()))


def write(files: dict[str, str], out: Path) -> list[Path]:
    """Write ``files`` under ``out``; delete owned files that are no longer rendered."""
    written = []
    for pattern in OWNED:
        for stale in sorted(out.glob(pattern)):
            if stale.relative_to(out).as_posix() not in files:
                stale.unlink()
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def diff(files: dict[str, str], out: Path) -> list[str]:
    """Relative paths that are missing, different or stale under ``out``."""
    changed = [
        rel
        for rel, text in files.items()
        if not (out / rel).is_file() or (out / rel).read_text(encoding="utf-8") != text
    ]
    stale = [
        p.relative_to(out).as_posix()
        for pattern in OWNED
        for p in sorted(out.glob(pattern))
        if p.relative_to(out).as_posix() not in files
    ]
    return sorted(changed + stale)
