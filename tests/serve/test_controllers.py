"""The bundled scenarios served to clients shaped like Argo Rollouts' Web provider and Flagger.

healthy -> GO, regression -> ABORT, stale -> HOLD (as examples/run_scenario.py decides them).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from tests.serve.clients import ArgoWebMetric, FlaggerWebhook, request
from tests.serve.harness import TOKEN, Server

DECISION = {"healthy": "GO", "regression": "ABORT", "stale": "HOLD"}
EXIT = {"GO": 0, "HOLD": 1, "ABORT": 10}
ARGO = {"GO": "Successful", "ABORT": "Failed", "HOLD": "Inconclusive"}


def test_argo_web_provider_reads_the_decision(scenario_server: tuple[str, Server]) -> None:
    scenario, server = scenario_server
    metric = ArgoWebMetric(server.url + "/v1/phases/phase2/evaluate", TOKEN)
    phase, result = metric.measure()
    assert (phase, result) == (ARGO[DECISION[scenario]], DECISION[scenario])


def test_evaluate_answers_200_with_the_record_and_its_report(
    scenario_server: tuple[str, Server],
) -> None:
    scenario, server = scenario_server
    answer = server.post("/v1/phases/phase2/evaluate", {"at": "2026-11-18T11:06:40Z"})
    assert answer.status == 200  # HOLD and ABORT too: Argo reads any non-2xx as an Error
    body = answer.json()
    decision = DECISION[scenario]
    assert (body["decision"], body["exit_code"]) == (decision, EXIT[decision]), body["reason"]
    assert body["record"]["decision"] == decision
    assert body["record"]["phase"] == "phase2"
    assert body["at"] == body["record"]["evaluated_at"] == "2026-11-18T11:06:40Z"
    assert body["report"] == f"/v1/runs/{body['run_id']}/report.html"
    report = server.get(body["report"])
    assert report.status == 200 and f">{decision}<" in report.body.decode()
    record = server.get(f"/v1/runs/{body['run_id']}/record.json")
    assert record.json() == body["record"]
    latest = server.get("/v1/phases/phase2/decision").json()
    assert latest["run_id"] == body["run_id"]


def test_flagger_confirm_hook_passes_only_on_go(scenario_server: tuple[str, Server]) -> None:
    scenario, server = scenario_server
    hook = FlaggerWebhook(server.url + "/v1/flagger/phase2/gate", TOKEN)
    started = time.monotonic()
    answer = hook.call()
    assert time.monotonic() - started < 10  # Flagger's default webhook timeout
    if DECISION[scenario] == "GO":
        assert answer.status == 200
    else:
        assert answer.status == 403
        assert answer.json()["reason"], "the 403 says why"
        assert answer.json()["decision"] == DECISION[scenario]


def test_flagger_rollback_hook_after_a_decision(scenario_server: tuple[str, Server]) -> None:
    scenario, server = scenario_server
    server.post("/v1/phases/phase2/evaluate")
    hook = FlaggerWebhook(server.url + "/v1/flagger/phase2/rollback", TOKEN)
    assert hook.says_roll_back() is (DECISION[scenario] == "ABORT")


def test_concurrent_requests_share_one_run(scenario_server: tuple[str, Server]) -> None:
    _, server = scenario_server
    answers: list[dict[str, Any]] = []

    def ask() -> None:
        answers.append(server.post("/v1/phases/phase2/evaluate").json())

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({a["run_id"] for a in answers}) == 1, [a["run_id"] for a in answers]


def test_metrics_expose_the_decision_and_counts(scenario_server: tuple[str, Server]) -> None:
    scenario, server = scenario_server
    server.post("/v1/phases/phase2/evaluate")
    text = request(server.url + "/metrics", method="GET").body.decode()
    decision = DECISION[scenario]
    assert f'rollout_decision{{phase="phase2"}} {float(EXIT[decision])}' in text
    assert f'rollout_evaluations_total{{decision="{decision}",phase="phase2"}}' in text
    assert "rollout_evaluation_duration_seconds_bucket" in text
    assert TOKEN not in text


def test_the_token_never_appears_in_answers_or_the_log(scenario_server: tuple[str, Server]) -> None:
    _, server = scenario_server
    body = server.post("/v1/phases/phase2/evaluate").body.decode()
    assert TOKEN not in body
    assert TOKEN not in server.log.read_text()
    assert json.loads(body)["decision"] in EXIT
