"""Seeded Monte Carlo at the margin, not at 0, on both sides: false GO (a criterion proven
"within" when the truth is exactly the margin) and false ABORT (an abort trigger proven "beyond"
when the truth is exactly the abort margin). Unequal groups (5 % treatment split), four latency
laws, the design buckets and Prometheus' default buckets. Each rate must stay under alpha plus
3 Monte Carlo standard errors. The long sweep is benchmarks/margin_error_rates.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_rollout import stats
from tests.stats.laws import (
    BUCKETS,
    DEFAULT_BOUNDS,
    DESIGN_BOUNDS,
    LAWS,
    bucket_probs,
    draw,
    mc_limit,
)

ALPHA = 0.025
SPLITS = [(19_000, 1_000), (95_000, 5_000)]
# (quantile, criterion margin, abort margin) as in gates/rollout.toml (p50 has no abort there;
# twice its margin is checked so both sides are covered).
MARGINS = [(0.99, 0.010, 0.020), (0.5, 0.005, 0.010)]


@pytest.mark.parametrize("buckets", sorted(BUCKETS))
@pytest.mark.parametrize("law", sorted(LAWS))
def test_quantile_false_go_and_false_abort_at_the_margins(law: str, buckets: str) -> None:
    rng = np.random.default_rng(1130)
    bounds, cdf, reps = BUCKETS[buckets], LAWS[law], 800
    control = bucket_probs(cdf, bounds)
    failures = []
    for q, margin, abort in MARGINS:
        for n_c, n_t in SPLITS:
            c = draw(rng, n_c, control, reps)
            go = draw(rng, n_t, bucket_probs(cdf, bounds, margin), reps)
            _, _, hi = stats.quantile_delta_bounds(bounds, c, go, q, alpha=ALPHA)
            stop = draw(rng, n_t, bucket_probs(cdf, bounds, abort), reps)
            lo, _ = stats.quantile_delta_bounds(bounds, c, stop, q, alpha=ALPHA)[1:]
            rates = {"false GO": np.mean(hi < margin), "false ABORT": np.mean(lo > abort)}
            failures += [
                f"q={q} n={n_c}/{n_t} {k}={v:.3f}"
                for k, v in rates.items()
                if v > mc_limit(ALPHA, reps)
            ]
    assert not failures, failures


def test_default_buckets_at_the_margin_is_not_a_confident_go() -> None:
    # The case: both p99s in the (10 ms, 25 ms] bucket, treatment exactly +10 ms. The
    # interpolated bounds said "+5.6 ms, interval +5.1 .. +6.1 ms": GO. Nothing can tell these
    # apart inside one bucket, so the answer must be undecided, and say which buckets to add.
    from scipy.stats import lognorm

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.asarray(lognorm.cdf(x, s=0.5, scale=0.004))  # p99 12.8 ms; treatment 22.8 ms

    n_c, n_t = 190_000, 10_000
    c = np.round(np.cumsum(bucket_probs(cdf, DEFAULT_BOUNDS)) * n_c)
    t = np.round(np.cumsum(bucket_probs(cdf, DEFAULT_BOUNDS, 0.010)) * n_t)
    result = stats.compare_quantiles(DEFAULT_BOUNDS, c, t, 0.99, 0.010)
    assert result.verdict is stats.Verdict.UNDECIDED
    assert result.ci[1] >= 0.010
    assert result.bucket_limited
    assert result.n_needed is None
    assert "undecidable with these buckets" in result.explanation
    assert "between 10.0 ms and 25.0 ms" in result.explanation


def test_design_buckets_are_not_bucket_limited_for_the_staging_p99_margin() -> None:
    cdf = LAWS["lognormal"]
    c = np.round(np.cumsum(bucket_probs(cdf, DESIGN_BOUNDS)) * 19_000)
    t = np.round(np.cumsum(bucket_probs(cdf, DESIGN_BOUNDS)) * 1_000)
    result = stats.compare_quantiles(DESIGN_BOUNDS, c, t, 0.99, 0.010)
    assert not result.bucket_limited
    assert result.verdict is not stats.Verdict.BEYOND


@pytest.mark.parametrize("q", [0.99, 0.5])
def test_quantile_n_needed_from_a_pilot_realizes_its_power(q: float) -> None:
    # Pilots with no real difference; each pilot's n_needed is then run against the truth.
    rng = np.random.default_rng(31)
    bounds, cdf, margin = DESIGN_BOUNDS, LAWS["lognormal"], {0.99: 0.010, 0.5: 0.005}[q]
    probs = bucket_probs(cdf, bounds)
    pilots, reps, realized = 9, 400, []
    pilot_n = {0.99: (1_900, 100), 0.5: (95, 5)}[q]  # small enough to be undecided
    for _ in range(pilots):
        c, t = (draw(rng, n, probs, 1)[0] for n in pilot_n)
        result = stats.compare_quantiles(bounds, c, t, q, margin)
        assert result.verdict is stats.Verdict.UNDECIDED and result.n_needed is not None
        need = result.n_needed
        cc = draw(rng, need["control"], probs, reps)
        tt = draw(rng, need["treatment"], probs, reps)
        _, _, hi = stats.quantile_delta_bounds(bounds, cc, tt, q, alpha=ALPHA)
        realized.append(float(np.mean(hi < margin)))
    # The pilot's own noise spreads the realized power; its median must reach the nominal 0.8.
    assert float(np.median(realized)) >= 0.8 - 3 * math.sqrt(0.8 * 0.2 / reps), realized


@pytest.mark.parametrize("p_c", [0.001, 0.002, 0.005, 0.02])
def test_rate_interval_errs_at_most_alpha_on_both_sides_at_the_margin(p_c: float) -> None:
    rng = np.random.default_rng(int(p_c * 1e5))
    reps, failures = 4_000, []
    for n_c, n_t in SPLITS:
        for margin in (0.001, 0.005):
            xc = rng.binomial(n_c, p_c, reps)
            xt = rng.binomial(n_t, p_c + margin, reps)
            _, lo, hi = stats.proportion_delta_bounds(xc, n_c, xt, n_t, alpha=ALPHA)
            rates = {"false GO": np.mean(hi < margin), "false ABORT": np.mean(lo > margin)}
            failures += [
                f"n={n_c}/{n_t} margin={margin} {k}={v:.4f}"
                for k, v in rates.items()
                if v > mc_limit(ALPHA, reps)
            ]
    assert not failures, failures


def test_rate_interval_matches_the_scalar_comparison() -> None:
    d = stats.proportion_delta(40, 19_000, 6, 1_000)
    _, lo, hi = stats.proportion_delta_bounds(
        np.array([40]), 19_000, np.array([6]), 1_000, alpha=0.025
    )
    assert d.ci == pytest.approx((float(lo[0]), float(hi[0])), rel=1e-9)


@pytest.mark.parametrize("p_c", [0.0002, 0.002, 0.01])
def test_rate_sample_size_realizes_its_power(p_c: float) -> None:
    margin, ratio, reps = 0.001, 19.0, 3_000
    size = stats.required_sample_size(
        math.sqrt(p_c * (1 - p_c)),
        math.sqrt(p_c * (1 - p_c)),
        margin,
        ratio=ratio,
        rates=(p_c, p_c),
    )
    rng = np.random.default_rng(17)
    xc = rng.binomial(size.n_control, p_c, reps)
    xt = rng.binomial(size.n_treatment, p_c, reps)
    _, _, hi = stats.proportion_delta_bounds(xc, size.n_control, xt, size.n_treatment, alpha=ALPHA)
    assert np.mean(hi < margin) >= 0.8 - 3 * math.sqrt(0.8 * 0.2 / reps)


@pytest.mark.parametrize("sd", [0.009, 0.03, 0.1])
def test_histogram_means_are_not_proven_within_at_the_margin(sd: float) -> None:
    # Recall confidence in 0.05-wide buckets, treatment exactly 0.05 lower (the margin).
    rng = np.random.default_rng(int(sd * 1000))
    bounds = np.array([*(0.05 * np.arange(1, 21)), np.inf])
    reps, n_c, n_t, margin = 600, 1_900, 100, 0.05
    failures = 0
    for _ in range(reps):
        moments = []
        for n, mean in ((n_c, 0.72), (n_t, 0.72 - margin)):
            x = np.clip(rng.normal(mean, sd, n), 0.0, 1.0)
            cum = np.searchsorted(np.sort(x), bounds, side="right").astype(np.float64)
            moments.append(stats.histogram_moments(bounds, cum, float(x.sum())))
        d = stats.mean_delta(moments[0], moments[1], alpha=ALPHA)
        failures += int(-margin < d.ci[0] and d.ci[1] < margin)
    assert failures / reps <= mc_limit(ALPHA, reps)
