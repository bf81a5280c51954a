"""Repeated looks over a phase: the O'Brien-Fleming-type spending boundary (stats/spending.py)
on evidence accumulated since the phase start keeps the error of "any look proves a false claim"
at alpha, however many looks (168 hourly, 1008 every 10 minutes); a sliding 1 h window does not,
and never gathers the power a low-traffic canary needs. Truth exactly at the margin.

Seeded and vectorised: cumulative counts are nested sums of per-look increments (binomial error
counts, multinomial bucket counts). Verdicts come from the real interval functions
(``quantile_delta_bounds`` and ``proportion_delta``, what ``compare_*`` decide on), and the first
proving look of each replicate is confirmed with ``compare_quantiles``/``compare_proportions`` at
``alpha=obf_look_alpha(...)``. Rates are screened first with a vectorised Newcombe bound at 0.9x
the critical value (a superset of the looks that can prove, checked on a sample), because one
scalar call per look and replicate would take minutes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy.stats import norm

from pytest_rollout.stats import (
    Verdict,
    compare_proportions,
    compare_quantiles,
    proportion_delta,
    quantile_delta_bounds,
)
from pytest_rollout.stats.sequential import critical_value
from pytest_rollout.stats.spending import obf_look_alpha
from tests.stats.simulate import BOUNDS, bucket_probs, mc_tolerance

ALPHA = 0.025
PHASE_S = 7 * 86_400
CONTROL_RPS, SHARE = 60.0, 0.05
TREATMENT_RPS = CONTROL_RPS * SHARE / (1.0 - SHARE)  # 3.16 req/s: a 5 % cohort
MEDIAN, SIGMA = 0.006, 0.6  # p99 24 ms; +10 ms lands at an interpolation-neutral spot
P_CONTROL, RATE_MARGIN = 0.005, 0.001  # 0.5 % errors, +0.1 pp margin
FloatArray = npt.NDArray[np.float64]


def _look_alphas(looks: int) -> FloatArray:
    # Evenly spaced looks over the planned duration: t = elapsed / duration = n / planned n.
    return np.array([obf_look_alpha(ALPHA, (i + 1) / looks) for i in range(looks)])


def _errors(
    rng: np.random.Generator, reps: int, looks: int, n_per_look: float, p: float
) -> FloatArray:
    """Per-look error counts (reps x looks) among ``n_per_look`` requests."""
    return rng.binomial(int(n_per_look), p, size=(reps, looks)).astype(np.float64)


def _newcombe_upper(
    xc: FloatArray, nc: FloatArray, xt: FloatArray, nt: FloatArray, z: FloatArray
) -> FloatArray:
    def wilson(x: FloatArray, n: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        p = x / n
        denom = n + z * z
        centre = (x + z * z / 2.0) / denom
        half = z / denom * np.sqrt(np.maximum(x * (1.0 - p), 0.0) + z * z / 4.0)
        return p, centre - half, centre + half

    pc, lc, _ = wilson(xc, nc)
    pt, _, ut = wilson(xt, nt)
    return np.asarray(pt - pc + np.hypot(ut - pt, pc - lc), dtype=np.float64)


def _first_rate_proof(
    xc: FloatArray,
    nc: FloatArray,
    xt: FloatArray,
    nt: FloatArray,
    alphas: FloatArray,
    *,
    sequential: bool = False,
) -> npt.NDArray[np.int64]:
    """First look (per replicate) whose interval proves the rate delta within RATE_MARGIN, or
    the number of looks if none. Arrays are reps x looks (the n the same in every replicate);
    ``alphas`` one per look; ``sequential`` is today's confidence sequence tuned at 1000."""
    reps, looks = xt.shape
    if sequential:
        z = [
            min(critical_value(a, n, sequential=True) for n in (nc[0, i], nt[0, i]))
            for i, a in enumerate(alphas)
        ]
    else:
        z = norm.isf(np.maximum(alphas, 1e-300))
    loose = 0.9 * np.asarray(z)
    screened = _newcombe_upper(xc, nc, xt, nt, np.broadcast_to(loose, xt.shape)) < RATE_MARGIN
    first = np.full(reps, looks)
    for rep in np.flatnonzero(screened.any(axis=1)):
        for look in np.flatnonzero(screened[rep]):
            a = float(alphas[look])
            if a <= 0:
                continue
            args = (xc[rep, look], nc[rep, look], xt[rep, look], nt[rep, look])
            if proportion_delta(*args, alpha=a, sequential=sequential).ci[1] < RATE_MARGIN:
                first[rep] = look
                verdict = compare_proportions(
                    *args, RATE_MARGIN, alpha=a, sequential=sequential
                ).verdict
                assert verdict is Verdict.WITHIN
                break
    # The screen is a superset: a sample of screened-out looks must not prove either.
    rng = np.random.default_rng(0)
    out = np.argwhere(~screened & (alphas > 0))
    for rep, look in out[rng.choice(len(out), size=min(100, len(out)), replace=False)]:
        args = (xc[rep, look], nc[rep, look], xt[rep, look], nt[rep, look])
        bound = proportion_delta(*args, alpha=float(alphas[look]), sequential=sequential).ci[1]
        assert bound >= RATE_MARGIN
    return first


