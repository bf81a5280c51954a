"""The design effect of an A/B comparison, measured on the span it judges.

Spaces, not requests, are randomized, so requests are over-dispersed and the intervals that treat
them as independent are too narrow (stats/design_effect.py). This module fetches the per-interval
increments of the same counters over the same span (one range query per counter, summed by the
cohort label) and measures each group's design effect with batch means. The comparison then uses
an *effective* sample: every count divided by the larger group's ``deff`` (never below 1).

Intervals are ``max(2 min, span / 1440)`` long: two minutes hold at least two scrapes at the
usual 15 s to 1 min scrape interval, which ``increase()`` needs, and 1440 intervals bound the
query (Prometheus' limit is 11,000 points a series). Below ``MIN_APPLIED`` intervals (a span
under an hour) the estimate's own error (relative sd ``sqrt(2 / (k - 1))``, 26 % at 30) would
make the interval's width random: it is reported, and not applied. Production phases span days.
Likewise a ratio within ``NOISE_Z`` standard deviations of 1 is what independent requests give
by chance: reported, not applied. A real inflation of 1.5 is applied from about 70 intervals
(2.3 h), one of 2 from 20 intervals on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_rollout.stats.design_effect import (
    DesignEffect,
    mean_design_effect,
    rate_design_effect,
)

if TYPE_CHECKING:
    from pytest_rollout.evidence import Evidence
    from pytest_rollout.metrics.prometheus import PromQuery

BATCH_MIN_S = 120.0
MAX_INTERVALS = 1440
MIN_APPLIED = 30
# A measured ratio is applied only above what independent requests give by chance (its sd is
# sqrt(2 / (k - 1))): a noise-sized "effect" would widen healthy intervals at random.
NOISE_Z = 2.0
# A measured ratio is applied only above what independent requests give by chance (its sd is
# sqrt(2 / (k - 1))): a noise-sized "effect" would widen healthy intervals at random.
NOISE_Z = 2.0


@dataclass(frozen=True)
class Clustering:
    """The design effect applied to one comparison, and what was measured."""

    deff: float = 1.0  # applied: counts are divided by it
    by_group: Mapping[str, DesignEffect] = field(default_factory=dict)
    interval_s: float = 0.0
    intervals: int = 0
    note: str = ""

    def effective(self, count: float) -> float:
        """A count as an effective sample (whole, rounded down; a count below 1 stays)."""
        return count if self.deff <= 1.0 else float(math.floor(count / self.deff))

    def to_dict(self) -> dict[str, Any]:
        return {
            "deff": self.deff,
            "by_group": {
                g: {"deff": d.deff, "raw": _finite(d.raw), "k": d.k}
                for g, d in self.by_group.items()
            },
            "interval_s": self.interval_s,
            "intervals": self.intervals,
            "note": self.note,
        }

    def text(self) -> str:
        if self.deff > 1.0:
            return f"design effect {self.deff:.2f} applied (counts / {self.deff:.2f})"
        return self.note


def batch_interval(span_s: float) -> float:
    return float(max(BATCH_MIN_S, math.ceil(span_s / MAX_INTERVALS)))


class IntervalCounts:
    """Per-interval increments of counters over an evidence span, per cohort."""

    def __init__(
        self, prom: PromQuery, evidence: Evidence, group_label: str, groups: Sequence[str]
    ) -> None:
        self.prom = prom
        self.evidence = evidence
        self.group_label = group_label
        self.groups = tuple(groups)
        self.interval_s = batch_interval(evidence.elapsed_s)
        self.intervals = int(evidence.elapsed_s // self.interval_s)

    def _fetch(self, selector: str) -> dict[str, dict[float, float]]:
        end = self.evidence.end
        start = end - self.intervals * self.interval_s
        step = self.interval_s
        query = f"sum by ({self.group_label}) (increase({selector}[{int(step)}s]))"
        series = self.prom.range(
            query, start=start + step, end=end, step_s=step, allow_empty=True, allow_nan=True
        )
        out: dict[str, dict[float, float]] = {g: {} for g in self.groups}
        for s in series:
            g = s.labels.get(self.group_label)
            if g in out:
                out[g] = {t: v for t, v in s.points if math.isfinite(v)}
        return out

    def paired(self, numerator: str, denominator: str) -> dict[str, tuple[Any, Any]]:
        """(numerator, denominator) per-interval arrays per group, on common timestamps."""
        num, den = self._fetch(numerator), self._fetch(denominator)
        out = {}
        for g in self.groups:
            ts = sorted(set(num[g]) & set(den[g]))
            y = np.array([max(num[g][t], 0.0) for t in ts])
            x = np.array([max(den[g][t], 0.0) for t in ts])
            out[g] = (np.minimum(y, x), x)
        return out


def measure(
    counts: IntervalCounts,
    numerator: str,
    denominator: str,
    *,
    statistic: str,
    variance: Mapping[str, float] | None = None,
) -> Clustering:
    """Design effect of a ratio per group (rate; or a mean with ``variance`` per group)."""
    if counts.intervals < 2:
        return Clustering(
            interval_s=counts.interval_s,
            intervals=counts.intervals,
            note=f"design effect not measured: the span holds {counts.intervals} "
            f"{counts.interval_s:g} s interval(s)",
        )
    pairs = counts.paired(numerator, denominator)
    by_group: dict[str, DesignEffect] = {}
    for g, (y, x) in pairs.items():
        if variance is None:
            by_group[g] = rate_design_effect(y, x, statistic=statistic)
        else:
            by_group[g] = mean_design_effect(y, x, variance[g], statistic=statistic)
    k = min((d.k for d in by_group.values()), default=0)
    deff = max((d.deff for d in by_group.values()), default=1.0)
    measured = Clustering(by_group=by_group, interval_s=counts.interval_s, intervals=k)
    if k < MIN_APPLIED:
        why = f"fewer than {MIN_APPLIED}: too noisy to widen intervals by"
        return replace(
            measured,
            note=f"design effect {deff:.2f} measured on {k} intervals, not applied ({why})",
        )
    noise = NOISE_Z * math.sqrt(2.0 / (k - 1))
    if deff <= 1.0 + noise:
        why = f"1 + {noise:.2f} at {k} intervals"
        return replace(
            measured,
            note=f"design effect {deff:.2f} within the noise of independent requests ({why}): not applied",
        )
    return replace(measured, deff=deff)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
