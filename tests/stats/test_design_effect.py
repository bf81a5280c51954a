"""Design effect by simulation: spaces' sessions with random effects (the real clustering), each
session inside one 1-minute interval. The batch-means estimate recovers the true variance
inflation, stays near 1 for independent requests, and dividing the counts by it restores the
nominal error rate at the margin where the naive test errs."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from pytest_rollout.stats import Verdict, compare_proportions
from pytest_rollout.stats.design_effect import (
    MIN_INTERVALS,
    mean_design_effect,
    quantile_design_effect,
    rate_design_effect,
)
from tests.stats.simulate import BOUNDS, mc_tolerance

ALPHA = 0.025
IntArray = npt.NDArray[np.int64]


def _clustered_errors(
    rng: np.random.Generator, reps: int, k: int, sessions: int, m: int, p: float, icc: float
) -> tuple[IntArray, IntArray]:
    """Per-interval (errors, requests), reps x k: each session of m requests has its own error
    probability, Beta with mean p and intra-session correlation icc (0: independent)."""
    if icc == 0:
        p_s = np.full((reps, k, sessions), p)
    else:
        a, b = p * (1 - icc) / icc, (1 - p) * (1 - icc) / icc
        p_s = rng.beta(a, b, size=(reps, k, sessions))
    errors = rng.binomial(m, p_s).sum(axis=2)
    return errors, np.full((reps, k), sessions * m)


def test_rate_design_effect_recovers_the_true_inflation_of_clustered_sessions() -> None:
    rng = np.random.default_rng(31)
    m, icc, p = 20, 0.05, 0.02
    errors, n = _clustered_errors(rng, 300, 120, 50, m, p, icc)
    pooled = errors.sum(axis=1) / n.sum(axis=1)
    true_deff = 1 + (m - 1) * icc  # 1.95 for equal sessions
    empirical = float(np.var(pooled) / (p * (1 - p) / n[0].sum()))
    assert empirical == pytest.approx(true_deff, rel=0.2)  # the simulation is what it claims
    est = np.array([rate_design_effect(e, c).deff for e, c in zip(errors, n, strict=True)])
    assert float(np.median(est)) == pytest.approx(true_deff, rel=0.15)


def test_independent_requests_give_a_design_effect_near_one_and_never_below() -> None:
    rng = np.random.default_rng(32)
    errors, n = _clustered_errors(rng, 300, 120, 50, 20, 0.02, 0.0)
    results = [rate_design_effect(e, c) for e, c in zip(errors, n, strict=True)]
    raw = np.array([r.raw for r in results])
    assert float(np.median(raw)) == pytest.approx(1.0, abs=0.08)
    assert min(r.deff for r in results) == 1.0  # floored: data never narrow an interval
    assert float(np.median([r.deff for r in results])) <= 1.1


def _clustered_latencies(
    rng: np.random.Generator, reps: int, k: int, sessions: int, m: int, between: float
) -> npt.NDArray[np.float64]:
    """Latencies (reps x k x sessions*m): lognormal, median 6 ms, each session slowed or sped
    by its own lognormal factor (sd ``between`` on the log scale; 0: independent)."""
    factor = np.exp(rng.normal(0.0, between, size=(reps, k, sessions, 1))) if between else 1.0
    lat = 0.006 * factor * np.exp(rng.normal(0.0, 0.6, size=(reps, k, sessions, m)))
    return np.asarray(lat.reshape(reps, k, sessions * m), dtype=np.float64)


def test_quantile_and_mean_design_effects_recover_the_true_inflation() -> None:
    rng = np.random.default_rng(33)
    reps, k = 200, 60
    lat = _clustered_latencies(rng, reps, k, 30, 10, between=0.5)
    n_total = lat.shape[1] * lat.shape[2]
    # p99's indicator: at or below the upper edge of the bucket holding the pooled p99.
    per_bucket = np.stack([np.searchsorted(BOUNDS, lat[:, i], side="left") for i in range(k)], 1)
    cum = np.stack(
        [
            np.cumsum(np.apply_along_axis(np.bincount, -1, per_bucket[r], None, BOUNDS.size), -1)
            for r in range(reps)
        ]
    ).astype(np.float64)  # reps x k x buckets
    edge = int(np.searchsorted(BOUNDS, np.quantile(lat, 0.99)))  # the truth's bucket
    below = (lat <= BOUNDS[edge]).reshape(reps, -1).mean(axis=1)
    share = float(below.mean())
    empirical_q = float(np.var(below) / (share * (1 - share) / n_total))
    est_q = np.array([quantile_design_effect(cum[r], 0.99).deff for r in range(reps)])
    assert empirical_q > 1.5  # the clustering is real at p99
    assert float(np.median(est_q)) == pytest.approx(empirical_q, rel=0.25)

    means = lat.reshape(reps, -1).mean(axis=1)
    unit_var = float(np.mean(lat.reshape(reps, -1).var(axis=1)))
    empirical_m = float(np.var(means) / (unit_var / n_total))
    est_m = np.array(
        [
            mean_design_effect(lat[r].sum(axis=1), np.full(k, lat.shape[2]), lat[r].var()).deff
            for r in range(reps)
        ]
    )
    assert empirical_m > 1.5
    assert float(np.median(est_m)) == pytest.approx(empirical_m, rel=0.25)


def test_dividing_counts_by_the_design_effect_restores_alpha_at_the_margin() -> None:
    # Treatment's error rate is exactly control's + margin: "within" would be a false GO.
    rng = np.random.default_rng(34)
    reps, k, m, icc, margin = 300, 120, 20, 0.1, 0.002
    ce, cn = _clustered_errors(rng, reps, k, 60, m, 0.01, icc)
    te, tn = _clustered_errors(rng, reps, k, 20, m, 0.01 + margin, icc)
    naive = corrected = 0
    for r in range(reps):
        deff = max(
            rate_design_effect(ce[r], cn[r]), rate_design_effect(te[r], tn[r]), key=lambda d: d.deff
        )
        counts = (ce[r].sum(), cn[r].sum(), te[r].sum(), tn[r].sum())
        naive += compare_proportions(*counts, margin).verdict is Verdict.WITHIN
        effective = [deff.effective(c) for c in counts]
        corrected += compare_proportions(*effective, margin).verdict is Verdict.WITHIN
    tol = mc_tolerance(ALPHA, reps)
    assert naive / reps > ALPHA + tol  # independence is the wrong model (measured 0.157)
    assert corrected / reps <= ALPHA + tol  # measured 0.020


def test_few_intervals_and_no_spread_are_stated_and_never_deflate() -> None:
    few = rate_design_effect([0, 3, 1], [100, 100, 100])
    assert few.k == 3 and few.deff >= 1.0 and f"< {MIN_INTERVALS}" in few.explanation
    none = rate_design_effect([0] * 20, [100] * 20)
    assert none.deff == 1.0 and "no spread" in none.explanation
    assert rate_design_effect([5] * 20, [100] * 20).deff == 1.0  # less spread than binomial
    assert rate_design_effect([5] * 20, [100] * 20).effective(1999.0) == 1999.0
    with pytest.raises(ValueError, match="successes <= n"):
        rate_design_effect([5, 200], [100, 100])
