"""RSS noise laws for the leak check's error rates (tests and benchmarks/leak_error_rates.py).

Each law adds zero-mean noise to a line of known slope, so the truth is known: at the margin the
slope equals the limit and every "pass" (upper bound under it) and every "fail" (lower bound over
it) is an error.  The laws cover the noise a soak's RSS shows: white measurement noise, allocator
churn that decays (AR(1), slow and very slow), steps that persist (a random walk, with and without
measurement noise on top), and rare large steps (arenas that grow in chunks).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from pytest_rollout.load.leak import estimate_leak, judge_leak

HOUR = 3600.0
START_BYTES = 400e6

Law = Callable[[np.random.Generator, int], npt.NDArray[np.float64]]


def _ar(phi: float, sd: float) -> Law:
    def draw(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
        shocks = rng.normal(0.0, sd, n)
        out = np.empty(n)
        out[0] = shocks[0] / np.sqrt(1.0 - phi * phi)  # started in its stationary law
        for i in range(1, n):
            out[i] = phi * out[i - 1] + shocks[i]
        return out

    return draw


def _walk(sd: float, white: float = 0.0) -> Law:
    def draw(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
        walk = np.cumsum(rng.normal(0.0, sd, n))
        return walk + (rng.normal(0.0, white, n) if white else 0.0)

    return draw


def _chunks(p: float, mean_bytes: float) -> Law:
    """Rare exponential steps, their mean growth taken out (the line holds the mean)."""

    def draw(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
        steps = rng.binomial(1, p, n) * rng.exponential(mean_bytes, n)
        return np.cumsum(steps - p * mean_bytes)

    return draw


LAWS: dict[str, Law] = {
    "white 2 MB": lambda rng, n: rng.normal(0.0, 2e6, n),
    "AR(1) 0.9": _ar(0.9, 1e6),
    "AR(1) 0.98": _ar(0.98, 3e5),
    "random walk": _walk(100e3),
    "random walk + white": _walk(50e3, white=1e6),
    "chunks (p 0.05)": _chunks(0.05, 300e3),
}


def verdict_shares(
    law: Law,
    *,
    reps: int,
    seed: int,
    slope: float = 1.0,
    limit: float = 1.0,
    hours: float = 2.0,
    step_s: float = 15.0,
) -> dict[str, float]:
    """Shares of runs with a true ``slope`` (%/h) that the gate passes (upper bound under
    ``limit``) and fails (lower bound over it), and the median interval width, %/h.  At
    ``slope == limit`` both shares are error rates."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, hours * HOUR + 1.0, step_s)
    line = START_BYTES * (1.0 + slope / 100.0 * t / HOUR)
    passed = failed = 0
    widths = []
    for _ in range(reps):
        estimate = estimate_leak(t, line + law(rng, t.size))
        outcome = judge_leak(estimate, limit).outcome
        passed += outcome == "pass"
        failed += outcome == "fail"
        low, high = estimate.ci_pct_per_hour
        widths.append(high - low)
    return {
        "pass": passed / reps,
        "fail": failed / reps,
        "median_width_pct_h": float(np.median(widths)),
    }
