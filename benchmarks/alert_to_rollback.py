"""From a regression's onset to the abort alert's delivery: real Prometheus, real Alertmanager.

A loopback exporter plays the service: phase 1's flags are on, and at "onset" its formation-error
counter jumps.  Prometheus evaluates the rendered abort rule (the ci windows with the production
shape: ``for: 30s``, rules every 15 s), Alertmanager routes ``rollout_action="abort"`` to a sink.
Each run records onset -> pending -> firing -> delivered.  The issue's goal is onset -> flag off
within 60 s; today's sink is a webhook receiver (delivery), and ``Sink`` is the seam where
``rollout serve`` (delivery -> flag off) plugs in once it exists.

    python -m benchmarks.alert_to_rollback --out benchmarks/results/alert_to_rollback.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import requests

from pytest_rollout.config import load_config
from pytest_rollout.monitoring.render import render, write
from pytest_rollout.monitoring.settings import load_settings
from pytest_rollout.promserver import PrometheusServer, start
from tests import alertmanager_harness as am

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "gates" / "rollout.toml"
ALERT = "EngramRolloutFormationErrors"
ERRORS = "engram_concept_formation_errors_total"
PHASE1_FLAGS = {
    'engram_feature_flag{flag="dual_memory_types"}': 1.0,
    'engram_feature_flag{flag="concept_formation"}': 1.0,
    'engram_feature_flag{flag="blended_recall"}': 0.0,
}
GOAL_S = 60.0


class Sink(Protocol):
    """Where Alertmanager delivers; ``done_at`` is when the sink has acted (unix seconds)."""

    url: str
    token: str | None

    def done_at(self, timeout_s: float) -> float: ...


@dataclasses.dataclass
class ReceiverSink:
    """The webhook receiver: done when the alert arrives (no rollback yet)."""

    receiver: am.WebhookReceiver
    token: str | None = "bench-token"

    @property
    def url(self) -> str:
        return self.receiver.url

    def done_at(self, timeout_s: float) -> float:
        return self.receiver.wait_for(timeout_s).at


@contextmanager
def receiver_sink() -> Iterator[ReceiverSink]:
    with am.webhook_receiver() as receiver:
        yield ReceiverSink(receiver)


def alert_state(prom: PrometheusServer) -> str | None:
    alerts = requests.get(f"{prom.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    states = {a["state"] for a in alerts if a["labels"]["alertname"] == ALERT}
    return "firing" if "firing" in states else ("pending" if states else None)


def one_run(
    workdir: Path, sink: Sink, *, evaluation: str, scrape: str, abort_for_s: float
) -> dict[str, Any]:
    settings = dataclasses.replace(
        load_settings(load_config(CONFIG), "ci"), abort_for_s=abort_for_s
    )
    write(render(settings, "gates/rollout.toml"), workdir / "mon")
    rules = workdir / "mon" / "prometheus" / "rollout.rules.yml"
    with am.exporter({**PHASE1_FLAGS, ERRORS: 0.0}) as metrics:
        manager = am.start(workdir / "am", sink.url, token=sink.token)
        try:
            prom = start(
                workdir / "prom",
                config_yaml=am.prometheus_config(
                    targets=[metrics.target],
                    rule_files=[str(rules)],
                    alertmanager=manager,
                    interval=evaluation,
                    scrape_interval=scrape,
                ),
                retention="1d",
            )
            try:
                prom.wait_for_data('job:rollout_phase:active{phase="phase1"}', timeout_s=120)
                prom.wait_for_data(f"{ERRORS} == 0", timeout_s=60)
                onset = time.time()
                metrics.set(ERRORS, 3.0)
                marks: dict[str, float] = {}
                deadline = time.monotonic() + 3 * GOAL_S
                while "firing" not in marks and time.monotonic() < deadline:
                    state = alert_state(prom)
                    if state and state not in marks:
                        marks[state] = time.time()
                    if state == "firing":
                        marks.setdefault("pending", marks["firing"])
                    time.sleep(0.1)
                done = sink.done_at(timeout_s=3 * GOAL_S)
            finally:
                prom.stop()
        finally:
            manager.stop()
    return {
        "pending_s": round(marks["pending"] - onset, 2),
        "firing_s": round(marks["firing"] - onset, 2),
        "delivered_s": round(done - onset, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per scrape interval")
    parser.add_argument("--evaluation-interval", default="15s")
    parser.add_argument("--scrape-intervals", nargs="+", default=["15s", "5s"])
    parser.add_argument("--for", dest="abort_for_s", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    by_scrape: dict[str, Any] = {}
    for scrape in args.scrape_intervals:
        runs = []
        for i in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp, receiver_sink() as sink:
                run = one_run(
                    Path(tmp),
                    sink,
                    evaluation=args.evaluation_interval,
                    scrape=scrape,
                    abort_for_s=args.abort_for_s,
                )
            print(f"scrape {scrape}, run {i + 1}: {run}", flush=True)
            runs.append(run)
        worst = max(r["delivered_s"] for r in runs)
        by_scrape[scrape] = {
            "runs": runs,
            "worst_delivered_s": worst,
            # Delivery only: rollout serve's flag-off time still has to fit in what is left.
            "headroom_for_rollback_s": round(GOAL_S - worst, 2),
        }
    result = {
        "setup": {
            "alert": ALERT,
            "rules": "rollout render monitoring --env ci, with for: "
            f"{args.abort_for_s:g}s (production shape, 2-minute windows)",
            "evaluation_interval": args.evaluation_interval,
            "alertmanager": "prometheus-alertmanager, group_wait 1s, group_interval 1s",
            "sink": "webhook receiver (delivery only; rollout serve's rollback not yet measured)",
            "goal": f"onset -> flag off <= {GOAL_S:g} s",
        },
        "scrape_interval": by_scrape,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    text = json.dumps(result, indent=1) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
