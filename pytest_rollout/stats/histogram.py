"""Quantiles of Prometheus-style histograms with intervals, and their treatment-control delta.

Inputs are the cumulative bucket counts of a window (``increase(x_bucket[w])`` summed by ``le``)
and the buckets' upper bounds, ending with ``+Inf``. The point estimate is exactly
``histogram_quantile``: the rank ``q * n`` located in the cumulative counts and interpolated
linearly inside its bucket.

Interval for one group: distribution-free order-statistic bounds. The true quantile lies between
the order statistics of ranks ``l`` and ``u`` with ``l, u`` binomial(n, q) quantiles, whatever the
latency distribution; those ranks are mapped to latencies with the same interpolation. An upper
rank in the ``+Inf`` bucket gives an infinite bound (the data cannot say how slow the tail is).

Delta interval: MOVER (Zou and Donner 2008), the construction behind Newcombe's interval for
proportions: each side of the delta's interval combines the matching sides of the two groups'
intervals in quadrature. Its error rates are checked by simulation (tests/stats, benchmarks/).

Bucket width is uncertainty that no sample size removes: interpolation assumes latencies spread
evenly inside a bucket. Each group reports the width of the bucket its estimate falls in
(``resolution``) and explanations show it; shifts of both groups inside a bucket cancel in the
delta, which is why the decision uses the interpolated interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from pytest_rollout.stats.format import quantile_name
from pytest_rollout.stats.result import Delta, GroupEstimate
from pytest_rollout.stats.sequential import critical_value

FloatArray = npt.NDArray[np.float64]


def as_histogram(bounds: Any, cumulative: Any) -> tuple[FloatArray, FloatArray]:
    """Validated float arrays: bounds strictly increasing and ending at +Inf; counts made
    cumulative-monotone (``increase()`` extrapolates each bucket separately, so tiny inversions
    happen; ``histogram_quantile`` repairs them the same way)."""
    b = np.asarray(bounds, dtype=np.float64)
    c = np.asarray(cumulative, dtype=np.float64)
    if b.ndim != 1 or b.size < 2:
        raise ValueError("bounds must be a 1-d array of at least two bucket upper bounds")
    if not np.isposinf(b[-1]):
        raise ValueError('the last bucket bound must be +Inf (the histogram\'s le="+Inf" bucket)')
    if np.any(np.diff(b) <= 0):
        raise ValueError("bucket bounds must be strictly increasing")
    if c.shape[-1] != b.size:
        raise ValueError(f"{c.shape[-1]} cumulative counts for {b.size} buckets")
    if np.any(~np.isfinite(c)) or np.any(c < 0):
        raise ValueError("bucket counts must be finite and >= 0")
    return b, np.maximum.accumulate(c, axis=-1)


def _bucket_at_rank(cum: FloatArray, rank: FloatArray, nb: int) -> npt.NDArray[np.intp]:
    """Index of the bucket holding the order statistic of (fractional) rank ``rank``."""
    return np.asarray(np.clip(np.sum(cum < rank[..., None], axis=-1), 0, nb - 1), dtype=np.intp)


def _point_at_rank(bounds: FloatArray, cum: FloatArray, rank: FloatArray) -> FloatArray:
    """histogram_quantile's interpolated latency at (fractional) rank, vectorised over rows:
    linear inside the bucket, the highest finite bound in the +Inf bucket."""
    nb = bounds.size
    k = _bucket_at_rank(cum, rank, nb)
    below = np.take_along_axis(cum, np.maximum(k - 1, 0)[..., None], -1)[..., 0]
    prev = np.where(k > 0, below, 0.0)
    here = np.take_along_axis(cum, k[..., None], -1)[..., 0]
    first_lo = 0.0 if bounds[0] > 0 else bounds[0]
    lo_edge = np.where(k > 0, bounds[np.maximum(k - 1, 0)], first_lo)
    hi_edge = bounds[k]
    count = here - prev
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(count > 0, (rank - prev) / count, 1.0)
        value = lo_edge + (hi_edge - lo_edge) * np.clip(frac, 0.0, 1.0)
    value = np.where(k == nb - 1, bounds[-2], value)
    value = np.where(rank <= 0, first_lo, value)
    return np.where(cum[..., -1] > 0, value, np.nan)


def _edge_at_rank(
    bounds: FloatArray, cum: FloatArray, rank: FloatArray, *, upper: bool
) -> FloatArray:
    """Outer edge of the bucket holding the order statistic of rank ``rank``: its lower edge for a
    lower bound, its upper edge (+Inf for the +Inf bucket) for an upper bound.

    The order statistic lies inside that bucket, so the edge bounds it whatever the latencies do
    inside buckets; interpolating instead assumes they spread evenly and is not distribution-free.
    """
    nb = bounds.size
    k = _bucket_at_rank(cum, rank, nb)
    first_lo = 0.0 if bounds[0] > 0 else bounds[0]
    total = cum[..., -1]
    if upper:
        value = np.where(rank > total, np.inf, bounds[k])
    else:
        value = np.where(k > 0, bounds[np.maximum(k - 1, 0)], first_lo)
        value = np.where(rank <= 0, first_lo, value)
    return np.where(total > 0, value, np.nan)


def _ranks(
    n: FloatArray, q: float, alpha: float, sequential: bool, tuning_n: float
) -> tuple[FloatArray, FloatArray]:
    """Ranks of the order statistics that bound the q-quantile, each side erring with alpha."""
    if sequential:
        mult = np.array(
            [
                critical_value(alpha, float(v), sequential=True, tuning_n=tuning_n)
                if v > 0
                else np.inf
                for v in np.ravel(n)
            ]
        ).reshape(np.shape(n))
        spread = mult * np.sqrt(n * q * (1.0 - q))
        return n * q - spread, n * q + spread + 1.0
    from scipy.stats import binom

    # P(X_(l) <= xi_q) = P(Bin(n, q) >= l) >= 1 - alpha, and symmetrically for u. Simulated
    # batches share one n, so compute each distinct n once (binom.ppf is slow).
    distinct, where = np.unique(np.asarray(n, dtype=np.float64), return_inverse=True)
    lower = np.asarray(binom.ppf(alpha, distinct, q), dtype=np.float64)[where]
    upper = np.asarray(binom.ppf(1.0 - alpha, distinct, q), dtype=np.float64)[where] + 1.0
    return lower.reshape(np.shape(n)), upper.reshape(np.shape(n))


def quantile_bounds(
    bounds: Any,
    cumulative: Any,
    q: float,
    *,
    alpha: float = 0.025,
    sequential: bool = False,
    tuning_n: float = 1000.0,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(estimate, lower, upper) of the q-quantile, vectorised over rows of ``cumulative``."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    b, cum = as_histogram(bounds, cumulative)
    n = cum[..., -1]
    est = _point_at_rank(b, cum, n * q)
    l_rank, u_rank = _ranks(n, q, alpha, sequential, tuning_n)
    lower = _edge_at_rank(b, cum, l_rank, upper=False)
    upper = _edge_at_rank(b, cum, u_rank, upper=True)
    # The point estimate caps at the last finite bound; keep the interval around it.
    lower = np.minimum(lower, est)
    upper = np.maximum(upper, est)
    return est, lower, upper


def quantile_delta_bounds(
    bounds: Any,
    control_cumulative: Any,
    treatment_cumulative: Any,
    q: float,
    *,
    alpha: float = 0.025,
    sequential: bool = False,
    tuning_n: float = 1000.0,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(delta, lower, upper) of treatment minus control, vectorised over rows (MOVER)."""
    qc, lc, uc = quantile_bounds(
        bounds, control_cumulative, q, alpha=alpha, sequential=sequential, tuning_n=tuning_n
    )
    qt, lt, ut = quantile_bounds(
        bounds, treatment_cumulative, q, alpha=alpha, sequential=sequential, tuning_n=tuning_n
    )
    delta = qt - qc
    with np.errstate(invalid="ignore"):
        lower = delta - np.hypot(qt - lt, uc - qc)
        upper = delta + np.hypot(ut - qt, qc - lc)
    lower = np.where(np.isnan(delta), -np.inf, lower)
    upper = np.where(np.isnan(delta), np.inf, upper)
    return delta, lower, upper


