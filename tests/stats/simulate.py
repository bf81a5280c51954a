"""Known-truth data for the statistics tests: lognormal latencies binned into the contract's
buckets, drawn as multinomial bucket counts (the same law as binning raw draws, much faster)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pytest_rollout.openmetrics import LATENCY_BUCKETS

BOUNDS = np.array([*LATENCY_BUCKETS, np.inf])


def bucket_probs(median: float, sigma: float, shift: float = 0.0) -> npt.NDArray[np.float64]:
    """Probability of each bucket for ``shift + lognormal(median, sigma)`` latencies."""
    from scipy.stats import lognorm

    cdf = lognorm.cdf(BOUNDS - shift, s=sigma, scale=median)
    cdf[-1] = 1.0
    return np.diff(np.concatenate(([0.0], cdf)))


def true_quantile(q: float, median: float, sigma: float, shift: float = 0.0) -> float:
    from scipy.stats import lognorm

    return float(shift + lognorm.ppf(q, s=sigma, scale=median))


def draw_cumulative(
    rng: np.random.Generator, n: int, probs: npt.NDArray[np.float64], reps: int
) -> npt.NDArray[np.float64]:
    """``reps`` cumulative histograms of ``n`` observations each (shape reps x buckets)."""
    return np.cumsum(rng.multinomial(n, probs, size=reps), axis=1).astype(np.float64)


def mc_tolerance(p: float, reps: int, sigmas: float = 3.0) -> float:
    """Monte Carlo error allowance for a rate p estimated from ``reps`` replications."""
    return float(sigmas * np.sqrt(p * (1.0 - p) / reps))
