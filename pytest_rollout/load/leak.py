"""Memory-leak detection: the RSS trend of a soak run, in percent per hour, with its uncertainty.

RSS noise comes in two kinds that need different intervals.  Stationary noise (allocator churn,
GC cycles around a level) suits a regression line: the slope is fitted by feasible GLS for the
noise's AR(1) coefficient, with a Newey-West sandwich for the rest of its autocorrelation.  Noise
that persists (arenas grow and shrink in steps that stay) is a random walk: there a regression
line's interval is far too narrow, and a too-narrow interval turns "could not tell" into "passed"
or into a false leak.  An augmented Dickey-Fuller test on the detrended samples picks the model,
and random-walk noise is assumed unless the test rejects it at 1 % (fail closed): the slope is then
the drift of the differences, with a Newey-West variance.  Measured by simulation at the limit
(tests/load/test_leak_error_rates.py, benchmarks/leak_error_rates.py).  The interval is also never
narrower than what the source can resolve: one RSS quantum (a page) over the whole run, so a flat
line of identical samples does not claim infinite precision.

Gate rule: below the minimum duration (:func:`min_leak_duration_s`) inconclusive, whatever the
slope; then pass only when the upper bound is under the limit; fail when the lower bound is above
it; otherwise inconclusive, with the run length that would likely decide.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: Fewer post-warm-up samples than this cannot say anything about a trend.
MIN_SAMPLES = 6

#: Growth, in % of RSS, that a service may still show after its declared warm-up: caches,
#: connection pools, allocator arenas and lazily loaded code settle in one-off steps of this order
#: (the staging service grew 0.4-0.5 % over an 18 s soak after its 2 s warm-up). It is not a leak, and a
#: leak verdict must not be able to come from it; see :func:`min_leak_duration_s`.
WARMUP_RESIDUE_PCT = 1.0

#: The steepest least-squares slope a single step of height S can produce over a span T is
#: 1.5 * S / T (a step at mid-run; anywhere else, or with discrete samples, it is less).
_STEP_SLOPE_FACTOR = 1.5

_HOUR = 3600.0

#: The augmented Dickey-Fuller test on the detrended RSS picks the noise model. Only when it
#: rejects a unit root at 1 % (MacKinnon's asymptotic critical value with a trend) is the noise
#: treated as stationary; otherwise RSS may wander like a random walk (allocator steps that
#: persist), where an OLS slope's Newey-West interval is far too narrow (measured: 42 % false
#: passes and 40 % false fails at the limit, benchmarks/results/leak_error_rates.json).
ADF_CRITICAL = -3.96
KPSS_CRITICAL = 0.146  # KPSS with a trend, 5 %
ADF_MIN_ROWS = 20  # fewer rows in the ADF regression: random-walk noise is assumed (fail closed)


class InsufficientData(ValueError):
    """Too few samples, or samples that span no time, to estimate a trend."""


@dataclass(frozen=True)
class LeakEstimate:
    n: int  # samples used
    duration_s: float  # time spanned by those samples
    start_rss_bytes: float  # fitted RSS at the first sample (the reference for percentages)
    slope_bytes_per_s: float
    slope_pct_per_hour: float
    ci_pct_per_hour: tuple[float, float]
    confidence: float
    resolution_pct_per_hour: float  # the floor on the interval's half-width (one quantum per run)
    method: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci_pct_per_hour"] = list(self.ci_pct_per_hour)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LeakEstimate:
        fields = dict(data)
        fields["ci_pct_per_hour"] = tuple(fields["ci_pct_per_hour"])
        return cls(**fields)


@dataclass(frozen=True)
class LeakVerdict:
    outcome: str  # "pass" | "fail" | "inconclusive"
    reason: str  # one line a person can act on
    limit_pct_per_hour: float
    estimate: LeakEstimate


def estimate_leak(
    t: npt.ArrayLike,
    rss_bytes: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    resolution_bytes: float = 4096.0,
) -> LeakEstimate:
    """Slope of RSS over time, as % of the starting RSS per hour, with a ``confidence`` interval.

    ``t`` in seconds (any origin), ``rss_bytes`` the matching samples.  Raises
    :class:`InsufficientData` with the reason when no trend can be estimated.
    """
    from scipy import stats

    times = np.asarray(t, dtype=float)
    rss = np.asarray(rss_bytes, dtype=float)
    if times.shape != rss.shape or times.ndim != 1:
        raise ValueError("t and rss_bytes must be 1-d arrays of the same length")
    keep = np.isfinite(times) & np.isfinite(rss)
    times, rss = times[keep], rss[keep]
    n = int(times.size)
    if n < MIN_SAMPLES:
        raise InsufficientData(f"{n} RSS samples after warm-up, need at least {MIN_SAMPLES}")
    duration = float(times.max() - times.min())
    if duration <= 0:
        raise InsufficientData("all RSS samples have the same timestamp")

    x = times - times.mean()
    sxx = float(np.dot(x, x))
    ols_slope = float(np.dot(x, rss - rss.mean()) / sxx)
    intercept_at_start = float(rss.mean() + ols_slope * (times.min() - times.mean()))
    residuals = rss - (rss.mean() + ols_slope * x)
    lags = _lags(n)
    stat = _adf_statistic(residuals, lags)
    kpss = _kpss_statistic(residuals, lags)
    if stat is not None and stat < ADF_CRITICAL and kpss < KPSS_CRITICAL:
        slope, var, df = _stationary_fit(times, rss, x, sxx, ols_slope, residuals, lags)
        model = f"stationary noise (ADF {stat:.2f} < {ADF_CRITICAL})"
    else:
        slope, var, df = _unit_root_fit(times, rss, lags)
        why = f"ADF {stat:.2f} >= {ADF_CRITICAL}" if stat is not None else "too few samples"
        model = f"random-walk noise not ruled out ({why}): drift of the differences"
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df)) * math.sqrt(var)
    floor = resolution_bytes / duration
    half = max(half, floor)

    if intercept_at_start <= 0:
        raise InsufficientData("fitted starting RSS is not positive; the samples are not RSS")
    to_pct_h = _HOUR * 100.0 / intercept_at_start
    return LeakEstimate(
        n=n,
        duration_s=duration,
        start_rss_bytes=intercept_at_start,
        slope_bytes_per_s=slope,
        slope_pct_per_hour=slope * to_pct_h,
        ci_pct_per_hour=((slope - half) * to_pct_h, (slope + half) * to_pct_h),
        confidence=confidence,
        resolution_pct_per_hour=floor * to_pct_h,
        method=f"{model}; t interval",
    )


def _lags(n: int) -> int:
    """Autocorrelation lags: Newey-West's bandwidth and the ADF regression's lagged differences."""
    return int(max(1, min(n // 4, math.ceil(float(n) ** (1.0 / 3.0)))))


def _bartlett(u: npt.NDArray[np.float64], lags: int) -> float:
    """Long-run sum of squares of ``u`` (Newey-West, Bartlett weights)."""
    s = float(np.dot(u, u))
    for lag in range(1, min(lags, u.size - 1) + 1):
        s += 2.0 * (1.0 - lag / (lags + 1.0)) * float(np.dot(u[lag:], u[:-lag]))
    return max(s, 0.0)


def _kpss_statistic(e: npt.NDArray[np.float64], lags: int) -> float:
    """KPSS statistic of the detrended residuals: large when they wander (a random walk part)."""
    partial = np.cumsum(e)
    long_run = _bartlett(e, lags) / e.size
    if not long_run > 0.0:
        return 0.0
    return float(np.dot(partial, partial)) / (e.size**2 * long_run)


def _adf_statistic(e: npt.NDArray[np.float64], lags: int) -> float | None:
    """Augmented Dickey-Fuller t statistic of the detrended residuals (None: too few samples,
    or no spread). Strongly negative rejects a unit root: the noise is stationary."""
    scale = float(np.std(e))
    if not scale > 0.0:
        return None  # an exact line: nothing to tell the noise models apart
    e = e / scale  # the statistic does not depend on the scale; the matrix condition does
    d = np.diff(e)
    y = d[lags:]
    if y.size < ADF_MIN_ROWS:
        return None
    columns = [e[lags:-1], *(d[lags - j : d.size - j] for j in range(1, lags + 1))]
    design = np.column_stack([*columns, np.ones(y.size)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = y.size - design.shape[1]
    gram = design.T @ design
    if dof <= 0 or np.linalg.cond(gram) > 1e12:
        return None  # e.g. residuals that are rounding noise of a line
    s2 = float(np.dot(resid, resid)) / dof
    var = s2 * float(np.linalg.inv(gram)[0, 0])
    return float(coef[0] / math.sqrt(var)) if var > 0 else None


def _stationary_fit(
    t: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    x: npt.NDArray[np.float64],
    sxx: float,
    ols_slope: float,
    e: npt.NDArray[np.float64],
    lags: int,
) -> tuple[float, float, int]:
    """Slope, its variance and the t degrees of freedom under stationary noise: feasible GLS for
    the residuals' AR(1) coefficient (Prais-Winsten), with a Newey-West sandwich for what the
    AR(1) leaves; OLS (max of classic and Newey-West) when the coefficient is not positive."""
    n = t.size
    rho = float(np.dot(e[1:], e[:-1]) / np.dot(e[:-1], e[:-1]))
    if not 0.0 < rho < 1.0:
        classic = float(np.dot(e, e)) / (n - 2) / sxx
        hac = _bartlett(x * e, lags) / (sxx * sxx) * n / (n - 2)
        return ols_slope, max(classic, hac), n - 2
    w = math.sqrt(1.0 - rho * rho)
    z = np.empty((n, 2))
    z[0] = (w, w * t[0])
    z[1:, 0] = 1.0 - rho
    z[1:, 1] = t[1:] - rho * t[:-1]
    ys = np.concatenate(([w * y[0]], y[1:] - rho * y[:-1]))
    inverse = np.linalg.inv(z.T @ z)
    coef = inverse @ (z.T @ ys)
    v = ys - z @ coef
    g = z * v[:, None]
    meat = g.T @ g
    for lag in range(1, lags + 1):
        cross = g[lag:].T @ g[:-lag]
        meat += (1.0 - lag / (lags + 1.0)) * (cross + cross.T)
    hac = float((inverse @ meat @ inverse)[1, 1]) * n / (n - 2)
    classic = float(np.dot(v, v)) / (n - 2) * float(inverse[1, 1])
    return float(coef[1]), max(hac, classic), n - 2


def _unit_root_fit(
    t: npt.NDArray[np.float64], y: npt.NDArray[np.float64], lags: int
) -> tuple[float, float, int]:
    """Slope, variance and degrees of freedom when the noise may be a random walk (RSS that grows
    and shrinks in steps that persist): the drift of the differences, (last - first) / span, with
    a Newey-West variance of the differences. Stationary noise read this way gives a wider
    interval, never a narrower one than it should."""
    steps = np.diff(y)
    span = float(t[-1] - t[0])
    slope = float(steps.sum()) / span
    r = steps - slope * np.diff(t)
    m = r.size
    return slope, _bartlett(r, lags) * m / (m - 1) / (span * span), max(m - 1, 1)


def min_leak_duration_s(limit_pct_per_hour: float) -> float:
    """Shortest post-warm-up span (s) over which a slope can be judged against the limit.

    Over a span T, warm-up growth of WARMUP_RESIDUE_PCT left after the warm-up reads as a slope
    of up to 1.5 * WARMUP_RESIDUE_PCT / T %/h; only when T is long enough for that to stay at or
    under the limit can a slope above it be told from warm-up.  A shorter run cannot pass either:
    it sees neither slow leaks nor a full cycle of the allocator and GC (fail closed).  At the
    1 %/h phase 0 limit that is 1.5 h; an 18 s run could only judge limits above 300 %/h.
    """
    if not limit_pct_per_hour > 0:
        raise ValueError(
            f"leak limit must be above 0 %/h, got {limit_pct_per_hour!r}: set --leak-limit or "
            "soak_rss_growth_pct_per_hour_max to the largest acceptable RSS growth"
        )
    return _STEP_SLOPE_FACTOR * WARMUP_RESIDUE_PCT / limit_pct_per_hour * _HOUR


def judge_leak(estimate: LeakEstimate, limit_pct_per_hour: float) -> LeakVerdict:
    """Inconclusive on a run shorter than :func:`min_leak_duration_s`; then pass when the whole
    interval is under the limit, fail when it is all above, else tell how long to run."""
    lo, hi = estimate.ci_pct_per_hour
    level = f"{estimate.confidence:.0%}"
    head = (
        f"RSS slope {estimate.slope_pct_per_hour:+.3g} %/h ({level} CI [{lo:+.3g}, {hi:+.3g}] %/h, "
        f"{estimate.n} samples over {_fmt_duration(estimate.duration_s)})"
    )
    minimum = min_leak_duration_s(limit_pct_per_hour)
    if estimate.duration_s < minimum:
        return LeakVerdict(
            "inconclusive",
            f"{head}: too short to tell a leak from warm-up growth at the "
            f"{limit_pct_per_hour:g} %/h limit; soak for at least "
            f"{_fmt_duration(minimum)} after the warm-up (rollout soak --duration; for a soak the "
            "gates run, the phase's duration)",
            limit_pct_per_hour,
            estimate,
        )
    if hi < limit_pct_per_hour:
        return LeakVerdict(
            "pass",
            f"{head} is under the {limit_pct_per_hour:g} %/h limit",
            limit_pct_per_hour,
            estimate,
        )
    if lo > limit_pct_per_hour:
        return LeakVerdict(
            "fail",
            f"memory leak: {head} is above the {limit_pct_per_hour:g} %/h limit; look for growing "
            "caches or retained objects in the target",
            limit_pct_per_hour,
            estimate,
        )
    needed = _duration_to_decide(estimate, limit_pct_per_hour)
    hint = f"soak for about {_fmt_duration(needed)} to tell" if needed else "soak longer to tell"
    return LeakVerdict(
        "inconclusive",
        f"{head} straddles the {limit_pct_per_hour:g} %/h limit: run too short to tell; {hint}",
        limit_pct_per_hour,
        estimate,
    )


def _duration_to_decide(estimate: LeakEstimate, limit: float) -> float | None:
    """Rough run length at which the interval would clear the limit if the slope stayed put.

    The statistical half-width shrinks like T^-1.5 with evenly spaced samples, the resolution floor
    like T^-1; take the slower of the two.
    """
    lo, hi = estimate.ci_pct_per_hour
    half = (hi - lo) / 2.0
    gap = abs(limit - estimate.slope_pct_per_hour)
    if gap <= 0 or half <= 0:
        return None
    factor = max(float((half / gap) ** (2.0 / 3.0)), estimate.resolution_pct_per_hour / gap)
    return estimate.duration_s * max(factor, 1.0) * 1.2


def _fmt_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * _HOUR:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / _HOUR:.1f} h"
