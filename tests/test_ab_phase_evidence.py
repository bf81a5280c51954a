"""End to end: A/B evidence since the phase start, against a real Prometheus.

One backfilled history: a slow canary (600 treatment queries an hour, too few for any 1 h window
at min_samples 1000) over 8 hours, with a service restart 3 hours in (every counter and
histogram starts again from 0). Evidence since the phase start must count every query across
the restart, decide what no sliding window can, and stop at the plan's end for criteria.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pytest_rollout.ab import AB, ABSettings
from pytest_rollout.evidence import Evidence
from pytest_rollout.gate import GateRecord
from pytest_rollout.metrics.prometheus import PrometheusSource, PromQuery, PromSettings
from pytest_rollout.openmetrics import OpenMetricsWriter
from pytest_rollout.outcomes import Inconclusive
from tests.prom_harness import PrometheusServer, start_backfilled

START = 1_764_000_000  # whole minutes
STEP = 60
STEPS = 8 * 60 + 1
RESTART = 3 * 60  # step index of the restart
TREATMENT_PER_MIN = 10.0
CONTROL_PER_MIN = 190.0
TIMES = [START + i * STEP for i in range(STEPS)]
LATENCY = "engram_recall_duration_seconds"


def _history() -> tuple[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(20261130)
    w = OpenMetricsWriter()
    counts: dict[str, np.ndarray] = {}
    for group, per_min in (("control", CONTROL_PER_MIN), ("treatment", TREATMENT_PER_MIN)):
        labels = {"job": "engram", "group": group}
        per_step = rng.poisson(per_min, STEPS)
        per_step[0] = 0  # the first sample is the counter's start, as after a real start
        counts[group] = per_step
        latencies = [rng.lognormal(np.log(0.006), 0.5, k) for k in per_step]
        w.histogram(LATENCY, labels, TIMES, latencies, restarts=(RESTART,))
        w.counter("engram_recall", labels, TIMES, per_step, restarts=(RESTART,))
        # Errors in bursts: each minute's error rate is drawn afresh (spaces failing together),
        # so the errors are over-dispersed against independent requests.
        burst_rate = rng.beta(0.5, 49.5, STEPS)  # mean 1 %, sd 1.4 % between minutes
        bursty = rng.binomial(per_step, burst_rate)
        w.counter("engram_bursty", {**labels, "outcome": "error"}, TIMES, bursty)
        w.counter("engram_bursty", {**labels, "outcome": "ok"}, TIMES, per_step - bursty)
    return w.render(), counts


HISTORY, COUNTS = _history()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = start_backfilled(HISTORY, Path(tmp_path_factory.mktemp("phase_evidence")))
    try:
        server.wait_for_data(f"engram_recall_total @ {TIMES[-1]}")
        yield server
    finally:
        server.stop()


def _ab(
    server: PrometheusServer, evidence: Evidence, kind: str = "criterion", deff: bool = True
) -> AB:
    gate = GateRecord(nodeid=f"test::{kind}", kind=kind)
    source = PrometheusSource(
        PromSettings(url=server.url, timeout_s=10, retries=0, max_staleness_s=3600),
        at=evidence.at,
    )
    settings = ABSettings(window="1h", min_samples=1000, design_effect=deff)
    return AB(PromQuery(source, gate), gate, settings, evidence)


def _phase(at: float, **kw: object) -> Evidence:
    fields: dict[str, object] = {
        "kind": "phase",
        "at": at,
        "window_s": 3600.0,
        "since": float(START),
        "since_source": "option",
        **kw,
    }
    return Evidence(**fields)  # type: ignore[arg-type]


def _true_count(group: str, end_step: int) -> int:
    return int(COUNTS[group][1 : end_step + 1].sum())


def test_counts_since_the_phase_start_survive_a_restart(prometheus: PrometheusServer) -> None:
    at = TIMES[-1]
    ab = _ab(prometheus, _phase(at), deff=False)  # raw counts: no design effect
    result = ab.quantile_delta(LATENCY, q=0.5, margin=0.005)
    n_t = result.n["treatment"]
    truth = _true_count("treatment", STEPS - 1)
    # increase() corrects the reset; `x @ at - x @ since` would have lost the 3 h before it.
    assert abs(n_t - truth) <= 0.01 * truth, (n_t, truth)
    lost_by_subtraction = _true_count("treatment", RESTART - 1)
    assert n_t > truth - lost_by_subtraction / 2
    assert "[28800s]" in result.queries[0]


def test_phase_evidence_decides_what_no_window_can(prometheus: PrometheusServer) -> None:
    at = TIMES[-1]
    window = Evidence(kind="window", at=at, window_s=3600.0)
    with pytest.raises(Inconclusive, match="need 1000 per group"):
        _ab(prometheus, window).quantile_delta(LATENCY, q=0.5, margin=0.005).require()
    # The plan (8 h) has run: the final look, which proves the healthy canary's p50.
    phase = _phase(at, duration_s=8 * 3600.0)
    passed = _ab(prometheus, phase).quantile_delta(LATENCY, q=0.5, margin=0.005).require()
    assert passed.progress["design"] == "obf"
    assert passed.progress["information_fraction"] == pytest.approx(1.0, abs=0.01)


def test_early_look_is_strict_and_says_when_it_resolves(prometheus: PrometheusServer) -> None:
    # Two hours into a seven-day plan: t is tiny, the O'Brien-Fleming boundary is far out.
    at = TIMES[120]
    ab = _ab(prometheus, _phase(at, duration_s=7 * 86400.0))
    comparison = ab.quantile_delta(LATENCY, q=0.99, margin=0.010)
    p = comparison.progress
    assert p["information_fraction"] == pytest.approx(2 / (7 * 24), rel=0.05)
    assert p["alpha_look"] < 1e-6
    with pytest.raises(Inconclusive) as excinfo:
        comparison.require()
    message = str(excinfo.value)
    assert "of the planned" in message and "by 20" in message, message
    assert p["eta"] is not None and p["n_needed"] > p["n"]


def test_criterion_past_its_plan_is_the_final_analysis(prometheus: PrometheusServer) -> None:
    at = TIMES[-1]
    phase = _phase(at, duration_s=5 * 3600.0)
    comparison = _ab(prometheus, phase, deff=False).quantile_delta(LATENCY, q=0.5, margin=0.005)
    assert "[18000s] offset 10800s" in comparison.queries[0]
    truth = _true_count("treatment", 5 * 60)
    assert abs(comparison.n["treatment"] - truth) <= 0.01 * truth
    # An abort trigger never stops watching: it counts up to the pinned instant.
    abort = _ab(prometheus, phase, kind="abort").quantile_delta(LATENCY, q=0.99, margin=0.02)
    assert "offset" not in abort.queries[0]
    assert abort.progress["design"] == "confidence-sequence"


def test_unknown_phase_start_is_inconclusive_never_a_window(prometheus: PrometheusServer) -> None:
    at = TIMES[-1]
    unknown = Evidence(
        kind="phase",
        at=at,
        window_s=3600.0,
        problem="no phase start for phase2: pass --rollout-since TIME",
    )
    with pytest.raises(Inconclusive, match="--rollout-since.*never falls back"):
        _ab(prometheus, unknown).quantile_delta(LATENCY, q=0.5, margin=0.005)


def test_independent_requests_get_no_design_effect(prometheus: PrometheusServer) -> None:
    # Poisson traffic with independent latencies: the measured ratio is noise around 1.
    at = TIMES[-1]
    for make in (
        lambda ab: ab.quantile_delta(LATENCY, q=0.5, margin=0.005),
        lambda ab: ab.proportion_delta(
            f'{LATENCY}_bucket{{le="0.01"}}', f"{LATENCY}_count", margin=0.01
        ),
    ):
        progress = make(_ab(prometheus, _phase(at))).progress
        measured = progress["design_effect"]
        assert measured["intervals"] == 240 and measured["interval_s"] == 120
        assert measured["deff"] == 1.0, measured
        assert set(measured["by_group"]) == {"control", "treatment"}


def test_bursty_errors_widen_the_interval_by_the_measured_design_effect(
    prometheus: PrometheusServer,
) -> None:
    at = TIMES[-1]
    errors, total = 'engram_bursty_total{outcome="error"}', "engram_bursty_total"
    naive = _ab(prometheus, _phase(at), deff=False).proportion_delta(errors, total, margin=0.01)
    honest = _ab(prometheus, _phase(at)).proportion_delta(errors, total, margin=0.01)
    measured = honest.progress["design_effect"]
    assert measured["deff"] > 1.5, measured
    assert honest.n["control"] == int(naive.n["control"] / measured["deff"])
    naive_width = naive.result.ci[1] - naive.result.ci[0]  # type: ignore[union-attr]
    honest_width = honest.result.ci[1] - honest.result.ci[0]  # type: ignore[union-attr]
    assert honest_width > 1.15 * naive_width
