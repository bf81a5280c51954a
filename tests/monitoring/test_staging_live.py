"""The rendered rules and dashboards against a live staging stack.

The stack's Prometheus loads rules rendered with ``--env ci`` (2-minute windows, 10 s ``for``),
so an injected regression pages within seconds instead of the production hour: same PromQL, same
thresholds, shorter windows.  The committed production rules are checked by promtool offline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from pytest_rollout.config import load_config
from pytest_rollout.monitoring.dashboards import dashboards, panel_queries
from pytest_rollout.monitoring.render import render, write
from pytest_rollout.monitoring.settings import MonitoringSettings, load_settings
from staging.client import EngramClient
from staging.seed import seed
from staging.stack import Stack

CONFIG = Path(__file__).resolve().parents[2] / "gates" / "rollout.toml"
SPACES = 40
LIVE_PHASE = "phase4"  # 50 % cohort: both groups get traffic fast


@dataclass
class Live:
    stack: Stack
    client: EngramClient
    settings: MonitoringSettings
    rendered: dict[str, str]


def wait_until(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def traffic(url: str, stop: threading.Event) -> None:
    """Recalls spread over the spaces, as fast as one thread goes (about 50-200 per second)."""
    with requests.Session() as http:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                http.post(
                    f"{url}/api/v1/spaces/space-{i % SPACES:04d}/recall",
                    json={"query": "coffee meeting project", "k": 5},
                    timeout=5,
                )
            except requests.RequestException:
                time.sleep(0.1)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    settings = load_settings(load_config(CONFIG), "ci")
    root = tmp_path_factory.mktemp("ci-render")
    rendered = render(settings, "gates/rollout.toml")
    write(rendered, root / "monitoring")
    stack = Stack.up(
        tmp_path_factory.mktemp("monitoring-stack"), repo_root=root, formation_interval_s=0.5
    )
    stop = threading.Event()
    workers = []
    try:
        seed(stack.engram_url, episodes=600, spaces=SPACES, prefix="space")
        workers = [
            threading.Thread(target=traffic, args=(stack.engram_url, stop), daemon=True)
            for _ in range(3)
        ]
        for worker in workers:
            worker.start()
        client = EngramClient(stack.engram_url, stack.admin_token)
        # Phase 0 (all flags off) is live first: the baselines are recorded from it.
        for record in (
            "job:process_resident_memory_bytes:baseline",
            "job:engram_recall_duration_seconds:p99_baseline",
        ):
            wait_until(
                f"{record} recorded during phase0",
                lambda r=record: bool(stack.query(r)),
                timeout_s=60,
            )  # type: ignore[misc]
        client.set_flags(dual_memory_types=True, concept_formation=True, blended_recall=50)
        wait_until(
            f"{LIVE_PHASE} live",
            lambda: bool(stack.query(f'job:rollout_phase:active{{phase="{LIVE_PHASE}"}}')),
            timeout_s=30,
        )
        yield Live(stack, client, settings, rendered)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
        stack.down()


def prom_get(live: Live, path: str, **params: Any) -> Any:
    response = requests.get(f"{live.stack.prometheus_url}{path}", params=params, timeout=10)
    assert response.status_code == 200, (path, params, response.text)
    return response.json()["data"]


def test_stack_prometheus_loads_every_rendered_rule_healthy(live: Live) -> None:
    groups = prom_get(live, "/api/v1/rules")["groups"]
    loaded = {(r["name"], r.get("labels", {}).get("phase")) for g in groups for r in g["rules"]}
    assert all(r["health"] == "ok" for g in groups for r in g["rules"]), groups
    assert ("EngramRolloutP99Regression", LIVE_PHASE) in loaded
    assert ("EngramAvailabilityBudgetBurn", None) in loaded
    assert len(loaded) >= 40


def test_every_panel_query_parses_and_returns_data(live: Live) -> None:
    # Wait for the treatment cohort's comparison record: the panels build on it.
    wait_until(
        "treatment p99 recorded",
        lambda: bool(
            live.stack.query(
                'job_group:engram_recall_duration_seconds:p99_rate5m{group="treatment"}'
            )
        ),
        30,
    )
    empty: list[str] = []
    for uid, board in dashboards(live.settings).items():
        for title, expr in panel_queries(board):
            deadline = time.monotonic() + 15
            while True:
                result = prom_get(live, "/api/v1/query", query=expr)["result"]
                if result or time.monotonic() > deadline:
                    break
                time.sleep(1)
            if not result:
                empty.append(f"{uid} / {title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def firing_or_pending(live: Live, name: str, phase: str) -> list[dict[str, Any]]:
    alerts = prom_get(live, "/api/v1/alerts")["alerts"]
    return [
        a
        for a in alerts
        if a["labels"].get("alertname") == name
        and a["labels"].get("phase") == phase
        and a["state"] in ("pending", "firing")
    ]


def test_chaos_latency_regression_raises_the_p99_alert(live: Live) -> None:
    name = "EngramRolloutP99Regression"
    assert firing_or_pending(live, name, LIVE_PHASE) == []  # quiet while healthy
    live.client.chaos(latency_ms=80, error_rate=0.0, duration_s=60)
    try:
        wait_until(
            f"{name} pending/firing", lambda: bool(firing_or_pending(live, name, LIVE_PHASE)), 60
        )
    finally:
        live.client.clear_chaos()
    alert = firing_or_pending(live, name, LIVE_PHASE)[0]
    assert alert["labels"]["group"] == "treatment" and alert["labels"]["severity"] == "page"
    assert alert["annotations"]["runbook_url"].endswith("#phase-4-ramp-50")
    assert "ms above control" in alert["annotations"]["summary"]
