"""Rates (error rate, timeout rate): Wilson score intervals and Newcombe's interval for a delta.

Wilson's interval stays inside [0, 1] and keeps its coverage for rare events (0.1 % error rates),
where the textbook "p +- z * se" interval collapses to zero width when no error was seen.
Newcombe's hybrid score interval (method 10, 1998) combines the two Wilson intervals (MOVER).
"""

from __future__ import annotations

import math

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
    """Treatment minus control rate with Newcombe's interval (each side erring with alpha)."""
    c = proportion_estimate(
        control_successes, control_n, alpha=alpha, sequential=sequential, tuning_n=tuning_n
    )
    t = proportion_estimate(
        treatment_successes, treatment_n, alpha=alpha, sequential=sequential, tuning_n=tuning_n
    )
    d = t.estimate - c.estimate
    if math.isnan(d):
        lo, hi = -1.0, 1.0
    else:
        lo = d - math.hypot(t.estimate - t.ci[0], c.ci[1] - c.estimate)
        hi = d + math.hypot(t.ci[1] - t.estimate, c.estimate - c.ci[0])
    return Delta(
        statistic=statistic,
        unit="ratio",
        estimate=d,
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
