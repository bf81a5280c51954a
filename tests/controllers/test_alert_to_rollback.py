"""Chaos latency in the canary's treatment cohort rolls phase 2 back, end to end on real parts.

The staging stack's Prometheus evaluates the rendered ci rules (2-minute windows, ``for: 10s``,
1 s scrape and evaluation) and sends to a real Alertmanager, which delivers the abort alert
with the bearer token to a real ``rollout serve``; serve writes the stack's flag file. How fast
this is at production settings (15 s evaluation, ``for: 30s``) is measured by
benchmarks/alert_to_rollback.py, not asserted here: the waits are generous for a loaded machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pytest_rollout.flags.flagd_store import read_flags
from tests.controllers.alert_rig import ALERT, CHAOS_LATENCY_MS, PHASE, Rig, rig, wait_until
from tests.serve.harness import TOKEN


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with rig(tmp_path_factory.mktemp("alert-to-rollback")) as running:
        yield running


def notification_of(alert: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4) re-sending the alert serve recorded."""
    return {
        "version": "4",
        "groupKey": f'{{}}/{{rollout_action="abort"}}:{{alertname="{ALERT}", phase="{PHASE}"}}',
        "status": "firing",
        "receiver": "rollout-serve",
        "groupLabels": {"alertname": ALERT, "phase": PHASE},
        "commonLabels": alert["labels"],
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1",
        "alerts": [
            {
                "status": "firing",
                "labels": alert["labels"],
                "annotations": {},
                "startsAt": alert["startsAt"],
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": alert["fingerprint"],
            }
        ],
    }


def alert_rollbacks(live: Rig) -> dict[tuple[str, str], float]:
    """rollout_rollbacks_total{source="alert"} from serve's /metrics: (phase, result) -> count."""
    text = live.serve.get("/metrics").body.decode()
    return {
        (sample.labels["phase"], sample.labels["result"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "rollout_rollbacks_total" and sample.labels["source"] == "alert"
    }


def test_chaos_latency_in_treatment_rolls_phase2_back_once(live: Rig) -> None:
    assert read_flags(live.stack.flags_path)["blended_recall"].value == 5
    assert live.abort_alerts() == [], "an abort alert is pending while the canary is healthy"
    assert live.serve.get(f"/v1/phases/{PHASE}/decision").status == 404

    live.client.chaos(latency_ms=CHAOS_LATENCY_MS, error_rate=0.0, duration_s=300)
    # Prometheus -> Alertmanager -> serve: for 10s, 1 s evaluation, 1 s group wait, then the
    # rollback; minutes of slack for a loaded machine.
    decision = wait_until(
        f"serve's {PHASE} decision",
        lambda: (
            live.serve.get(f"/v1/phases/{PHASE}/decision").status == 200
            and live.serve.get(f"/v1/phases/{PHASE}/decision").json()
        ),
        timeout_s=180,
    )
    live.client.clear_chaos()

    # The flag file: phase 2's [phases.phase2.rollback] state, blended_recall 0.
    assert read_flags(live.stack.flags_path)["blended_recall"].value == 0
    assert decision["decision"] == "ABORT" and decision["exit_code"] == 10
    assert ALERT in decision["reason"], decision["reason"]
    record = decision["record"]
    assert record["source"] == "alert" and record["alert"]["name"] == ALERT
    assert record["alert"]["fingerprint"]  # Alertmanager's: it came through Alertmanager
    assert record["alert"]["labels"]["trigger"] == "p99_delta_abort_s"
    assert record["actions"][0]["result"] == "verified", record["actions"]

    changes = [line for line in live.audit() if line["kind"] == "change"]
    assert [(c["flag"], c["before"], c["after"]) for c in changes] == [("blended_recall", 5, 0)]
    assert ALERT in changes[0]["reason"] and "source alert" in changes[0]["reason"]
    outcomes = [line for line in live.audit() if line["kind"] == "outcome"]
    assert [(o["id"], o["status"]) for o in outcomes] == [(changes[0]["id"], "verified")]

    assert live.serve.post(f"/v1/flagger/{PHASE}/rollback", {}).status == 200
    assert alert_rollbacks(live) == {(PHASE, "verified"): 1.0}

    # Alertmanager re-sends a firing alert every repeat_interval: the same one must not roll
    # back again (nor count, nor write the audit log).
    replay = live.serve.post("/v1/alertmanager", notification_of(record["alert"]), token=TOKEN)
    assert replay.status == 200
    assert [a["result"] for a in replay.json()["alerts"]] == ["already rolled back"]
    assert len([line for line in live.audit() if line["kind"] == "change"]) == 1
    assert alert_rollbacks(live) == {(PHASE, "verified"): 1.0}


def test_the_service_runs_the_rolled_back_flags(live: Rig) -> None:
    # The rollback went to the file the service reads: its gauges say phase 1 now (the rules
    # are evaluated every second, after the scrape: hence a wait, not a single query).
    wait_until(
        "the service's flags scraped as phase 1, phase 2 no longer active",
        lambda: (
            live.stack.query('engram_feature_flag{flag="blended_recall"} == 0')
            and live.stack.query('job:rollout_phase:active{phase="phase1"}')
            and not live.stack.query(f'job:rollout_phase:active{{phase="{PHASE}"}}')
        ),
        timeout_s=60,
    )


def test_serve_refuses_the_webhook_without_the_token(live: Rig) -> None:
    # Without the bearer token serve refuses the webhook: the delivery above used it.
    assert live.serve.post("/v1/alertmanager", {"alerts": []}, token=None).status == 401
