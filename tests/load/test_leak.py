"""The leak estimate on synthetic RSS series: slope, interval, resolution floor, verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout.gate import GateRecord
from pytest_rollout.load.leak import (
    WARMUP_RESIDUE_PCT,
    InsufficientData,
    estimate_leak,
    judge_leak,
    min_leak_duration_s,
)
from pytest_rollout.load.result import ResourceSample, SoakResult, percentile_from_counts
from pytest_rollout.load.soak_config import SoakConfig
from pytest_rollout.outcomes import Inconclusive
from tests.load.helpers import TOY_LOCUSTFILE

HOUR = 3600.0


@settings(max_examples=50, deadline=None)
@given(
    start=st.floats(10e6, 2e9),
    pct_per_hour=st.floats(-50.0, 50.0),
    n=st.integers(10, 500),
    span_s=st.floats(60.0, 86400.0),
)
def test_exact_line_is_recovered(start: float, pct_per_hour: float, n: int, span_s: float) -> None:
    t = np.linspace(0.0, span_s, n)
    rss = start * (1 + pct_per_hour / 100.0 * t / HOUR)
    est = estimate_leak(t, rss, resolution_bytes=1e-9)
    assert est.slope_pct_per_hour == pytest.approx(pct_per_hour, abs=1e-6)
    lo, hi = est.ci_pct_per_hour
    assert lo <= est.slope_pct_per_hour <= hi


def test_flat_series_is_limited_by_the_page_resolution() -> None:
    t = np.arange(0.0, 60.0)
    est = estimate_leak(t, np.full(t.size, 30e6), resolution_bytes=4096.0)
    assert est.slope_pct_per_hour == 0.0
    floor = 4096.0 / 59.0 * HOUR / 30e6 * 100.0
    assert est.ci_pct_per_hour == pytest.approx((-floor, floor))
    assert est.resolution_pct_per_hour == pytest.approx(floor)


def test_autocorrelated_noise_widens_the_interval() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(0.0, 600.0)
    white = 30e6 + rng.normal(0, 20e3, t.size)
    walk = 30e6 + np.cumsum(rng.normal(0, 20e3, t.size))  # steps persist, like arena growth
    w = estimate_leak(t, white)
    r = estimate_leak(t, walk)
    width = lambda e: e.ci_pct_per_hour[1] - e.ci_pct_per_hour[0]  # noqa: E731
    assert width(r) > 5 * width(w)


def test_interval_covers_the_true_slope_under_noise() -> None:
    rng = np.random.default_rng(11)
    t = np.arange(0.0, 300.0, 5.0)
    covered = 0
    for _ in range(200):
        rss = 50e6 * (1 + 0.02 * t / HOUR) + rng.normal(0, 50e3, t.size)
        lo, hi = estimate_leak(t, rss).ci_pct_per_hour
        covered += lo <= 2.0 <= hi
    assert covered >= 180  # nominal 95 %: at least 90 % in 200 tries


# Two hours at 15 s: longer than the 1.5 h a verdict at the 1 %/h limit needs.
LONG = np.arange(0.0, 2 * HOUR + 1, 15.0)


def test_long_flat_run_passes_and_long_leak_fails() -> None:
    noise = np.random.default_rng(5).normal(0, 100e3, LONG.size)
    flat = estimate_leak(LONG, 400e6 + noise)
    assert judge_leak(flat, 1.0).outcome == "pass"
    leaking = estimate_leak(LONG, 400e6 * (1 + 0.03 * LONG / HOUR) + noise)  # 3 %/h
    verdict = judge_leak(leaking, 1.0)
    assert verdict.outcome == "fail" and "memory leak" in verdict.reason
    # The same leak behind 1 % of warm-up growth in the first 10 minutes is still a leak.
    settling = 400e6 * 0.01 * (1 - np.exp(-LONG / 200.0))
    behind = judge_leak(estimate_leak(LONG, 400e6 * (1 + 0.03 * LONG / HOUR) + settling), 1.0)
    assert behind.outcome == "fail"


def test_long_run_near_the_limit_says_how_long_to_soak() -> None:
    jitter = np.where(np.arange(LONG.size) % 2, 2e6, -2e6)  # +-2 MB: about +-0.08 %/h over 2 h
    near = estimate_leak(LONG, 400e6 * (1 + 0.0097 * LONG / HOUR) + jitter)  # 0.97 %/h
    lo, hi = near.ci_pct_per_hour
    assert lo < 1.0 < hi
    unsure = judge_leak(near, 1.0)
    assert unsure.outcome == "inconclusive" and "straddles the 1 %/h limit" in unsure.reason
    assert "soak for about" in unsure.reason


def test_short_soak_growing_after_warm_up_is_inconclusive_not_a_leak() -> None:
    """Issue 17: an 18 s soak whose RSS grew 0.4 % read as 'memory leak: +80 %/h' (FAIL)."""
    t = np.arange(0.0, 18.0)
    rss = 30e6 * (1 + 0.004 * t / 17.0) + np.random.default_rng(1).normal(0, 4096, t.size)
    est = estimate_leak(t, rss)
    assert est.ci_pct_per_hour[0] > 1.0  # the slope itself is clearly above the limit...
    verdict = judge_leak(est, 1.0)
    assert verdict.outcome == "inconclusive"  # ...but 17 s cannot tell it from warm-up
    assert "too short to tell a leak from warm-up growth" in verdict.reason
    assert "soak for at least 90 min after the warm-up" in verdict.reason
    # A flat short run does not pass either: it cannot have seen a slow leak.
    assert judge_leak(estimate_leak(t, np.full(t.size, 2e9)), 1.0).outcome == "inconclusive"


def test_soak_gate_on_an_18_s_soak_is_inconclusive() -> None:
    """The walkthrough's case end to end: a 20 s soak, 2 s warm-up, RSS up 0.4 % after it."""
    t0 = 1.8e9
    samples = [
        ResourceSample(
            t=t0 + i,
            rss_bytes=30e6 * (1 + 0.004 * max(i - 2, 0) / 18.0) + 4096 * (i % 2),
            cpu_seconds=0.05 * i,
            start_time=t0 - 5.0,
            warmup=i < 2,
        )  # fmt: skip
        for i in range(21)
    ]
    config = SoakConfig(
        target="http://127.0.0.1:9", locustfile=TOY_LOCUSTFILE, duration_s=20.0, warmup_s=2.0
    )
    result = SoakResult(
        config=config, started_at=t0, ended_at=t0 + 20.0, warmup_end=t0 + 2.0, completed=True,
        stop_reason="run time reached", resources=samples,
    )  # fmt: skip
    assert result.leak_estimate().ci_pct_per_hour[0] > 1.0
    gate = GateRecord(nodeid="gates/test_phase0_predeploy.py::test_soak_rss_growth")
    with pytest.raises(Inconclusive, match=r"at the 1 %/h limit; soak for at least 90 min"):
        result.check_no_leak(limit_pct_per_hour=1.0, gate=gate)
    assert gate.explanation is not None and "too short" in gate.explanation


