"""Alertmanager abort alerts, bad input, security, and Prometheus down: one server whose
Prometheus URL points at a port where nothing listens."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout.flags.flagd_store import read_flags
from pytest_rollout.net import free_port
from tests.serve.clients import FlaggerWebhook, request
from tests.serve.conftest import _flags, scenario_args
from tests.serve.harness import TOKEN, Server, example_gates, start_serve


class Received:
    """A communication-plan webhook receiver (Slack-like): records what it was sent."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                received.messages.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/T/B/secret"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def webhook() -> Iterator[Received]:
    receiver = Received()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-faults")


@pytest.fixture(scope="module")
def server(work: Path, webhook: Received) -> Iterator[Server]:
    dead_prometheus = f"http://127.0.0.1:{free_port()}"  # nothing listens there: "down"
    running = start_serve(
        example_gates(work),
        work,
        scenario_args(dead_prometheus, _flags(work)),
        env={"ROLLOUT_WEBHOOK": webhook.url},
    )
    yield running
    running.stop()


def alert(fingerprint: str, *, status: str = "firing", phase: str = "phase2") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "RolloutP99Regression",
            "rollout_action": "abort",
            "phase": phase,
            "severity": "page",
        },
        "annotations": {"summary": "treatment p99 is 94 ms over control"},
        "startsAt": "2026-11-30T20:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    """Alertmanager's webhook payload, version 4, plus a key a newer release adds."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="RolloutP99Regression"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "rollout-serve",
        "groupLabels": {"alertname": "RolloutP99Regression"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
        "notification_reason": "new alert",
    }


def audit_changes(work: Path) -> list[dict[str, Any]]:
    path = work / "flags.json.audit.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line.get("kind") == "change"]


def test_prometheus_down_is_hold_with_200(server: Server) -> None:
    answer = server.post("/v1/phases/phase2/evaluate")
    assert answer.status == 200
    body = answer.json()
    assert (body["decision"], body["exit_code"]) == ("HOLD", 1), body["reason"]


def test_a_phase_without_gates_is_hold(server: Server) -> None:
    body = server.post("/v1/phases/phase3/evaluate").json()
    assert body["decision"] == "HOLD"
    assert "no gates" in body["reason"]


