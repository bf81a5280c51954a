"""Seeded Monte Carlo with known truth: lognormal latencies binned into the contract's buckets.

Sized for CI (a few hundred replications); each tolerance is 3 binomial Monte Carlo standard
errors, so a correct method fails about 1 run in 700 per assertion, and the seeds are fixed.
The full-size version is benchmarks/stats_power.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_rollout import stats
from tests.stats.simulate import BOUNDS, bucket_probs, draw_cumulative, mc_tolerance

ALPHA = 0.025  # per side, the gates' default
MEDIAN, SIGMA = 0.006, 0.6  # p50 6 ms, p99 about 24 ms


@pytest.mark.parametrize(
    ("q", "n_control", "n_treatment"),
    [(0.99, 20_000, 2_000), (0.5, 2_000, 2_000), (0.99, 1_000, 1_000)],
)
def test_aa_false_positive_rate_is_at_most_alpha(
    q: float, n_control: int, n_treatment: int
) -> None:
    rng = np.random.default_rng(20261125)
    reps = 400
    probs = bucket_probs(MEDIAN, SIGMA)
    c = draw_cumulative(rng, n_control, probs, reps)
    t = draw_cumulative(rng, n_treatment, probs, reps)
    _, lo, hi = stats.quantile_delta_bounds(BOUNDS, c, t, q, alpha=ALPHA)
    tol = mc_tolerance(ALPHA, reps)
    assert np.mean(lo > 0) <= ALPHA + tol  # false "slower" (would abort with margin 0)
    assert np.mean(hi < 0) <= ALPHA + tol  # false "faster"


def test_noninferiority_at_the_margin_is_proven_within_at_most_alpha() -> None:
    # Treatment is exactly as bad as the margin (every query +5 ms): "within" would be wrong.
    rng = np.random.default_rng(7)
    reps, margin = 400, 0.005
    c = draw_cumulative(rng, 20_000, bucket_probs(MEDIAN, SIGMA), reps)
    t = draw_cumulative(rng, 4_000, bucket_probs(MEDIAN, SIGMA, shift=margin), reps)
    _, _, hi = stats.quantile_delta_bounds(BOUNDS, c, t, 0.99, alpha=ALPHA)
    assert np.mean(hi < margin) <= ALPHA + mc_tolerance(ALPHA, reps)


def test_power_is_at_least_80_percent_at_the_minimum_detectable_effect() -> None:
    rng = np.random.default_rng(11)
    reps, n = 400, 2_000
    expected = np.round(np.cumsum(bucket_probs(MEDIAN, SIGMA)) * n)
    planned = stats.quantile_delta(BOUNDS, expected, expected, 0.99, alpha=ALPHA)
    mde, _ = stats.detectable_distance(planned, power=0.8)
    assert 0.002 < mde < 0.015  # a few ms at p99 with 2000 queries per group
    c = draw_cumulative(rng, n, bucket_probs(MEDIAN, SIGMA), reps)
    t = draw_cumulative(rng, n, bucket_probs(MEDIAN, SIGMA, shift=mde), reps)
    _, lo, _ = stats.quantile_delta_bounds(BOUNDS, c, t, 0.99, alpha=ALPHA)
    assert np.mean(lo > 0) >= 0.8 - mc_tolerance(0.8, reps)


def test_rate_false_positive_rate_and_power() -> None:
    rng = np.random.default_rng(5)
    reps, n, base = 600, 20_000, 0.002
    xc = rng.binomial(n, base, reps)
    xt = rng.binomial(n, base, reps)
    false = [stats.proportion_delta(a, n, b, n).ci[0] > 0 for a, b in zip(xc, xt, strict=True)]
    assert np.mean(false) <= ALPHA + mc_tolerance(ALPHA, reps)
    sd = float(np.sqrt(base * (1 - base)))
    size = stats.required_sample_size(sd, float(np.sqrt(0.003 * 0.997)), 0.001)
    xt2 = rng.binomial(size.n_treatment, base + 0.001, reps)
    xc2 = rng.binomial(size.n_control, base, reps)
    hit = [
        stats.proportion_delta(a, size.n_control, b, size.n_treatment).ci[0] > 0
        for a, b in zip(xc2, xt2, strict=True)
    ]
    assert np.mean(hit) >= 0.8 - mc_tolerance(0.8, reps)


def test_sequential_form_keeps_alpha_over_100_looks_while_naive_does_not() -> None:
    # Buckets 0.01 ms wide around the median, finer than its sampling spread at every look: with
    # the contract's buckets both medians share a bucket whose edges keep A/A from proving
    # "slower" at margin 0, and only the order statistics' spread is under test here.
    from scipy.stats import lognorm

    rng = np.random.default_rng(99)
    reps, looks, step = 200, 100, 100
    fine = np.array([0.001, 0.003, *(0.005 + 0.00001 * np.arange(201)), 0.01, 0.03, np.inf])
    probs = np.diff(np.concatenate(([0.0], lognorm.cdf(fine, s=SIGMA, scale=MEDIAN))))
    probs[-1] += 1.0 - probs.sum()
    # Cumulative histograms after each look: cumsum over looks, then over buckets.
    c = np.cumsum(np.cumsum(rng.multinomial(step, probs, size=(reps, looks)), axis=1), axis=2)
    t = np.cumsum(np.cumsum(rng.multinomial(step, probs, size=(reps, looks)), axis=1), axis=2)
    flat_c, flat_t = c.reshape(-1, fine.size), t.reshape(-1, fine.size)
    rates = {}
    for sequential in (False, True):
        _, lo, _ = stats.quantile_delta_bounds(
            fine, flat_c, flat_t, 0.5, alpha=ALPHA, sequential=sequential, tuning_n=1000
        )
        rates[sequential] = float(np.mean((lo.reshape(reps, looks) > 0).any(axis=1)))
    tol = mc_tolerance(ALPHA, reps)
    assert rates[True] <= ALPHA + tol
    assert rates[False] > ALPHA + tol  # repeated fixed-horizon testing inflates false alarms