def test_minimum_duration_scales_with_the_limit() -> None:
    assert min_leak_duration_s(1.0) == pytest.approx(1.5 * HOUR)
    assert min_leak_duration_s(25.0) == pytest.approx(216.0)
    with pytest.raises(ValueError, match="--leak-limit"):
        min_leak_duration_s(0.0)


@settings(max_examples=100, deadline=None)
@given(
    limit=st.floats(0.1, 2000.0),
    at=st.floats(0.0, 1.0),
    n=st.integers(6, 400),
)
def test_warm_up_residue_at_the_minimum_duration_is_not_a_leak(
    limit: float, at: float, n: int
) -> None:
    """The minimum's premise: a one-off step of WARMUP_RESIDUE_PCT anywhere in a run of the
    minimum length reads as a slope no steeper than the limit, so it cannot fail the check."""
    span = min_leak_duration_s(limit) * 1.001
    t = np.linspace(0.0, span, n)
    rss = 30e6 * (1 + WARMUP_RESIDUE_PCT / 100.0 * (t >= at * span))
    est = estimate_leak(t, rss, resolution_bytes=1e-9)
    # Percentages are of the fitted start, which a step mid-run pulls a little below 30 MB.
    assert est.slope_pct_per_hour <= limit * 1.01
    assert judge_leak(est, limit).outcome != "fail"


def test_too_few_samples() -> None:
    with pytest.raises(InsufficientData, match="need at least 6"):
        estimate_leak([0, 1, 2], [1e6, 1e6, 1e6])
    with pytest.raises(InsufficientData, match="same timestamp"):
        estimate_leak([5.0] * 8, [1e6] * 8)


def test_percentile_from_locust_counts() -> None:
    counts = {1: 50, 2: 40, 10: 9, 100: 1}
    assert percentile_from_counts(counts, 0.5) == 1.0
    assert percentile_from_counts(counts, 0.9) == 2.0
    assert percentile_from_counts(counts, 0.99) == 10.0
    assert percentile_from_counts(counts, 1.0) == 100.0
    assert percentile_from_counts({}, 0.5) is None
