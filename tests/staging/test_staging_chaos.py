"""Chaos drills hit the blended (treatment) path only, expire, and the timeout falls back."""

from __future__ import annotations

import statistics
import time
import uuid

import pytest

from staging.client import EngramClient
from staging.testing import TEST_SEMANTIC_TIMEOUT_MS


def _spaces_by_group(engram: EngramClient, count: int = 40) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {"control": [], "treatment": []}
    for i in range(count):
        space = f"chaos-{i:03d}"
        groups[engram.recall(space, "warm up")["group"]].append(space)
    return groups


@pytest.fixture
def cohorts(engram: EngramClient) -> dict[str, list[str]]:
    engram.set_flags(dual_memory_types=True, blended_recall=50)
    groups = _spaces_by_group(engram)
    assert groups["control"] and groups["treatment"]
    for spaces in groups.values():
        for space in spaces[:3]:
            engram.remember(space, f"guitar chord tempo melody {uuid.uuid4().hex[:4]}")
    return groups


def _latency_ms(engram: EngramClient, spaces: list[str], n: int = 6) -> list[float]:
    return [engram.recall(spaces[i % 3], "guitar chord")["took_ms"] for i in range(n)]


def test_chaos_latency_raises_treatment_latency_only(
    engram: EngramClient, cohorts: dict[str, list[str]]
) -> None:
    engram.chaos(latency_ms=60, duration_s=30)
    treatment = _latency_ms(engram, cohorts["treatment"])
    control = _latency_ms(engram, cohorts["control"])
    assert min(treatment) >= 60
    assert statistics.median(control) < 20
    answer = engram.recall(cohorts["treatment"][0], "guitar chord")
    assert answer["fallback"] is False and answer["results"]


def test_chaos_errors_hit_treatment_only_and_are_counted(
    engram: EngramClient, cohorts: dict[str, list[str]]
) -> None:
    engram.chaos(error_rate=1.0, duration_s=30)
    failing = engram.request(
        "POST", f"/api/v1/spaces/{cohorts['treatment'][0]}/recall", json={"query": "guitar"}
    )
    assert failing.status_code == 503 and "chaos" in failing.json()["error"]
    assert engram.recall(cohorts["control"][0], "guitar")["results"]
    assert engram.metric("engram_recall_total", group="treatment", outcome="error") >= 1


def test_chaos_expires_and_can_be_cleared(
    engram: EngramClient, cohorts: dict[str, list[str]]
) -> None:
    described = engram.chaos(latency_ms=50, duration_s=0.5)
    assert described["active"] is True and described["latency_ms"] == 50
    time.sleep(0.6)
    assert engram.request("GET", "/api/v1/admin/chaos", admin=True).json() == {"active": False}
    assert max(_latency_ms(engram, cohorts["treatment"], n=3)) < 50
    engram.chaos(latency_ms=50, duration_s=60)
    assert engram.clear_chaos() == {"active": False}


def test_semantic_pathway_timeout_falls_back_to_episodic(
    engram: EngramClient, cohorts: dict[str, list[str]]
) -> None:
    engram.chaos(latency_ms=TEST_SEMANTIC_TIMEOUT_MS * 3, duration_s=30)
    answer = engram.recall(cohorts["treatment"][0], "guitar chord")
    assert answer["fallback"] is True and answer["mode"] == "blended"
    assert answer["results"] and {r["provenance"] for r in answer["results"]} == {"episode"}
    # Cut at the timeout, not after the whole injected delay.
    assert TEST_SEMANTIC_TIMEOUT_MS <= answer["took_ms"] < TEST_SEMANTIC_TIMEOUT_MS * 2
    assert engram.metric("engram_semantic_pathway_timeouts_total") >= 1
    assert engram.metric("engram_recall_total", group="treatment", outcome="timeout") >= 1


@pytest.mark.parametrize(
    "body",
    [{"latency_ms": -1}, {"error_rate": 2}, {"duration_s": 0}, {"latency_ms": "x"}, {"boom": 1}],
)
def test_bad_chaos_requests_are_400(engram: EngramClient, body: dict[str, object]) -> None:
    response = engram.request("POST", "/api/v1/admin/chaos", admin=True, json=body)
    assert response.status_code == 400 and "error" in response.json()
