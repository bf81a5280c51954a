"""Sample ratio mismatch: are the groups as large as the assignment says they should be?

If a 5 % cohort shows up with 3 % of the units, assignment or logging is broken and every other
comparison is suspect (the missing units are not missing at random). Chi-square goodness of fit,
with the conventional strict threshold p < 0.001 because it runs on every evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

SRM_ALPHA = 0.001


@dataclass(frozen=True)
class SampleRatio:
    chi2: float
    p_value: float
    n: dict[str, int]
    observed: dict[str, float]  # fractions
    expected: dict[str, float]  # fractions
    mismatch: bool
    explanation: str


def sample_ratio_mismatch(
    observed: Mapping[str, float], expected: Mapping[str, float], *, alpha: float = SRM_ALPHA
) -> SampleRatio:
    """Chi-square of observed units per group against the expected split (fractions or weights)."""
    from scipy.stats import chi2 as chi2_dist

    groups = list(expected)
    if set(observed) - set(groups):
        raise ValueError(f"groups {sorted(set(observed) - set(groups))} have no expected share")
    weights = [float(expected[g]) for g in groups]
    if len(groups) < 2 or any(w <= 0 for w in weights):
        raise ValueError("expected needs at least two groups with positive shares")
    counts = [float(observed.get(g, 0.0)) for g in groups]
    if any(c < 0 or not math.isfinite(c) for c in counts):
        raise ValueError(f"observed counts must be finite and >= 0, got {counts}")
    total = sum(counts)
    share = {g: w / sum(weights) for g, w in zip(groups, weights, strict=True)}
    n = {g: int(round(c)) for g, c in zip(groups, counts, strict=True)}
    if total <= 0:
        return SampleRatio(math.nan, math.nan, n, {}, share, False, "no units observed")
    stat = sum(
        (c - total * share[g]) ** 2 / (total * share[g])
        for g, c in zip(groups, counts, strict=True)
    )
    p = float(chi2_dist.sf(stat, len(groups) - 1))
    frac = {g: c / total for g, c in zip(groups, counts, strict=True)}
    shown = ", ".join(
        f"{g} {frac[g] * 100:.2f} % (expected {share[g] * 100:.2f} %)" for g in groups
    )
    mismatch = p < alpha
    verdict = "sample ratio mismatch: the assignment is broken" if mismatch else "split as expected"
    return SampleRatio(
        chi2=stat,
        p_value=p,
        n=n,
        observed=frac,
        expected=share,
        mismatch=mismatch,
        explanation=f"{shown}; chi-square p = {p:.3g}: {verdict}",
    )
