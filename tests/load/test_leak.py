"""The leak estimate on synthetic RSS series: slope, interval, resolution floor, verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout.load.leak import InsufficientData, estimate_leak, judge_leak
from pytest_rollout.load.result import percentile_from_counts

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


def test_verdicts() -> None:
    t = np.arange(0.0, 3600.0, 15.0)
    flat = estimate_leak(t, np.full(t.size, 400e6))
    assert judge_leak(flat, 1.0).outcome == "pass"
    leaking = estimate_leak(t, 400e6 * (1 + 0.05 * t / HOUR))
    verdict = judge_leak(leaking, 1.0)
    assert verdict.outcome == "fail" and "memory leak" in verdict.reason
    noisy = 400e6 + np.random.default_rng(3).normal(0, 300e3, 8)  # 8 noisy samples over 105 s
    short = estimate_leak(t[:8], noisy)
    unsure = judge_leak(short, 1.0)
    assert unsure.outcome == "inconclusive" and "soak for about" in unsure.reason


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
