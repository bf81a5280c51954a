"""Design effect: how much clustering inflates a variance that assumed independent requests.

Spaces, not requests, are randomized, and one space's requests share its data, its load and its
users: they fail together and are slow together. The rate, quantile and mean intervals treat
every request as an independent draw, so their standard errors are too small by ``sqrt(deff)``.
``deff`` is the ratio of the estimator's real variance to the variance those intervals assume;
the gates divide every count by it before the statistics (an *effective* sample of
``n / deff``, rounded down), which widens each interval by ``sqrt(deff)`` and keeps its error rate.

Method: batch means over the intervals of the same window (e.g. 1-minute increments of the
counters). For a ratio estimator ``r = sum y_i / sum x_i`` over ``k`` intervals, the
linearization (cluster-robust) variance is ``k / (k - 1) * sum (y_i - r x_i)^2 / (sum x_i)^2``;
its ratio to the independent-sample variance is the design effect:

* rate: ``y_i`` = successes, ``x_i`` = requests, against ``p (1 - p) / N``;
* quantile: the rate of requests at or below the upper edge of the bucket that holds the pooled
  quantile (the indicator the order-statistic interval counts), from per-interval cumulative
  bucket counts;
* mean: ``y_i`` = sum of values, ``x_i`` = count, against ``variance / N`` (the per-observation
  variance, e.g. from the pooled histogram).

``deff`` is floored at 1: the data may never make an interval narrower than independence allows
(fail closed). The raw ratio is kept for the record.

Limits, stated because they decide whether the number can be trusted:

* Batch means see the clustering that varies *between intervals*: sessions and bursts of a space
  that fall inside an interval, load and incidents that come and go. A space whose effect is
  constant and spread evenly over every interval shifts all batch means alike and is invisible
  to it; measuring that needs per-space counts (not exported by design: the label would explode).
  Intervals of 1 minute against sessions of a few minutes see most of the effect; persistent
  per-space effects make the estimate understate the true inflation.
* A drifting rate (a diurnal error pattern) also counts as inflation: conservative, and right,
  since a day-long phase does sample a mixture of hours.
* The ratio is itself noisy, with a relative standard error of about ``sqrt(2 / (k - 1))``
  (0.18 at 60 intervals, 0.04 at a day of minutes). Below ``MIN_INTERVALS`` intervals the
  estimate is reported with a note and still used only upward (never below 1).
* With no successes (or no failures) a rate has no measurable spread: ``deff`` is 1, with a note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

MIN_INTERVALS = 10

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DesignEffect:
    """Variance inflation of one group's estimator, floored at 1 (``raw`` is the measured ratio)."""

    deff: float
    raw: float
    k: int  # intervals with data
    explanation: str

    def effective(self, count: float) -> float:
        """``count`` as an effective sample: divided by ``deff``, rounded down."""
        return float(math.floor(count / self.deff))


def rate_design_effect(successes: Any, n: Any, *, statistic: str = "rate") -> DesignEffect:
    """Design effect of ``sum successes / sum n`` from per-interval counts (1-d, same length)."""
    y, x = _pair(successes, n, "successes", "n")
    if np.any(y > x):
        raise ValueError("each interval needs successes <= n")
    total = float(x.sum())
    p = float(y.sum()) / total if total > 0 else math.nan
    if not 0.0 < p < 1.0:
        return _result(math.nan, int(np.count_nonzero(x)), statistic, "no spread to measure")
    return _ratio_effect(y, x, p * (1.0 - p), statistic)


def quantile_design_effect(cumulative: Any, q: float, *, statistic: str = "") -> DesignEffect:
    """Design effect of a q-quantile from per-interval cumulative bucket counts (k x buckets).

    Uses the indicator "at or below the upper edge of the bucket holding the pooled quantile".
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    cum = np.asarray(cumulative, dtype=np.float64)
    if cum.ndim != 2 or cum.shape[1] < 2:
        raise ValueError("cumulative must be intervals x buckets (at least two buckets)")
    if np.any(~np.isfinite(cum)) or np.any(cum < 0):
        raise ValueError("bucket counts must be finite and >= 0")
    cum = np.maximum.accumulate(cum, axis=1)
    pooled = cum.sum(axis=0)
    bucket = min(int(np.searchsorted(pooled, q * pooled[-1])), cum.shape[1] - 1)
    name = statistic or f"p{q * 100:g}"
    return rate_design_effect(cum[:, bucket], cum[:, -1], statistic=name)


def mean_design_effect(
    sums: Any, counts: Any, variance: float, *, statistic: str = "mean"
) -> DesignEffect:
    """Design effect of ``sum sums / sum counts`` against ``variance`` per observation."""
    y, x = _pair(sums, counts, "sums", "counts", signed=True)
    if not variance > 0 or not math.isfinite(variance):
        return _result(math.nan, int(np.count_nonzero(x)), statistic, "no spread to measure")
    return _ratio_effect(y, x, float(variance), statistic)


def _pair(
    y: Any, x: Any, y_name: str, x_name: str, *, signed: bool = False
) -> tuple[FloatArray, FloatArray]:
    ya = np.asarray(y, dtype=np.float64)
    xa = np.asarray(x, dtype=np.float64)
    if ya.ndim != 1 or ya.shape != xa.shape:
        raise ValueError(f"{y_name} and {x_name} must be 1-d per-interval arrays of one length")
    if np.any(~np.isfinite(ya)) or np.any(~np.isfinite(xa)) or np.any(xa < 0):
        raise ValueError(f"{x_name} must be finite and >= 0, {y_name} finite")
    if not signed and np.any(ya < 0):
        raise ValueError(f"{y_name} must be >= 0")
    keep = xa > 0
    return ya[keep], xa[keep]


def _ratio_effect(
    y: FloatArray, x: FloatArray, unit_variance: float, statistic: str
) -> DesignEffect:
    k = int(y.size)
    if k < 2:
        return _result(math.nan, k, statistic, "fewer than two intervals with data")
    total = float(x.sum())
    r = float(y.sum()) / total
    batch = k / (k - 1.0) * float(np.sum((y - r * x) ** 2)) / total**2
    return _result(batch / (unit_variance / total), k, statistic, "")


def _result(raw: float, k: int, statistic: str, problem: str) -> DesignEffect:
    if problem:
        return DesignEffect(1.0, raw, k, f"{statistic} design effect 1 ({problem}, {k} intervals)")
    deff = max(1.0, raw)
    text = (
        f"{statistic} design effect {deff:.2f} (measured {raw:.2f} from batch means over {k} "
        f"intervals): requests count as {1.0 / deff:.2f} of an independent observation"
    )
    if k < MIN_INTERVALS:
        text += f"; only {k} intervals (< {MIN_INTERVALS}): rough, used only to widen"
    return DesignEffect(deff, raw, k, text)
