"""Rates (error rate, timeout rate): Wilson score intervals per group and the Miettinen-Nurminen
score interval for the treatment-control difference.

Wilson's interval stays inside [0, 1] and keeps its coverage for rare events (0.1 % error rates),
where the textbook "p +- z * se" interval collapses to zero width when no error was seen.

The delta uses Miettinen and Nurminen's (1985) score interval: every difference d whose score
statistic (observed difference minus d, over its standard error at the maximum-likelihood rates
constrained to differ by d, with the N / (N - 1) factor) stays within z; each side takes the
outer bound of the plain and the skewness-corrected statistic (see proportion_delta_bounds).
Newcombe's MOVER combination of two Wilson intervals, used before, erred 0.030-0.043 on the abort
side (nominal 0.025) with a 5 % treatment split at n_t 1k-5k; this interval keeps each side's
error at alpha there (tests/stats/test_margin_error_rates.py, benchmarks/margin_error_rates.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from pytest_rollout.stats.result import Delta, GroupEstimate
from pytest_rollout.stats.sequential import critical_value


def wilson_interval(successes: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval for successes/n with critical value z (one side at z's level)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = n + z * z
    centre = (successes + z * z / 2.0) / denom
    half = z / denom * math.sqrt(max(successes * (1.0 - p), 0.0) + z * z / 4.0)
    return (max(0.0, centre - half), min(1.0, centre + half))


def proportion_estimate(
    successes: float,
    n: float,
    *,
    alpha: float = 0.025,
    sequential: bool = False,
    tuning_n: float = 1000.0,
) -> GroupEstimate:
    """One group's rate with its Wilson interval (each side erring with alpha)."""
    if successes < 0 or n < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    z = critical_value(alpha, n, sequential=sequential, tuning_n=tuning_n) if n > 0 else math.inf
    p = successes / n if n > 0 else math.nan
    return GroupEstimate(estimate=p, ci=wilson_interval(successes, n, z), n=int(round(n)))


def proportion_delta(
    control_successes: float,
    control_n: float,
    treatment_successes: float,
    treatment_n: float,
    *,
    alpha: float = 0.025,
    sequential: bool = False,
    tuning_n: float = 1000.0,
    statistic: str = "error rate",
) -> Delta:
    """Treatment minus control rate with the Miettinen-Nurminen interval (each side erring with
    alpha); each group keeps its Wilson interval."""
    c = proportion_estimate(
        control_successes, control_n, alpha=alpha, sequential=sequential, tuning_n=tuning_n
    )
    t = proportion_estimate(
        treatment_successes, treatment_n, alpha=alpha, sequential=sequential, tuning_n=tuning_n
    )
    d, lo_a, hi_a = proportion_delta_bounds(
        control_successes,
        control_n,
        treatment_successes,
        treatment_n,
        alpha=alpha,
        sequential=sequential,
        tuning_n=tuning_n,
    )
    lo, hi = float(lo_a), float(hi_a)
    return Delta(
        statistic=statistic,
        unit="ratio",
        estimate=float(d),
        ci=(lo, hi),
        control=c,
        treatment=t,
        alpha=alpha,
        sequential=sequential,
        unit_sd=(
            _rate_sd(control_successes, control_n),
            _rate_sd(treatment_successes, treatment_n),
        ),
        tuning_n=tuning_n,
    )


def _rate_sd(successes: float, n: float) -> float:
    # Shrink toward 1/2 a little (Agresti-Coull) so a group with zero errors still plans for some.
    if n <= 0:
        return math.inf
    p = (successes + 1.0) / (n + 2.0)
    return math.sqrt(p * (1.0 - p))


FloatArray = npt.NDArray[np.float64]