def test_different_phases_run_side_by_side(server: Server) -> None:
    answers: dict[str, dict[str, Any]] = {}

    def ask(phase: str) -> None:
        answers[phase] = server.post(f"/v1/phases/{phase}/evaluate").json()

    threads = [threading.Thread(target=ask, args=(p,)) for p in ("phase2", "phase3", "phase2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers["phase2"]["record"]["phase"] == "phase2"
    assert answers["phase3"]["record"]["phase"] == "phase3"
    assert answers["phase2"]["run_id"] != answers["phase3"]["run_id"]


def test_unknown_phase_is_404_json(server: Server) -> None:
    answer = server.post("/v1/phases/phase9/evaluate")
    assert answer.status == 404
    assert "phase9" in answer.json()["error"]
    assert server.post("/v1/flagger/phase9/gate", {}).status == 404


def test_malformed_json_is_400(server: Server) -> None:
    answer = request(server.url + "/v1/phases/phase2/evaluate", body=b'{"at": ', token=TOKEN)
    assert answer.status == 400
    assert "not valid JSON" in answer.json()["error"]
    bad_at = server.post("/v1/phases/phase2/evaluate", {"at": "yesterday-ish"})
    assert bad_at.status == 400 and '"at"' in bad_at.json()["error"]


def test_bodies_over_64_kib_are_413(server: Server) -> None:
    big = json.dumps({"at": None, "pad": "x" * 70_000}).encode()
    answer = request(server.url + "/v1/alertmanager", body=big, token=TOKEN)
    assert answer.status == 413


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x"])
def test_posts_need_the_bearer_token(server: Server, token: str | None) -> None:
    for path in ("/v1/phases/phase2/evaluate", "/v1/alertmanager", "/v1/flagger/phase2/gate"):
        answer = server.post(path, {}, token=token)
        assert answer.status == 401, path
        assert TOKEN not in answer.body.decode()


def test_abort_alert_rolls_back_once_per_fingerprint(
    server: Server, work: Path, webhook: Received
) -> None:
    flags = work / "flags.json"
    assert read_flags(flags)["blended_recall"].value == 5
    rollback_hook = FlaggerWebhook(server.url + "/v1/flagger/phase2/rollback", TOKEN)

    answer = server.post("/v1/alertmanager", notification(alert("a1f00d")))
    assert answer.status == 200
    assert answer.json()["alerts"][0]["result"] == "rolled back"
    assert read_flags(flags)["blended_recall"].value == 0
    changes = audit_changes(work)
    assert len(changes) == 1
    assert "alert RolloutP99Regression (fingerprint a1f00d)" in changes[0]["reason"]
    assert changes[0]["phase"] == "phase2"

    decision = server.get("/v1/phases/phase2/decision").json()
    assert decision["decision"] == "ABORT"
    assert "RolloutP99Regression" in decision["reason"]
    assert webhook.messages and "RolloutP99Regression" in webhook.messages[-1]["text"]
    assert rollback_hook.says_roll_back()

    # Alertmanager re-sends a firing alert every repeat_interval: no second rollback.
    replay = server.post("/v1/alertmanager", notification(alert("a1f00d")))
    assert replay.json()["alerts"][0]["result"] == "already rolled back"
    assert len(audit_changes(work)) == 1
    metrics = request(server.url + "/metrics", method="GET").body.decode()
    assert 'rollout_rollbacks_total{phase="phase2",result="verified",source="alert"} 1.0' in metrics

    resolved = server.post(
        "/v1/alertmanager", notification(alert("a1f00d", status="resolved"), status="resolved")
    )
    assert resolved.json()["alerts"][0]["result"] == "resolved"
    assert rollback_hook.says_roll_back()  # the phase's latest decision is still that ABORT
    # Firing again after it resolved is a new incident: it rolls back again.
    again = server.post("/v1/alertmanager", notification(alert("a1f00d")))
    assert again.json()["alerts"][0]["result"] == "rolled back"


def test_alerts_for_others_are_ignored(server: Server, work: Path) -> None:
    before = len(audit_changes(work))
    other = alert("b0b")
    other["labels"] = {"alertname": "DiskFull"}
    unknown = alert("c0c", phase="phase9")
    sparse = {"status": "firing"}  # tolerate missing keys
    answer = server.post("/v1/alertmanager", {"alerts": [other, unknown, sparse, "junk"]})
    assert answer.status == 200
    results = answer.json()["alerts"]
    assert [r["result"] for r in results] == ["ignored"]
    assert "phase9" in results[0]["message"]
    assert len(audit_changes(work)) == before


def test_flag_backend_down_fails_loudly_and_retries(server: Server, work: Path) -> None:
    flags = _flags(work)  # phase 2's flags again: blended_recall at 5
    hidden = work / "flags.json.away"
    flags.rename(hidden)  # the backend is gone
    try:
        answer = server.post("/v1/alertmanager", notification(alert("d00d")))
        assert answer.status == 200
        assert answer.json()["alerts"][0]["result"] == "ROLLBACK FAILED"
        decision = server.get("/v1/phases/phase2/decision").json()
        assert decision["decision"] == "ABORT"
        assert "ROLLBACK FAILED" in decision["reason"]
        metrics = request(server.url + "/metrics", method="GET").body.decode()
        assert 'rollout_rollbacks_total{phase="phase2",result="failed",source="alert"} 1.0' in (
            metrics
        )
    finally:
        hidden.rename(flags)
    # The backend is back: Alertmanager's next notification of the same alert retries it.
    retry = server.post("/v1/alertmanager", notification(alert("d00d")))
    assert retry.json()["alerts"][0]["result"] == "rolled back"
    assert read_flags(flags)["blended_recall"].value == 0