@pytest.mark.parametrize(("looks", "reps"), [(168, 1000), (1008, 1000)])
def test_error_rate_obf_looks_at_the_margin_keep_alpha(looks: int, reps: int) -> None:
    rng = np.random.default_rng(looks)
    step_s = PHASE_S / looks
    n_c, n_t = CONTROL_RPS * step_s, TREATMENT_RPS * step_s
    grid = np.arange(1, looks + 1, dtype=np.float64)
    xc = np.cumsum(_errors(rng, reps, looks, n_c, P_CONTROL), axis=1)
    xt = np.cumsum(_errors(rng, reps, looks, n_t, P_CONTROL + RATE_MARGIN), axis=1)
    nc = np.broadcast_to(int(n_c) * grid, xc.shape)
    nt = np.broadcast_to(int(n_t) * grid, xt.shape)
    first = _first_rate_proof(xc, nc, xt, nt, _look_alphas(looks))
    assert np.mean(first < looks) <= ALPHA + mc_tolerance(ALPHA, reps)


@pytest.mark.parametrize(("looks", "reps"), [(168, 1000), (1008, 400)])
def test_p99_obf_looks_at_the_margin_keep_alpha(looks: int, reps: int) -> None:
    rng = np.random.default_rng(1000 + looks)
    margin = 0.010
    step_s = PHASE_S / looks
    probs_c, probs_t = bucket_probs(MEDIAN, SIGMA), bucket_probs(MEDIAN, SIGMA, shift=margin)
    c = np.zeros((reps, BOUNDS.size))
    t = np.zeros((reps, BOUNDS.size))
    first = np.full(reps, looks)
    for look, a in enumerate(_look_alphas(looks)):
        c += np.cumsum(rng.multinomial(int(CONTROL_RPS * step_s), probs_c, size=reps), axis=1)
        t += np.cumsum(rng.multinomial(int(TREATMENT_RPS * step_s), probs_t, size=reps), axis=1)
        if a <= 0:
            continue
        _, _, hi = quantile_delta_bounds(BOUNDS, c, t, 0.99, alpha=float(a))
        new = (hi < margin) & (first == looks)
        for rep in np.flatnonzero(new):
            verdict = compare_quantiles(BOUNDS, c[rep], t[rep], 0.99, margin, alpha=float(a))
            assert verdict.verdict is Verdict.WITHIN
        first[new] = look
    assert np.mean(first < looks) <= ALPHA + mc_tolerance(ALPHA, reps)


def test_sliding_window_errs_almost_surely_where_accumulated_evidence_keeps_alpha() -> None:
    # Regression test of "evidence since the phase start": one look per hour for 7 days, truth
    # exactly at the margin. A fixed-alpha test of the last hour is 168 independent chances.
    rng = np.random.default_rng(12)
    reps, looks = 1000, 168
    n_c, n_t = CONTROL_RPS * 3600, TREATMENT_RPS * 3600
    hourly_c = _errors(rng, reps, looks, n_c, P_CONTROL)
    hourly_t = _errors(rng, reps, looks, n_t, P_CONTROL + RATE_MARGIN)
    one = np.ones((reps, looks))
    fixed = np.full(looks, ALPHA)
    sliding = _first_rate_proof(hourly_c, int(n_c) * one, hourly_t, int(n_t) * one, fixed)
    grid = np.arange(1, looks + 1, dtype=np.float64) * one
    accumulated = _first_rate_proof(
        np.cumsum(hourly_c, axis=1),
        int(n_c) * grid,
        np.cumsum(hourly_t, axis=1),
        int(n_t) * grid,
        _look_alphas(looks),
    )
    assert np.mean(sliding < looks) >= 0.9  # the false GO is all but certain (measured 0.96)
    assert np.mean(accumulated < looks) <= ALPHA + mc_tolerance(ALPHA, reps)  # measured 0.019


def test_a_healthy_low_traffic_canary_is_decided_only_by_accumulated_evidence() -> None:
    # 0.3 treatment req/s: one hour never proves +0.1 pp with today's always-valid interval
    # (a fixed-alpha hour does "prove" it, and errs almost surely at the margin, see above);
    # a few days of accumulated evidence under the spending boundary do.
    rng = np.random.default_rng(13)
    reps, looks, treatment_rps = 400, 168, 0.3
    n_c, n_t = CONTROL_RPS * 3600, treatment_rps * 3600
    hourly_c = _errors(rng, reps, looks, n_c, P_CONTROL)
    hourly_t = _errors(rng, reps, looks, n_t, P_CONTROL)
    one = np.ones((reps, looks))
    sliding = _first_rate_proof(
        hourly_c, int(n_c) * one, hourly_t, int(n_t) * one, np.full(looks, ALPHA), sequential=True
    )
    grid = np.arange(1, looks + 1, dtype=np.float64) * one
    accumulated = _first_rate_proof(
        np.cumsum(hourly_c, axis=1),
        int(n_c) * grid,
        np.cumsum(hourly_t, axis=1),
        int(n_t) * grid,
        _look_alphas(looks),
    )
    assert np.mean(sliding < looks) == 0.0  # undecided in every hour of the week
    assert np.mean(accumulated < looks) >= 0.9  # GO within the phase
    assert np.median(accumulated) < 96  # typically within four days (measured: 66 h)
