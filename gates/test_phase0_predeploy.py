"""Phase 0 — pre-deployment: nothing in production yet; prove the build and the monitoring.

    pytest gates -m phase0 --rollout-decision-json out/phase0.json --html out/phase0.html

Every criterion here blocks phase 1. The soak and the baseline comparison run against the
service named by ENGRAM_URL (the staging stack in a rehearsal).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
import yaml

from pytest_rollout import inconclusive

from contract import CONTRACT_METRICS

if TYPE_CHECKING:
    # types only: the fixture classes load when the gates run, as they would without annotations
    from conftest import Engram

    from pytest_rollout import Baseline, Gate, Phase, Prom, Rollout
    from pytest_rollout.load.runner import SoakResult

pytestmark = pytest.mark.phase0

RULES_DIR = Path(__file__).resolve().parent.parent / "monitoring" / "prometheus"


def test_monitoring_target_is_up(prom: Prom, gate: Gate) -> None:
    up = prom.value('min(up{job="engram"})')
    gate.observe(metric='up{job="engram"}', observed=up, threshold=1)
    assert up == 1, "Prometheus cannot scrape the memory service: fix the scrape config first"


@pytest.mark.parametrize("metric", sorted(CONTRACT_METRICS))
def test_contract_metric_is_exported(metric: str, prom: Prom, gate: Gate) -> None:
    # A metric missing from the contract is a failure, asserted below, not a lack of evidence.
    series = prom.vector(f'{metric}{{job="engram"}}', allow_empty=True)
    required = CONTRACT_METRICS[metric]
    missing = sorted({label for s in series for label in required if label not in s.labels})
    gate.observe(metric=metric, observed=len(series), threshold=1, unit="series")
    assert series, f"{metric} is not exported: dashboards and gates that read it would go blind"
    assert not missing, f"{metric} lacks labels {missing} required by the metric contract"


def test_alert_rules_are_loaded(rollout: Rollout, gate: Gate) -> None:
    files = sorted(RULES_DIR.glob("*.rules.yml"))
    if not files:
        inconclusive(f"no rendered rule files in {RULES_DIR}: run `rollout render monitoring`")
    wanted = {
        rule["alert"]
        for f in files
        for group in yaml.safe_load(f.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    if not rollout.prometheus_url:
        inconclusive("no Prometheus URL: set ROLLOUT_PROMETHEUS_URL or --rollout-prometheus-url")
    try:
        answer = requests.get(f"{rollout.prometheus_url}/api/v1/rules", timeout=10).json()
    except (requests.RequestException, ValueError) as exc:
        inconclusive(f"cannot list rules from Prometheus: {type(exc).__name__}")
    loaded = {
        rule["name"]
        for group in answer["data"]["groups"]
        for rule in group["rules"]
        if rule.get("type") == "alerting"
    }
    missing = sorted(wanted - loaded)
    gate.observe(
        metric="alert rules loaded",
        observed=len(wanted & loaded),
        threshold=len(wanted),
        unit="rules",
    )
    assert not missing, (
        f"{len(missing)} alert rules are not loaded in Prometheus: {missing}; "
        "add monitoring/prometheus/*.rules.yml to rule_files and reload"
    )


def test_integration_remember_then_recall_roundtrip(engram: Engram, gate: Gate) -> None:
    space = "rollout-smoke"
    marker = f"pre-deployment smoke check {uuid.uuid4().hex[:8]}"
    engram.remember(space, marker)
    answer = engram.recall(space, marker, k=5)
    texts = [r["text"] for r in answer.get("results", [])]
    counts = engram.integrity()["spaces"].get(space, {"episodes": 0}).get("episodes", 0)
    gate.observe(metric="smoke episode recalled", observed=float(marker in texts), threshold=1)
    assert marker in texts, f"a freshly stored episode was not recalled in space {space!r}"
    assert counts >= 1, "the integrity endpoint does not count the stored episode"


def test_soak_rss_growth_under_1pct_per_hour(
    soak_result: SoakResult, phase: Phase, gate: Gate
) -> None:
    soak_result.check_no_leak(phase.threshold("soak_rss_growth_pct_per_hour_max"), gate=gate)


def test_soak_no_crash_restart_or_failures(
    soak_result: SoakResult, phase: Phase, gate: Gate
) -> None:
    limit = phase.threshold("soak_failure_rate_max")
    soak_result.check_no_crash(gate=gate, max_failure_ratio=limit)


def test_latency_within_5pct_of_baseline(baseline: Baseline, phase: Phase) -> None:
    baseline.check(
        metrics=("p50 latency", "p99 latency"),
        window_s=phase.window_s,
        margin=phase.threshold("baseline_regression_pct_max") / 100,
    )
