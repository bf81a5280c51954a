"""Mann-Whitney U on binned data, with the tie correction binning makes necessary.

This is the test Kayenta (Spinnaker's canary judge) runs. Every observation in a bucket ties with
the others in it, so the variance of U must be corrected for ties or p-values come out too small.
It answers "does one distribution tend to be larger", not "did the p99 move": a tail-only
regression barely moves it. We report it for reference; gates decide on quantile deltas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MannWhitney:
    u: float  # U of treatment: pairs where treatment > control, ties count 1/2
    z: float
    p_value: float  # two-sided
    prob_treatment_higher: float  # U / (n_t * n_c): 0.5 = no shift
    n: dict[str, int]
    explanation: str


def mann_whitney_binned(control_counts: Any, treatment_counts: Any) -> MannWhitney:
    """Two-sided Mann-Whitney U from per-bucket (not cumulative) counts over the same buckets."""
    from scipy.stats import norm

    c = np.asarray(control_counts, dtype=np.float64)
    t = np.asarray(treatment_counts, dtype=np.float64)
    if c.shape != t.shape or c.ndim != 1:
        raise ValueError("control and treatment need per-bucket counts over the same buckets")
    if np.any(c < 0) or np.any(t < 0):
        raise ValueError("counts must be >= 0")
    n_c, n_t = float(c.sum()), float(t.sum())
    n = {"control": int(round(n_c)), "treatment": int(round(n_t))}
    if n_c == 0 or n_t == 0:
        return MannWhitney(
            math.nan,
            math.nan,
            math.nan,
            math.nan,
            n,
            "Mann-Whitney U needs observations in both groups",
        )
    below_c = np.concatenate(([0.0], np.cumsum(c)[:-1]))
    u = float(np.dot(t, below_c + c / 2.0))
    total = n_c + n_t
    ties = c + t
    tie_term = float(np.sum(ties**3 - ties)) / (total * (total - 1)) if total > 1 else 0.0
    var = n_c * n_t / 12.0 * ((total + 1.0) - tie_term)
    mean = n_c * n_t / 2.0
    if var <= 0:
        z, p = 0.0, 1.0
    else:
        # Continuity correction toward the mean, as scipy's mannwhitneyu does by default.
        z = (u - mean - math.copysign(0.5, u - mean) * (u != mean)) / math.sqrt(var)
        p = float(min(1.0, 2.0 * norm.sf(abs(z))))
    prob = u / (n_c * n_t)
    side = "higher" if prob > 0.5 else "lower"
    return MannWhitney(
        u=u,
        z=z,
        p_value=p,
        prob_treatment_higher=prob,
        n=n,
        explanation=(
            f"a treatment sample is {side} than a control sample with probability "
            f"{max(prob, 1 - prob):.3f} (Mann-Whitney U, ties corrected, p = {p:.3g})"
        ),
    )
