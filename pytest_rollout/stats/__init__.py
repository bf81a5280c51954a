"""A/B statistics for canary gates: pure functions over numpy arrays, no pytest, no I/O.

Every function returns a small frozen dataclass with the estimate, its interval, p-value, n per
group and a one-line explanation. See docs/statistics.md for the methods and their defaults.
"""

from __future__ import annotations

from pytest_rollout.stats.compare import compare_means, compare_proportions, compare_quantiles
from pytest_rollout.stats.histogram import (
    quantile_bounds,
    quantile_delta,
    quantile_delta_bounds,
    quantile_estimate,
    quantile_unit_sd,
)
from pytest_rollout.stats.holm import Holm, holm
from pytest_rollout.stats.mannwhitney import MannWhitney, mann_whitney_binned
from pytest_rollout.stats.means import Moments, histogram_moments, mean_delta, moments
from pytest_rollout.stats.noninferiority import NonInferiority, decide, detectable_distance
from pytest_rollout.stats.power import SampleSize, power, required_sample_size
from pytest_rollout.stats.proportions import (
    proportion_delta,
    proportion_delta_bounds,
    proportion_estimate,
    wilson_interval,
)
from pytest_rollout.stats.result import Delta, GroupEstimate, Verdict
from pytest_rollout.stats.sequential import critical_value, mixture_multiplier, mixture_rho2
from pytest_rollout.stats.srm import SRM_ALPHA, SampleRatio, sample_ratio_mismatch

__all__ = [
    "SRM_ALPHA",
    "Delta",
    "GroupEstimate",
    "Holm",
    "MannWhitney",
    "Moments",
    "NonInferiority",
    "SampleRatio",
    "SampleSize",
    "Verdict",
    "compare_means",
    "compare_proportions",
    "compare_quantiles",
    "critical_value",
    "decide",
    "detectable_distance",
    "histogram_moments",
    "holm",
    "mann_whitney_binned",
    "mean_delta",
    "mixture_multiplier",
    "mixture_rho2",
    "moments",
    "power",
    "proportion_delta",
    "proportion_delta_bounds",
    "proportion_estimate",
    "quantile_bounds",
    "quantile_delta",
    "quantile_delta_bounds",
    "quantile_estimate",
    "quantile_unit_sd",
    "required_sample_size",
    "sample_ratio_mismatch",
    "wilson_interval",
]
