"""Every row of the metric contract, read back from the real Prometheus with its labels."""

from __future__ import annotations

import time

import pytest

from staging.client import EngramClient
from staging.metrics import CONFIDENCE_BUCKETS, LATENCY_BUCKETS
from staging.seed import seed
from staging.stack import Stack
from staging.traffic import drive

PREFIX = "prom"


@pytest.fixture(scope="module")
def scraped(staging_stack: Stack) -> Stack:
    """Half the spaces blended, formation on, real traffic, then one more scrape."""
    with EngramClient(staging_stack.engram_url, staging_stack.admin_token) as engram:
        engram.set_flags(dual_memory_types=True, concept_formation=True, blended_recall=50)
        seed(staging_stack.engram_url, episodes=1200, spaces=30, prefix=PREFIX)
        summary = drive(staging_stack.engram_url, duration_s=3, rps=150, spaces=30, prefix=PREFIX)
        assert summary.failures == 0 and set(summary.by_group) == {"control", "treatment"}
        served = engram.metric("engram_recall_total", group="treatment", outcome="ok")
        deadline = time.monotonic() + 10
        while True:
            seen = staging_stack.query(
                'engram_recall_total{job="engram",group="treatment",outcome="ok"}'
            )
            if seen and float(seen[0]["value"][1]) >= served:
                break
            assert time.monotonic() < deadline, "Prometheus did not catch up within 10 s"
            time.sleep(0.2)
        engram.set_flags(concept_formation=False, blended_recall=0, dual_memory_types=False)
    return staging_stack


def _series(stack: Stack, name: str) -> list[dict[str, str]]:
    result = stack.query(f'{{__name__="{name}",job="engram"}}')
    assert result, f"{name} not in Prometheus"
    return [r["metric"] for r in result]


def _le(stack: Stack, name: str, **labels: str) -> list[float]:
    return sorted(
        float(m["le"]) for m in _series(stack, name) if all(m[k] == v for k, v in labels.items())
    )


def test_recall_latency_histogram_has_the_contract_buckets_and_labels(scraped: Stack) -> None:
    series = _series(scraped, "engram_recall_duration_seconds_bucket")
    assert {(m["group"], m["mode"]) for m in series} == {
        ("control", "episodic"),
        ("treatment", "blended"),
    }
    for group in ("control", "treatment"):
        assert _le(scraped, "engram_recall_duration_seconds_bucket", group=group) == list(
            LATENCY_BUCKETS
        )
    for group, mode in (("control", "episodic"), ("treatment", "blended")):
        count = scraped.query(
            f'engram_recall_duration_seconds_count{{job="engram",group="{group}",mode="{mode}"}}'
        )
        assert float(count[0]["value"][1]) > 20


def test_contract_latency_buckets_are_exactly_design_md() -> None:
    contract = (
        "0.0005 0.001 0.0015 0.002 0.003 0.004 0.005 0.0065 0.008 0.01 0.0125 0.015 0.0175 0.02 "
        "0.025 0.03 0.035 0.04 0.045 0.05 0.06 0.07 0.08 0.1 0.125 0.15 0.2 0.3 0.5 1 2.5 +Inf"
    )
    assert list(LATENCY_BUCKETS) == [float(b) for b in contract.split()]
    assert list(CONFIDENCE_BUCKETS) == [round(0.05 * i, 2) for i in range(1, 21)] + [float("inf")]


def test_recall_counters_confidence_and_results_per_group(scraped: Stack) -> None:
    totals = _series(scraped, "engram_recall_total")
    assert {(m["group"], m["outcome"]) for m in totals} == {
        (g, o) for g in ("control", "treatment") for o in ("ok", "error", "timeout")
    }
    assert _le(scraped, "engram_recall_confidence_bucket", group="treatment") == list(
        CONFIDENCE_BUCKETS
    )
    for name in ("engram_recall_confidence_count", "engram_recall_results_count"):
        by_group = {m["metric"]["group"]: float(m["value"][1]) for m in scraped.query(name)}
        assert by_group["control"] > 0 and by_group["treatment"] > 0
    mean_conf = scraped.query(
        "sum by (group) (engram_recall_confidence_sum) / sum by (group) "
        "(engram_recall_confidence_count)"
    )
    assert all(0.0 < float(r["value"][1]) <= 1.0 for r in mean_conf) and len(mean_conf) == 2


def test_state_gauges_and_formation_metrics(scraped: Stack) -> None:
    def value(promql: str) -> float:
        [result] = scraped.query(promql)
        return float(result["value"][1])

    assert value('engram_episodes{job="engram"}') >= 1200
    assert value('engram_concepts{job="engram"}') > 0
    assert value('engram_bindings{job="engram"}') > 0
    assert value('engram_concepts_formed_total{job="engram"}') > 0
    assert value('engram_bindings_created_total{job="engram"}') > 0
    assert value('engram_concept_formation_errors_total{job="engram"}') == 0
    assert value('engram_concept_formation_duration_seconds_count{job="engram"}') > 0
    assert _le(scraped, "engram_concept_formation_duration_seconds_bucket") == list(LATENCY_BUCKETS)
    assert 0.4 < value('engram_concept_coherence{job="engram"}') <= 1.0
    assert value('engram_semantic_pathway_timeouts_total{job="engram"}') >= 0
    active = {
        m["metric"]["group"]: float(m["value"][1])
        for m in scraped.query('engram_active_spaces{job="engram"}')
    }
    assert active["control"] > 0 and active["treatment"] > 0


def test_flag_gauges_and_process_metrics(scraped: Stack) -> None:
    flags = {m["flag"] for m in _series(scraped, "engram_feature_flag")}
    assert flags == {"dual_memory_types", "concept_formation", "blended_recall", "semantic_weight"}
    # The cohort was at 50 % during the traffic: some scrape in the last minute says so.
    at_half = scraped.query(
        'count_over_time((engram_feature_flag{job="engram",flag="blended_recall"} == 50)[1m:1s])'
    )
    assert at_half and float(at_half[0]["value"][1]) >= 1
    assert _series(scraped, "process_resident_memory_bytes")
    assert _series(scraped, "process_cpu_seconds_total")
