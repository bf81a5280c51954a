"""From a regression's onset to the flag verified off: real Prometheus, Alertmanager, rollout serve.

``--mode serve`` (the default) runs the whole path on real parts (tests/controllers/alert_rig.py):
the staging stack in phase 2 with traffic in both cohorts, its Prometheus evaluating the rendered
abort rules (the ci windows with the production shape: ``for: 30s``, rules every 15 s) and
sending to a real Alertmanager, which routes ``rollout_action="abort"`` to a real ``rollout
serve`` writing the stack's flag file. At "onset" chaos adds latency to the treatment cohort's
recalls. Each run records onset -> pending -> firing (polling Prometheus' /api/v1/alerts every
0.1 s) -> serve starts the rollback (its audit change line) -> flag verified off (its audit
outcome line, written after the read-back). The issue's goal: onset -> flag off within 60 s.

``--mode delivery`` is the earlier, smaller measurement: a loopback exporter plays the service
(its formation-error counter jumps at onset) and a webhook receiver stands in for serve, so it
stops at the delivery.

    python -m benchmarks.alert_to_rollback --out benchmarks/results/alert_to_rollback.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from pytest_rollout.config import load_config
from pytest_rollout.flags.flagd_store import read_flags
from pytest_rollout.instants import parse_instant
from pytest_rollout.monitoring.render import render, write
from pytest_rollout.monitoring.settings import load_settings
from pytest_rollout.promserver import PrometheusServer, start
from tests import alertmanager_harness as am
from tests.controllers import alert_rig

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
TRAFFIC_NOTE = (
    "closed loop, one client thread per cohort: once treatment recalls take 80 ms longer, that "
    "thread also sends fewer, so the slow recalls take longer to reach 1 % of the 2-minute p99 "
    "window than under open-loop production traffic (onset -> pending includes that)"
)


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


def delivery_run(
    workdir: Path, sink: ReceiverSink, *, evaluation: str, scrape: str, abort_for_s: float
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


def serve_run(workdir: Path, *, evaluation: str, scrape: str, abort_for_s: float) -> dict[str, Any]:
    """One run of the whole path; seconds after onset of each step."""
    with alert_rig.rig(
        workdir, evaluation_interval=evaluation, scrape_interval=scrape, abort_for_s=abort_for_s
    ) as rig:
        if rig.abort_alerts():
            raise RuntimeError(f"an abort alert is pending before the onset: {rig.abort_alerts()}")
        onset = time.time()
        rig.client.chaos(latency_ms=alert_rig.CHAOS_LATENCY_MS, error_rate=0.0, duration_s=600)
        marks: dict[str, float] = {}
        deadline = time.monotonic() + 3 * GOAL_S
        while "outcome" not in marks and time.monotonic() < deadline:
            if "firing" not in marks:
                states = {a["state"] for a in rig.abort_alerts()}
                for state in ("pending", "firing"):
                    if state in states or (state == "pending" and "firing" in states):
                        marks.setdefault(state, time.time())
            for line in rig.audit():
                if line["kind"] in ("change", "outcome"):
                    marks.setdefault(line["kind"], parse_instant(line["time"]))
                    if line["kind"] == "outcome" and line["status"] != "verified":
                        raise RuntimeError(f"the rollback was not verified: {line}")
            time.sleep(0.1)
        rig.client.clear_chaos()
        if "outcome" not in marks:
            raise RuntimeError(f"no verified rollback within {3 * GOAL_S:g} s; marks {marks}")
        flag_after = read_flags(rig.stack.flags_path)["blended_recall"].value
    return {
        "pending_s": round(marks["pending"] - onset, 2),
        "firing_s": round(marks["firing"] - onset, 2),
        "rollback_started_s": round(marks["change"] - onset, 2),
        "flag_verified_off_s": round(marks["outcome"] - onset, 2),
        "firing_to_flag_off_s": round(marks["outcome"] - marks["firing"], 2),
        "blended_recall_after": flag_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["serve", "delivery"], default="serve")
    parser.add_argument("--runs", type=int, default=3, help="runs per scrape interval")
    parser.add_argument("--evaluation-interval", default="15s")
    parser.add_argument("--scrape-intervals", nargs="+", default=["15s"])
    parser.add_argument("--for", dest="abort_for_s", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    last = "flag_verified_off_s" if args.mode == "serve" else "delivered_s"
    by_scrape: dict[str, Any] = {}
    for scrape in args.scrape_intervals:
        runs = []
        for i in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                if args.mode == "serve":
                    run = serve_run(
                        Path(tmp),
                        evaluation=args.evaluation_interval,
                        scrape=scrape,
                        abort_for_s=args.abort_for_s,
                    )
                else:
                    with receiver_sink() as sink:
                        run = delivery_run(
                            Path(tmp),
                            sink,
                            evaluation=args.evaluation_interval,
                            scrape=scrape,
                            abort_for_s=args.abort_for_s,
                        )
            print(f"scrape {scrape}, run {i + 1}: {run}", flush=True)
            runs.append(run)
        worst = max(r[last] for r in runs)
        by_scrape[scrape] = {
            "runs": runs,
            f"worst_{last}": worst,
            "within_goal": worst <= GOAL_S,
            "headroom_s": round(GOAL_S - worst, 2),
        }
    if args.mode == "serve":
        setup = {
            "alert": f'{alert_rig.ALERT} (phase="{alert_rig.PHASE}", trigger p99_delta_abort_s)',
            "onset": f"staging chaos: +{alert_rig.CHAOS_LATENCY_MS:g} ms on every treatment recall",
            "service": "the staging stack (python -m staging), phase 2 flags (blended_recall 5), "
            "one traffic thread per cohort",
            "sink": "rollout serve --rollout-env ci --rollout-flags flagd-file:<the stack's "
            "flags> (verified rollback to [phases.phase2.rollback])",
            "flag_off": "the audit log's outcome line (status verified, after the read-back)",
            "traffic": TRAFFIC_NOTE,
        }
    else:
        setup = {
            "alert": ALERT,
            "onset": f"a loopback exporter's {ERRORS} jumps",
            "sink": "webhook receiver (delivery only, no rollback)",
        }
    result = {
        "mode": args.mode,
        "setup": {
            **setup,
            "rules": "rollout render monitoring --env ci, with for: "
            f"{args.abort_for_s:g}s (production shape, 2-minute windows)",
            "evaluation_interval": args.evaluation_interval,
            "scrape_intervals": args.scrape_intervals,
            "alertmanager": "prometheus-alertmanager, group_wait 1s, group_interval 1s",
            "goal": f"onset -> flag off <= {GOAL_S:g} s",
        },
        "scrape_interval": by_scrape,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
    }
    text = json.dumps(result, indent=1) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
