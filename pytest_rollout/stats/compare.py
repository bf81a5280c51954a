"""One-call comparisons: a delta and its non-inferiority verdict against a margin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pytest_rollout.stats.histogram import quantile_delta, quantile_null_bounds
from pytest_rollout.stats.means import Moments, mean_delta
from pytest_rollout.stats.noninferiority import NonInferiority, decide
from pytest_rollout.stats.proportions import proportion_delta


def compare_quantiles(
    bounds: Any,
    control_cumulative: Any,
    treatment_cumulative: Any,
    q: float,
    margin: float,
    *,
    worse: str = "higher",
    alpha: float = 0.025,
    sequential: bool = False,
    tuning_n: float = 1000.0,
    min_n: int = 0,
    power: float = 0.8,
    alpha_at: Callable[[float], float] | None = None,
    unit: str = "s",
) -> NonInferiority:
    """Quantile delta from histograms judged against ``margin`` (same unit as the buckets)."""
    return decide(
        lambda a, f: quantile_delta(
            bounds,
            _scaled(control_cumulative, f),
            _scaled(treatment_cumulative, f),
            q,
            alpha=a,
            sequential=sequential,
            tuning_n=tuning_n,
            unit=unit,
        ),
        margin,
        worse=worse,
        alpha=alpha,
        min_n=min_n,
        power=power,
        alpha_at=alpha_at,
        null_bounds=lambda a, f: quantile_null_bounds(
            bounds,
            control_cumulative,
            treatment_cumulative,
            q,
            f,
            alpha=a,
            sequential=sequential,
            tuning_n=tuning_n,
        ),
    )


def compare_proportions(
    control_successes: float,
    control_n: float,
    treatment_successes: float,
    treatment_n: float,
    margin: float,
    *,
    worse: str = "higher",
    alpha: float = 0.025,
    sequential: bool = False,
    tuning_n: float = 1000.0,
    min_n: int = 0,
    power: float = 0.8,
    alpha_at: Callable[[float], float] | None = None,
    statistic: str = "error rate",
) -> NonInferiority:
    """Rate delta (Newcombe) judged against ``margin`` (absolute, 0.001 = 0.1 pp)."""
    return decide(
        lambda a, f: proportion_delta(
            control_successes * f,
            control_n * f,
            treatment_successes * f,
            treatment_n * f,
            alpha=a,
            sequential=sequential,
            tuning_n=tuning_n,
            statistic=statistic,
        ),
        margin,
        worse=worse,
        alpha=alpha,
        min_n=min_n,
        power=power,
        alpha_at=alpha_at,
    )


def compare_means(
    control: Moments,
    treatment: Moments,
    margin: float,
    *,
    worse: str = "higher",
    alpha: float = 0.025,
    sequential: bool = False,
    tuning_n: float = 1000.0,
    min_n: int = 0,
    power: float = 0.8,
    alpha_at: Callable[[float], float] | None = None,
    unit: str = "",
    statistic: str = "mean",
) -> NonInferiority:
    """Mean delta (Welch) judged against ``margin``; ``worse="either"`` is equivalence."""
    return decide(
        lambda a, f: mean_delta(
            _more(control, f),
            _more(treatment, f),
            alpha=a,
            sequential=sequential,
            tuning_n=tuning_n,
            unit=unit,
            statistic=statistic,
        ),
        margin,
        worse=worse,
        alpha=alpha,
        min_n=min_n,
        power=power,
        alpha_at=alpha_at,
    )


def _scaled(cumulative: Any, scale: float) -> Any:
    """The same histogram with ``scale`` times the counts (whole counts, for the binomial)."""
    if scale == 1.0:
        return cumulative
    return np.round(np.asarray(cumulative, dtype=np.float64) * scale)


def _more(m: Moments, scale: float) -> Moments:
    return m if scale == 1.0 else Moments(m.mean, m.variance, max(2, round(m.n * scale)))