NULL_REPS = 400  # replications behind n_needed: power known to about +-0.02 at 0.8


def quantile_null_bounds(
    bounds: Any,
    control_cumulative: Any,
    treatment_cumulative: Any,
    q: float,
    scale: float,
    *,
    alpha: float = 0.025,
    sequential: bool = False,
    tuning_n: float = 1000.0,
    reps: int = NULL_REPS,
) -> tuple[FloatArray, FloatArray]:
    """(lower, upper) delta bounds of ``reps`` simulated comparisons with ``scale`` times the
    groups' n, both drawn from the pooled histogram (no real difference).

    This is what ``n_needed`` searches on: the exact interval the gate computes, bucket edges
    included, so the n it returns realizes its power (a normal approximation cannot see that an
    edge bound moves a whole bucket at a time). The seed is fixed so the search is reproducible
    and every scale sees the same random numbers.
    """
    b, c = as_histogram(bounds, control_cumulative)
    _, t = as_histogram(bounds, treatment_cumulative)
    per_bucket = np.diff(np.concatenate(([0.0], c + t)))
    probs = per_bucket / per_bucket.sum()
    rng = np.random.default_rng(20261130)
    sizes = (round(float(c[-1]) * scale), round(float(t[-1]) * scale))
    draws = [np.cumsum(rng.multinomial(m, probs, size=reps), axis=1) for m in sizes]
    _, lo, hi = quantile_delta_bounds(
        b, draws[0], draws[1], q, alpha=alpha, sequential=sequential, tuning_n=tuning_n
    )
    return lo, hi


