"""Hypothesis properties of the comparisons."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout import stats

WIDTH = 0.005
GRID = np.array([*(WIDTH * np.arange(1, 41)), np.inf])  # equal buckets: shifts are exact
VERDICT_RANK = {stats.Verdict.WITHIN: 0, stats.Verdict.UNDECIDED: 1, stats.Verdict.BEYOND: 2}

# Mass in the lower buckets of the grid, leaving room to shift up without reaching +Inf.
counts = st.lists(st.integers(0, 400), min_size=25, max_size=25).filter(lambda c: sum(c) >= 50)
quantiles = st.sampled_from([0.5, 0.9, 0.99])


def _cum(per_bucket: list[int], offset: int = 0) -> np.ndarray:
    full = np.zeros(GRID.size)
    full[offset : offset + len(per_bucket)] = per_bucket
    return np.cumsum(full)


@settings(max_examples=60, deadline=None)
@given(c=counts, t=counts, q=quantiles, seq=st.booleans())
def test_swapping_groups_flips_the_sign(c: list[int], t: list[int], q: float, seq: bool) -> None:
    a = stats.quantile_delta(GRID, _cum(c), _cum(t), q, sequential=seq)
    b = stats.quantile_delta(GRID, _cum(t), _cum(c), q, sequential=seq)
    assert math.isclose(a.estimate, -b.estimate, abs_tol=1e-12)
    assert math.isclose(a.ci[0], -b.ci[1], abs_tol=1e-12)
    assert math.isclose(a.ci[1], -b.ci[0], abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    xc=st.integers(0, 500),
    nc=st.integers(500, 5000),
    xt=st.integers(0, 500),
    nt=st.integers(500, 5000),
)
def test_swapping_groups_flips_the_sign_for_rates(xc: int, nc: int, xt: int, nt: int) -> None:
    a = stats.proportion_delta(xc, nc, xt, nt)
    b = stats.proportion_delta(xt, nt, xc, nc)
    assert math.isclose(a.estimate, -b.estimate, abs_tol=1e-12)
    assert math.isclose(a.ci[0], -b.ci[1], abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(c=counts, t=counts, q=quantiles, k=st.integers(1, 10))
def test_shifting_both_groups_leaves_the_delta_interval_unchanged(
    c: list[int], t: list[int], q: float, k: int
) -> None:
    # With equal-width buckets a shift by k buckets is exactly a shift by k * WIDTH.
    a = stats.quantile_delta(GRID, _cum(c), _cum(t), q)
    b = stats.quantile_delta(GRID, _cum(c, k), _cum(t, k), q)
    assert math.isclose(a.estimate, b.estimate, abs_tol=1e-9)
    assert math.isclose(a.ci[0], b.ci[0], abs_tol=1e-9)
    assert math.isclose(a.ci[1], b.ci[1], abs_tol=1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shift=st.floats(0.0, 0.02))
def test_constant_shift_on_the_contract_buckets_moves_delta_within_resolution(
    seed: int, shift: float
) -> None:
    from tests.stats.simulate import BOUNDS

    rng = np.random.default_rng(seed)
    x_c, x_t = rng.lognormal(np.log(0.006), 0.6, 3000), rng.lognormal(np.log(0.006), 0.6, 600)

    def cum(x: np.ndarray) -> np.ndarray:
        return np.cumsum(np.histogram(x, np.concatenate(([-np.inf], BOUNDS)))[0])

    a = stats.quantile_delta(BOUNDS, cum(x_c), cum(x_t), 0.9)
    b = stats.quantile_delta(BOUNDS, cum(x_c + shift), cum(x_t + shift), 0.9)
    res = 2 * max(
        b.control.resolution, b.treatment.resolution, a.control.resolution, a.treatment.resolution
    )
    assert abs(a.estimate - b.estimate) <= res
    assert abs(a.ci[0] - b.ci[0]) <= res and abs(a.ci[1] - b.ci[1]) <= res


@settings(max_examples=60, deadline=None)
@given(c=counts, t=counts, q=quantiles, seq=st.booleans())
def test_intervals_shrink_as_n_grows(c: list[int], t: list[int], q: float, seq: bool) -> None:
    small = stats.quantile_delta(GRID, _cum(c), _cum(t), q, sequential=seq)
    big = stats.quantile_delta(GRID, 4 * _cum(c), 4 * _cum(t), q, sequential=seq)
    assert big.ci[1] - big.ci[0] <= small.ci[1] - small.ci[0] + 1e-12


@settings(max_examples=60, deadline=None)
@given(x=st.integers(0, 200), n=st.integers(200, 5000), seq=st.booleans())
def test_rate_intervals_shrink_as_n_grows(x: int, n: int, seq: bool) -> None:
    small = stats.proportion_delta(x, n, x, n, sequential=seq)
    big = stats.proportion_delta(4 * x, 4 * n, 4 * x, 4 * n, sequential=seq)
    assert big.ci[1] - big.ci[0] < small.ci[1] - small.ci[0]


@settings(max_examples=60, deadline=None)
@given(
    c=counts,
    t=counts,
    q=quantiles,
    k=st.integers(1, 12),
    margin=st.sampled_from([0.0, 0.005, 0.010, 0.020]),
)
def test_slower_treatment_never_improves_the_verdict(
    c: list[int], t: list[int], q: float, k: int, margin: float
) -> None:
    base = stats.compare_quantiles(GRID, _cum(c), _cum(t), q, margin)
    worse = stats.compare_quantiles(GRID, _cum(c), _cum(t, k), q, margin)
    assert VERDICT_RANK[worse.verdict] >= VERDICT_RANK[base.verdict]


@settings(max_examples=60, deadline=None)
@given(
    c=counts,
    t=counts,
    q=quantiles,
    moved=st.integers(1, 50),
    margin=st.sampled_from([0.0, 0.005, 0.010]),
)
def test_more_extreme_data_never_turns_abort_into_go(
    c: list[int], t: list[int], q: float, moved: int, margin: float
) -> None:
    # Move up to `moved` treatment observations one bucket up (any shape change, not a shift).
    base = stats.compare_quantiles(GRID, _cum(c), _cum(t), q, margin)
    t2 = list(t) + [0]
    for i in range(len(t)):
        step = min(t2[i], moved)
        t2[i] -= step
        t2[i + 1] += step
    worse = stats.compare_quantiles(GRID, _cum(c), _cum(t2), q, margin)
    if base.verdict is stats.Verdict.BEYOND:
        assert worse.verdict is not stats.Verdict.WITHIN
    assert worse.estimate >= base.estimate - 1e-12


@settings(max_examples=60, deadline=None)
@given(xc=st.integers(0, 100), xt=st.integers(0, 100), extra=st.integers(1, 100))
def test_more_errors_never_improve_the_rate_verdict(xc: int, xt: int, extra: int) -> None:
    base = stats.compare_proportions(xc, 5000, xt, 2000, 0.005)
    worse = stats.compare_proportions(xc, 5000, xt + extra, 2000, 0.005)
    assert VERDICT_RANK[worse.verdict] >= VERDICT_RANK[base.verdict]
