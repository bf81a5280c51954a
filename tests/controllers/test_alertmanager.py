"""A rendered abort rule, evaluated by a real Prometheus, reaches a webhook through a real
Alertmanager with the labels `rollout serve` acts on; alerts without them do not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from pytest_rollout.config import load_config
from pytest_rollout.monitoring.render import render, write
from pytest_rollout.monitoring.settings import load_settings
from pytest_rollout.promserver import PrometheusServer, start
from tests import alertmanager_harness as am

CONFIG = Path(__file__).resolve().parents[2] / "gates" / "rollout.toml"
TOKEN = "test-serve-token"
ALERT = "EngramRolloutFormationErrors"
ERRORS = "engram_concept_formation_errors_total"
# Phase 1 (shadow) is live: these are its [phases.phase1.flags].
PHASE1_FLAGS = {
    'engram_feature_flag{flag="dual_memory_types"}': 1.0,
    'engram_feature_flag{flag="concept_formation"}': 1.0,
    'engram_feature_flag{flag="blended_recall"}': 0.0,
}


def wait_until(what: str, check: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[am.WebhookReceiver, am.Exporter, PrometheusServer]]:
    # The ci profile: the production PromQL with 2-minute windows and a 10 s `for`.
    write(render(load_settings(load_config(CONFIG), "ci"), "gates/rollout.toml"), tmp_path / "mon")
    rules = tmp_path / "mon" / "prometheus" / "rollout.rules.yml"
    with am.webhook_receiver() as receiver, am.exporter({**PHASE1_FLAGS, ERRORS: 0.0}) as metrics:
        manager = am.start(tmp_path / "am", receiver.url, token=TOKEN)
        try:
            prom = start(
                tmp_path / "prom",
                config_yaml=am.prometheus_config(
                    targets=[metrics.target],
                    rule_files=[str(rules)],
                    alertmanager=manager,
                    interval="1s",
                ),
                retention="1d",
            )
            try:
                yield receiver, metrics, prom
            finally:
                prom.stop()
        finally:
            manager.stop()


def firing(prom: PrometheusServer, name: str) -> bool:
    alerts = requests.get(f"{prom.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return any(a["labels"]["alertname"] == name and a["state"] == "firing" for a in alerts)


def test_abort_alert_reaches_the_webhook_as_alertmanager_v4_with_serve_labels(
    stack: tuple[am.WebhookReceiver, am.Exporter, PrometheusServer],
) -> None:
    receiver, metrics, prom = stack
    wait_until(
        "phase1 live",
        lambda: prom.query('job:rollout_phase:active{phase="phase1"}'),
        timeout_s=30,
    )
    # Guards with no rollout_action fire too (engram_episodes is absent): they must not arrive.
    wait_until("a guard alert firing", lambda: firing(prom, "EngramRolloutMetricAbsent"), 30)
    time.sleep(3)  # several group intervals: a wrongly routed guard would have been sent
    assert receiver.deliveries == []

    onset = time.time()
    metrics.set(ERRORS, 3.0)
    delivery = receiver.wait_for(timeout_s=60)
    latency = delivery.at - onset

    assert delivery.path == "/v1/alertmanager"
    assert delivery.headers["Authorization"] == f"Bearer {TOKEN}"
    payload = delivery.payload
    assert payload["version"] == "4" and payload["status"] == "firing"
    assert payload["receiver"] == "rollout-serve"
    (alert,) = payload["alerts"]
    assert alert["status"] == "firing" and alert["fingerprint"]
    labels = alert["labels"]
    assert labels["alertname"] == ALERT
    assert labels["rollout_action"] == "abort" and labels["phase"] == "phase1"
    assert labels["trigger"] == "formation_errors_max"
    # for: 10s plus scrape, evaluation and the 1 s group wait; well inside the 60 s goal.
    assert 10 <= latency < 40, latency
    time.sleep(2)
    assert all(
        a["labels"].get("rollout_action") == "abort"
        for d in receiver.deliveries
        for a in d.payload["alerts"]
    )