def quantile_estimate(
    bounds: Any,
    cumulative: Any,
    q: float,
    *,
    alpha: float = 0.025,
    sequential: bool = False,
    tuning_n: float = 1000.0,
) -> GroupEstimate:
    """One group's q-quantile with its order-statistic interval and bucket resolution."""
    b, cum = as_histogram(bounds, cumulative)
    if cum.ndim != 1:
        raise ValueError("quantile_estimate takes one histogram; use quantile_bounds for batches")
    est, lo, hi = quantile_bounds(b, cum, q, alpha=alpha, sequential=sequential, tuning_n=tuning_n)
    edges = _bucket_edges(b, cum, q)
    return GroupEstimate(
        estimate=float(est),
        ci=(float(lo), float(hi)),
        n=int(round(cum[-1])),
        resolution=edges[1] - edges[0] if edges else math.nan,
        bucket=edges,
    )


def _bucket_edges(bounds: FloatArray, cum: FloatArray, q: float) -> tuple[float, float] | None:
    """(lower, upper) edges of the bucket holding the q-quantile; the +Inf bucket's upper is inf."""
    n = cum[-1]
    if n <= 0:
        return None
    k = min(int(np.sum(cum < q * n)), bounds.size - 1)
    lo = bounds[k - 1] if k > 0 else min(0.0, bounds[0])
    return (float(lo), float(bounds[k]))


def quantile_unit_sd(bounds: Any, cumulative: Any, q: float) -> float:
    """Per-observation standard deviation of the sample quantile, sqrt(q(1-q)) / density,
    with the density read off the bucket that holds the quantile (for power and sample size)."""
    b, cum = as_histogram(bounds, cumulative)
    n = cum[-1]
    if n <= 0:
        return math.inf
    k = min(int(np.sum(cum < q * n)), b.size - 1)
    if k == b.size - 1:
        return math.inf
    width = b[k] - (b[k - 1] if k > 0 else min(0.0, b[0]))
    mass = (cum[k] - (cum[k - 1] if k > 0 else 0.0)) / n
    if mass <= 0 or width <= 0:
        return math.inf
    return float(math.sqrt(q * (1 - q)) / (mass / width))


def quantile_delta(
    bounds: Any,
    control_cumulative: Any,
    treatment_cumulative: Any,
    q: float,
    *,
    alpha: float = 0.025,
    sequential: bool = False,
    tuning_n: float = 1000.0,
    unit: str = "s",
) -> Delta:
    """Treatment minus control q-quantile, with an interval whose sides each err with alpha."""
    control = quantile_estimate(
        bounds, control_cumulative, q, alpha=alpha, sequential=sequential, tuning_n=tuning_n
    )
    treatment = quantile_estimate(
        bounds, treatment_cumulative, q, alpha=alpha, sequential=sequential, tuning_n=tuning_n
    )
    d, lo, hi = quantile_delta_bounds(
        bounds,
        control_cumulative,
        treatment_cumulative,
        q,
        alpha=alpha,
        sequential=sequential,
        tuning_n=tuning_n,
    )
    return Delta(
        statistic=quantile_name(q),
        unit=unit,
        estimate=float(d),
        ci=(float(lo), float(hi)),
        bound_sd=_bound_sd(
            bounds,
            control_cumulative,
            treatment_cumulative,
            q,
            control,
            treatment,
            alpha,
            sequential,
            tuning_n,
        ),
        control=control,
        treatment=treatment,
        alpha=alpha,
        sequential=sequential,
        unit_sd=(
            quantile_unit_sd(bounds, control_cumulative, q),
            quantile_unit_sd(bounds, treatment_cumulative, q),
        ),
        tuning_n=tuning_n,
    )