def proportion_delta_bounds(
    control_successes: Any,
    control_n: Any,
    treatment_successes: Any,
    treatment_n: Any,
    *,
    alpha: float = 0.025,
    sequential: bool = False,
    tuning_n: float = 1000.0,
    skewness: str = "outer",
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(delta, lower, upper) of treatment minus control rate, vectorised over arrays of counts:
    the Miettinen-Nurminen score interval, each side erring with alpha.

    ``skewness``: "none" is plain MN; "corrected" moves each side's critical value by the
    score's skewness (Gart and Nam 1990; Laud 2017, "SCAS"): z + gamma / 6 * (z^2 - 1); "outer"
    (the default) takes each side's outer bound of the two. Rare errors in a small treatment
    group skew the score: plain MN erred up to 0.039 on the abort side at a 5 % split with
    n_t = 1000 (nominal 0.025), and the corrected form overshoots the other way at lattice points
    with ~3 expected errors (0.033 on the criterion side); the outer bound stays at alpha on both
    sides in every configuration of benchmarks/margin_error_rates.py.

    Sequential: one multiplier for both groups, the larger of the two groups' confidence-sequence
    multipliers (the score statistic has one z)."""
    xc, nc = np.asarray(control_successes, float), np.asarray(control_n, float)
    xt, nt = np.asarray(treatment_successes, float), np.asarray(treatment_n, float)
    xc, nc, xt, nt = np.broadcast_arrays(xc, nc, xt, nt)
    if np.any((xc < 0) | (xt < 0) | (xc > nc) | (xt > nt)):
        raise ValueError("need 0 <= successes <= n in both groups")
    empty = (nc <= 0) | (nt <= 0)
    nc, nt = np.where(empty, 1.0, nc), np.where(empty, 1.0, nt)
    if sequential:
        z = np.array(
            [
                max(
                    critical_value(alpha, float(a), sequential=True, tuning_n=tuning_n),
                    critical_value(alpha, float(b), sequential=True, tuning_n=tuning_n),
                )
                for a, b in zip(np.ravel(nc), np.ravel(nt), strict=True)
            ]
        ).reshape(nc.shape)
    else:
        z = np.full(nc.shape, critical_value(alpha, 1.0))
    p_c, p_t = xc / nc, xt / nt
    d = p_t - p_c
    if skewness not in ("none", "corrected", "outer"):
        raise ValueError(f'skewness must be "none", "corrected" or "outer", got {skewness!r}')
    skews = {"none": (0.0,), "corrected": (1.0,), "outer": (0.0, 1.0)}[skewness]
    if d.size == 1:
        # One comparison (the gate, its p-values and n_needed call this ~100 times): plain
        # floats are ~20x faster than numpy on one element.
        pc1, nc1, pt1, nt1, z1 = (float(np.ravel(v)[0]) for v in (p_c, nc, p_t, nt, z))
        pairs = [_mn_bounds_one(pc1, nc1, pt1, nt1, z1, k) for k in skews]
        lo1, hi1 = min(p[0] for p in pairs), max(p[1] for p in pairs)
        ok = ~empty
        return (
            np.where(ok, d, np.nan),
            np.where(ok, lo1, -1.0),
            np.where(ok, hi1, 1.0),
        )
    # Both sides at once (side +1: lower bound, -1: upper) so each step is one array operation.
    side = np.concatenate((np.ones(d.size), -np.ones(d.size)))
    two = [np.concatenate((np.ravel(v), np.ravel(v))) for v in (p_c, nc, p_t, nt, z, d)]
    pc2, nc2, pt2, nt2, z2, d2 = two
    lo_b, hi_a = np.full(d.shape, np.inf), np.full(d.shape, -np.inf)
    for skew in skews:
        root = _mn_roots(pc2, nc2, pt2, nt2, z2, d2, side, skew)
        lo_b = np.minimum(lo_b, root[: d.size].reshape(d.shape))
        hi_a = np.maximum(hi_a, root[d.size :].reshape(d.shape))
    lower = np.where(empty, -1.0, lo_b)
    upper = np.where(empty, 1.0, hi_a)
    return np.where(empty, np.nan, d), lower, upper


def _mn_roots(
    p_c: FloatArray,
    n_c: FloatArray,
    p_t: FloatArray,
    n_t: FloatArray,
    z: FloatArray,
    d: FloatArray,
    side: FloatArray,
    skew: float,
) -> FloatArray:
    """Roots of the (skew-corrected) score on each row's side (+1: lower bound, -1: upper): the
    score decreases in the hypothesised difference, so bisect between the estimate and -+1."""
    inner, outer = d.copy(), -side
    for _ in range(30):  # widths start <= 2: 2^-29 is far below any rate margin
        mid = (inner + outer) / 2.0
        score, gamma = _mn_score(p_c, n_c, p_t, n_t, mid)
        rejected = side * (score - skew * gamma / 6.0 * (z * z - 1.0)) > z
        inner, outer = np.where(rejected, inner, mid), np.where(rejected, mid, outer)
    return inner


def _mn_bounds_one(
    p_c: float, n_c: float, p_t: float, n_t: float, z: float, skew: float
) -> tuple[float, float]:
    """proportion_delta_bounds for one comparison, on floats (same bisection, same statistic)."""
    theta, total = n_c / n_t, n_c + n_t
    a = 1.0 + theta

    def rejected(diff: float, side: float) -> bool:
        b = -(1.0 + theta + p_t + theta * p_c + diff * (theta + 2.0))
        c = diff * diff + diff * (2.0 * p_t + theta + 1.0) + p_t + theta * p_c
        v = b**3 / (27.0 * a**3) - b * c / (6.0 * a**2) - p_t * diff * (1.0 + diff) / (2.0 * a)
        u = math.copysign(math.sqrt(max(b * b / (9.0 * a * a) - c / (3.0 * a), 0.0)), v)
        w = (math.pi + math.acos(min(max(v / u**3, -1.0), 1.0) if u != 0 else 0.0)) / 3.0
        rt = min(max(2.0 * u * math.cos(w) - b / (3.0 * a), 0.0), 1.0)
        rc = min(max(rt - diff, 0.0), 1.0)
        var = (rt * (1.0 - rt) / n_t + rc * (1.0 - rc) / n_c) * total / (total - 1.0)
        num = p_t - p_c - diff
        if num == 0:
            return False
        if var <= 0:
            return side * num > 0
        third = rt * (1 - rt) * (1 - 2 * rt) / n_t**2 - rc * (1 - rc) * (1 - 2 * rc) / n_c**2
        gamma = third / var**1.5
        return bool(side * (num / math.sqrt(var) - skew * gamma / 6.0 * (z * z - 1.0)) > z)

    out = []
    for side in (1.0, -1.0):
        inner, outer = p_t - p_c, -side
        for _ in range(30):
            mid = (inner + outer) / 2.0
            if rejected(mid, side):
                outer = mid
            else:
                inner = mid
        out.append(inner)
    return out[0], out[1]


def _mn_score(
    p_c: FloatArray, n_c: FloatArray, p_t: FloatArray, n_t: FloatArray, diff: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Miettinen-Nurminen score statistic for H0: p_t - p_c = diff, and its skewness under H0.
    The constrained maximum-likelihood rates solve a cubic (Farrington and Manning 1990)."""
    theta = n_c / n_t
    a = 1.0 + theta
    b = -(1.0 + theta + p_t + theta * p_c + diff * (theta + 2.0))
    c = diff * diff + diff * (2.0 * p_t + theta + 1.0) + p_t + theta * p_c
    dd = -p_t * diff * (1.0 + diff)
    v = b**3 / (27.0 * a**3) - b * c / (6.0 * a**2) + dd / (2.0 * a)
    u = np.where(v >= 0, 1.0, -1.0) * np.sqrt(
        np.maximum(b * b / (9.0 * a * a) - c / (3.0 * a), 0.0)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        cosarg = np.where(u != 0, v / u**3, 0.0)
        w = (math.pi + np.arccos(np.clip(cosarg, -1.0, 1.0))) / 3.0
        rt = np.clip(2.0 * u * np.cos(w) - b / (3.0 * a), 0.0, 1.0)
        rc = np.clip(rt - diff, 0.0, 1.0)
        total = n_c + n_t
        var = (rt * (1.0 - rt) / n_t + rc * (1.0 - rc) / n_c) * total / (total - 1.0)
        num = p_t - p_c - diff
        score = np.where(var > 0, num / np.sqrt(var), np.sign(num) * np.inf)
        third = rt * (1 - rt) * (1 - 2 * rt) / n_t**2 - rc * (1 - rc) * (1 - 2 * rc) / n_c**2
        gamma = np.where(var > 0, third / var**1.5, 0.0)
    score = np.where(num == 0, 0.0, score)
    return np.asarray(score, dtype=np.float64), np.asarray(gamma, dtype=np.float64)
