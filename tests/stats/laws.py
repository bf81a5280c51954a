"""Latency laws with known quantiles for the margin error-rate tests and benchmark.

Every treatment is its control shifted by a constant, so every quantile's true delta is exactly
that shift: a treatment "at the margin" is the control plus the margin.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from pytest_rollout.openmetrics import LATENCY_BUCKETS

FloatArray = npt.NDArray[np.float64]
Cdf = Callable[[FloatArray], FloatArray]

DESIGN_BOUNDS = np.array([*LATENCY_BUCKETS, np.inf])
# Prometheus client libraries' default buckets: what most services export.
DEFAULT_BOUNDS = np.array([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, np.inf])
BUCKETS = {"design": DESIGN_BOUNDS, "default": DEFAULT_BOUNDS}


def _lognormal(x: FloatArray) -> FloatArray:
    from scipy.stats import lognorm

    return np.asarray(lognorm.cdf(x, s=0.5, scale=0.006))  # p50 6 ms, p99 19 ms


def _gamma(x: FloatArray) -> FloatArray:
    from scipy.stats import gamma

    return np.asarray(gamma.cdf(x, a=3.0, scale=0.002))  # p50 5.3 ms, p99 16.8 ms


def _bimodal(x: FloatArray) -> FloatArray:
    from scipy.stats import lognorm

    # 80 % cache hits around 4 ms, 20 % misses around 14 ms.
    return np.asarray(
        0.8 * lognorm.cdf(x, s=0.25, scale=0.004) + 0.2 * lognorm.cdf(x, s=0.25, scale=0.014)
    )


def _pareto(x: FloatArray) -> FloatArray:
    from scipy.stats import pareto

    return np.asarray(pareto.cdf(x, b=2.5, scale=0.003))  # p50 4 ms, p99 19 ms


LAWS: dict[str, Cdf] = {
    "lognormal": _lognormal,
    "gamma": _gamma,
    "bimodal": _bimodal,
    "pareto": _pareto,
}


def bucket_probs(cdf: Cdf, bounds: FloatArray, shift: float = 0.0) -> FloatArray:
    """Probability of each bucket for ``shift + X`` with X ~ ``cdf``."""
    c = np.asarray(cdf(np.asarray(bounds[:-1]) - shift), dtype=np.float64)
    return np.diff(np.concatenate(([0.0], c, [1.0])))


def draw(rng: np.random.Generator, n: int, probs: FloatArray, reps: int) -> FloatArray:
    """``reps`` cumulative histograms of ``n`` observations (rows)."""
    return np.cumsum(rng.multinomial(n, probs, size=reps), axis=1).astype(np.float64)


def mc_limit(alpha: float, reps: int) -> float:
    """alpha plus 3 Monte Carlo standard errors: a correct method exceeds it about 1 in 700."""
    return alpha + 3.0 * float(np.sqrt(alpha * (1.0 - alpha) / reps))
