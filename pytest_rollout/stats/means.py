"""Means (e.g. recall confidence) from histograms or raw values: Welch-type delta interval.

From a histogram the mean comes from ``_sum / _count`` (exact) and the variance from bucket
midpoints, floored at sum_k p_k w_k^2 / 4 (p_k: share of observations in bucket k, w_k: its
width). Midpoints overstate a smooth spread by about w^2 / 12 (Sheppard), but a distribution
narrower than a bucket puts everything on one midpoint and reads as variance ~0: at sd 0.009 in
0.05-wide buckets that proved a treatment exactly at the margin "within" 33-43 % of the time.
w^2 / 4 is the largest variance anything inside one bucket can have, so the floor never
understates a single-bucket group; the mass-weighted sum keeps one observation in a wide tail
bucket from inflating everything. Checked at the margin in tests/stats/test_margin_error_rates.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_rollout.stats.histogram import as_histogram
from pytest_rollout.stats.result import Delta, GroupEstimate
from pytest_rollout.stats.sequential import critical_value


@dataclass(frozen=True)
class Moments:
    """Mean, sample variance and n of one group."""

    mean: float
    variance: float
    n: int


def moments(values: Any) -> Moments:
    """Moments of raw observations."""
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n == 0:
        return Moments(math.nan, math.nan, 0)
    var = float(x.var(ddof=1)) if n > 1 else math.nan
    return Moments(float(x.mean()), var, n)


def histogram_moments(bounds: Any, cumulative: Any, total_sum: float | None = None) -> Moments:
    """Moments of a histogram: mean from ``total_sum`` when given (``_sum`` series), else from
    bucket midpoints; variance from midpoints. The +Inf bucket counts at the last finite bound,
    so a histogram with mass there understates the variance: it must have finite support.
    The variance is floored at sum_k p_k w_k^2 / 4 (see the module docstring)."""
    b, cum = as_histogram(bounds, cumulative)
    counts = np.diff(np.concatenate(([0.0], cum)))
    n = float(cum[-1])
    if n <= 0:
        return Moments(math.nan, math.nan, 0)
    lower = np.concatenate(([min(0.0, b[0])], b[:-1]))
    upper = b.copy()
    upper[-1] = b[-2]
    mids = (lower + upper) / 2.0
    mids[-1] = b[-2]
    mean = total_sum / n if total_sum is not None else float(np.dot(counts, mids) / n)
    var = float(np.dot(counts, (mids - mean) ** 2) / (n - 1)) if n > 1 else math.nan
    floor = float(np.dot(counts, (upper - lower) ** 2) / n / 4.0)
    return Moments(mean, max(var, floor), int(round(n)))


def mean_delta(
    control: Moments,
    treatment: Moments,
    *,
    alpha: float = 0.025,
    sequential: bool = False,
    tuning_n: float = 1000.0,
    unit: str = "",
    statistic: str = "mean",
) -> Delta:
    """Treatment minus control mean with a Welch interval (each side erring with alpha).

    Fixed horizon: Student t with Welch-Satterthwaite degrees of freedom. Sequential: each
    group's standard error times its confidence-sequence multiplier, combined in quadrature.
    """
    se_c = _se(control)
    se_t = _se(treatment)
    d = treatment.mean - control.mean
    if not (math.isfinite(se_c) and math.isfinite(se_t)) or math.isnan(d):
        half_c = half_t = math.inf
        lo, hi = -math.inf, math.inf
    elif sequential:
        half_c = critical_value(alpha, control.n, sequential=True, tuning_n=tuning_n) * se_c
        half_t = critical_value(alpha, treatment.n, sequential=True, tuning_n=tuning_n) * se_t
        half = math.hypot(half_c, half_t)
        lo, hi = d - half, d + half
    else:
        from scipy.stats import t as student_t

        df = _welch_df(se_c, se_t, control.n, treatment.n)
        crit = float(student_t.isf(alpha, df))
        half_c, half_t = crit * se_c, crit * se_t
        half = crit * math.hypot(se_c, se_t)
        lo, hi = d - half, d + half
    return Delta(
        statistic=statistic,
        unit=unit,
        estimate=d,
        ci=(lo, hi),
        control=GroupEstimate(
            control.mean, (control.mean - half_c, control.mean + half_c), control.n
        ),
        treatment=GroupEstimate(
            treatment.mean, (treatment.mean - half_t, treatment.mean + half_t), treatment.n
        ),
        alpha=alpha,
        sequential=sequential,
        unit_sd=(
            math.sqrt(control.variance) if control.n > 1 else math.inf,
            math.sqrt(treatment.variance) if treatment.n > 1 else math.inf,
        ),
        tuning_n=tuning_n,
    )


def _se(m: Moments) -> float:
    if m.n < 2 or not math.isfinite(m.variance):
        return math.inf
    return math.sqrt(m.variance / m.n)


def _welch_df(se_c: float, se_t: float, n_c: int, n_t: int) -> float:
    num = (se_c**2 + se_t**2) ** 2
    den = se_c**4 / (n_c - 1) + se_t**4 / (n_t - 1)
    return num / den if den > 0 else float(n_c + n_t - 2)