def _bound_sd(
    bounds: Any,
    control_cumulative: Any,
    treatment_cumulative: Any,
    q: float,
    control: GroupEstimate,
    treatment: GroupEstimate,
    alpha: float,
    sequential: bool,
    tuning_n: float,
) -> tuple[float, float]:
    """Delta-method standard deviations of the MOVER bounds, using the joint asymptotic law of
    order statistics (cov of the p1- and p2-quantiles = p1 (1 - p2) / (n f1 f2), p1 <= p2),
    plus (w / 2)^2 per edge bound for the bucket edge it snaps to. Power computed from the
    estimate's spread alone overstates power for p99 at small n, because the bounds sit further
    out in the tail where data are sparse. ``n_needed`` does not use this (it simulates)."""
    qc, (lc, uc) = control.estimate, control.ci
    qt, (lt, ut) = treatment.estimate, treatment.ci
    h_lo = math.hypot(qt - lt, uc - qc)
    h_hi = math.hypot(ut - qt, qc - lc)
    if not (math.isfinite(h_lo) and math.isfinite(h_hi)) or h_lo == 0 or h_hi == 0:
        return (math.inf, math.inf)
    levels: dict[str, tuple[float, float, float]] = {}
    for name, n in (("c", control.n), ("t", treatment.n)):
        l_rank, u_rank = _ranks(np.asarray(float(n)), q, alpha, sequential, tuning_n)
        levels[name] = (float(l_rank) / n, q, min(float(u_rank) / n, 1.0))
    # lower bound = qt - qc - h_lo; upper bound = qt - qc + h_hi (h: hypot of half-widths).
    wt = _edge_width(bounds, treatment_cumulative, levels["t"])
    wc = _edge_width(bounds, control_cumulative, levels["c"])
    lo_var = (
        _group_var(
            bounds, treatment_cumulative, levels["t"][:2], (1 - (qt - lt) / h_lo, (qt - lt) / h_lo)
        )
        + _group_var(
            bounds,
            control_cumulative,
            (q, levels["c"][2]),
            (-1 + (uc - qc) / h_lo, -(uc - qc) / h_lo),
        )
        + (((qt - lt) / h_lo * wt[0]) ** 2 + ((uc - qc) / h_lo * wc[1]) ** 2) / 4.0
    )
    hi_var = (
        _group_var(
            bounds,
            treatment_cumulative,
            (q, levels["t"][2]),
            (1 - (ut - qt) / h_hi, (ut - qt) / h_hi),
        )
        + _group_var(
            bounds, control_cumulative, levels["c"][:2], ((qc - lc) / h_hi, -1 - (qc - lc) / h_hi)
        )
        + (((ut - qt) / h_hi * wt[1]) ** 2 + ((qc - lc) / h_hi * wc[0]) ** 2) / 4.0
    )
    return (math.sqrt(lo_var), math.sqrt(hi_var))


def _edge_width(
    bounds: Any, cumulative: Any, levels: tuple[float, float, float]
) -> tuple[float, float]:
    """Widths of the buckets holding the lower and upper rank: an edge bound sits up to one
    bucket away from its order statistic, so it varies by up to that much more (sd <= w / 2)."""
    b, cum = as_histogram(bounds, cumulative)
    out = []
    for p in (levels[0], levels[2]):
        edges = _bucket_edges(b, cum, min(max(p, 1e-12), 1.0 - 1e-12))
        out.append(edges[1] - edges[0] if edges else math.inf)
    return (out[0], out[1])


def _group_var(
    bounds: Any, cumulative: Any, levels: tuple[float, ...], coefs: tuple[float, ...]
) -> float:
    b, cum = as_histogram(bounds, cumulative)
    n = float(cum[-1])
    dens = [_density(b, cum, p) for p in levels]
    if n <= 0 or any(f <= 0 for f in dens):
        return math.inf
    var = 0.0
    for i, (pi, ai, fi) in enumerate(zip(levels, coefs, dens, strict=True)):
        for pj, aj, fj in zip(levels[i:], coefs[i:], dens[i:], strict=True):
            p1, p2 = min(pi, pj), max(pi, pj)
            term = ai * aj * p1 * (1.0 - p2) / (n * fi * fj)
            var += term if pj is pi else 2.0 * term
    return max(var, 0.0)


def _density(b: FloatArray, cum: FloatArray, p: float) -> float:
    """Probability density at the p-quantile, read off the bucket that holds it."""
    n = cum[-1]
    k = min(int(np.sum(cum < p * n)), b.size - 1)
    if k == b.size - 1:
        return 0.0
    width = b[k] - (b[k - 1] if k > 0 else min(0.0, b[0]))
    mass = (cum[k] - (cum[k - 1] if k > 0 else 0.0)) / n
    return float(mass / width) if width > 0 else 0.0
