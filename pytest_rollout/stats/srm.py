"""Sample ratio mismatch: are the groups as large as the assignment says they should be?

If a 5 % cohort shows up with 3 % of the units, assignment or logging is broken and every other
comparison is suspect (the missing units are not missing at random). The unit must be the
randomization unit counted once (first-seen spaces per group, ``engram_cohort_assignments_total``),
not a gauge of currently active units: activity is what a treatment may change, and a gauge
double-counts across replicas.

Two forms, both at the conventional strict level ``SRM_ALPHA`` (the check runs on every look):

* fixed horizon: chi-square goodness of fit, valid for one look at a sample fixed in advance;
* ``sequential=True``: each group's share as a z-score, ``(n_g - N s_g) / sqrt(N s_g (1 - s_g))``,
  against the always-valid multiplier of stats/sequential.py (a normal-mixture confidence
  sequence tuned at ``tuning_n`` units). The chance that *any* of arbitrarily many looks at the
  growing count flags a correct split is at most ``SRM_ALPHA`` (asymptotically; checked by
  simulation over 1000 nested looks in tests/stats). With more than two groups each group's share
  gets ``SRM_ALPHA / groups`` (Bonferroni); with two the two shares are one test.
  Use it whenever the counts accumulate since the phase start and the check is repeated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pytest_rollout.stats.sequential import critical_value

SRM_ALPHA = 0.001


@dataclass(frozen=True)
class SampleRatio:
    chi2: float
    p_value: float  # chi-square p, or the always-valid p of the sequential form
    n: dict[str, int]
    observed: dict[str, float]  # fractions
    expected: dict[str, float]  # fractions
    mismatch: bool
    explanation: str
    sequential: bool = False
    tuning_n: float | None = None  # where the confidence sequence is tightest (sequential only)
    max_abs_z: float = math.nan  # largest |z| of a group's share (sequential only)


def srm_critical_z(
    total: float, groups: int, *, alpha: float = SRM_ALPHA, tuning_n: float = 1000.0
) -> float:
    """|z| of a group's share above which the sequential form flags a mismatch at ``total``."""
    if groups < 2:
        raise ValueError(f"a split needs at least two groups, got {groups}")
    per_side = alpha / (2.0 * (groups if groups > 2 else 1))
    return critical_value(per_side, total, sequential=True, tuning_n=tuning_n)


def sample_ratio_mismatch(
    observed: Mapping[str, float],
    expected: Mapping[str, float],
    *,
    alpha: float = SRM_ALPHA,
    sequential: bool = False,
    tuning_n: float = 1000.0,
) -> SampleRatio:
    """Observed units per group against the expected split (fractions or weights).

    ``sequential=True`` stays valid over repeated looks at a growing count (tune ``tuning_n`` at
    the units you expect by the phase's planned end); the default is the one-look chi-square.
    """
    from scipy.stats import chi2 as chi2_dist

    groups = list(expected)
    if set(observed) - set(groups):
        raise ValueError(f"groups {sorted(set(observed) - set(groups))} have no expected share")
    weights = [float(expected[g]) for g in groups]
    if len(groups) < 2 or any(w <= 0 for w in weights):
        raise ValueError("expected needs at least two groups with positive shares")
    if sequential and not tuning_n > 0:
        raise ValueError(f"tuning_n must be positive for the sequential form, got {tuning_n}")
    counts = [float(observed.get(g, 0.0)) for g in groups]
    if any(c < 0 or not math.isfinite(c) for c in counts):
        raise ValueError(f"observed counts must be finite and >= 0, got {counts}")
    total = sum(counts)
    share = {g: w / sum(weights) for g, w in zip(groups, weights, strict=True)}
    n = {g: int(round(c)) for g, c in zip(groups, counts, strict=True)}
    tuned = tuning_n if sequential else None
    if total <= 0:
        return SampleRatio(
            math.nan, math.nan, n, {}, share, False, "no units observed", sequential, tuned
        )
    stat = sum(
        (c - total * share[g]) ** 2 / (total * share[g])
        for g, c in zip(groups, counts, strict=True)
    )
    frac = {g: c / total for g, c in zip(groups, counts, strict=True)}
    shown = ", ".join(
        f"{g} {frac[g] * 100:.2f} % (expected {share[g] * 100:.2f} %)" for g in groups
    )
    if not sequential:
        p = float(chi2_dist.sf(stat, len(groups) - 1))
        mismatch = p < alpha
        test = f"chi-square p = {p:.3g}"
        max_z = math.nan
    else:
        max_z = max(
            abs(c - total * share[g]) / math.sqrt(total * share[g] * (1.0 - share[g]))
            for g, c in zip(groups, counts, strict=True)
        )
        limit = srm_critical_z(total, len(groups), alpha=alpha, tuning_n=tuning_n)
        mismatch = max_z > limit
        p = _always_valid_p(max_z, total, len(groups), tuning_n)
        test = (
            f"largest share |z| = {max_z:.2f} against the always-valid limit {limit:.2f} "
            f"(confidence sequence tuned at {tuning_n:g} units), p = {p:.3g}"
        )
    verdict = "sample ratio mismatch: the assignment is broken" if mismatch else "split as expected"
    return SampleRatio(
        chi2=stat,
        p_value=p,
        n=n,
        observed=frac,
        expected=share,
        mismatch=mismatch,
        explanation=f"{shown}; {test}: {verdict}",
        sequential=sequential,
        tuning_n=tuned,
        max_abs_z=max_z,
    )


def _always_valid_p(z: float, total: float, groups: int, tuning_n: float) -> float:
    """Smallest alpha at which the sequential form would flag |z| (bisection on log alpha)."""
    lo, hi = math.log(1e-12), math.log(0.4999)

    def flags(log_alpha: float) -> bool:
        return z > srm_critical_z(total, groups, alpha=math.exp(log_alpha), tuning_n=tuning_n)

    if not flags(hi):
        return 1.0
    if flags(lo):
        return 1e-12
    for _ in range(30):
        mid = (lo + hi) / 2.0
        lo, hi = (lo, mid) if flags(mid) else (mid, hi)
    return math.exp(hi)
