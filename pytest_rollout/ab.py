"""The ``ab`` fixture: treatment-vs-control comparisons from Prometheus, as gate verdicts.

Counts come from ``increase(...)`` at the run's pinned instant over the gate's evidence (since
the phase start, or a sliding window: :mod:`pytest_rollout.evidence`), summed by the cohort
label (and ``le`` for histograms); the statistics are in :mod:`pytest_rollout.stats`. Every
comparison is recorded on the gate (headline via ``gate.observe``, the full numbers under
``gate.extra["comparisons"]``) before a gate acts on it with ``require()`` or
``abort_if_worse()``. The first comparison of a gate also fills ``gate.series`` with the compared
statistic per group over the window, for the report's plot (when ``prom`` can run range queries).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, cast

from pytest_rollout.clustering import Clustering, IntervalCounts, measure
from pytest_rollout.comparison import Comparison, finite_or_none
from pytest_rollout.durations import format_duration, parse_duration
from pytest_rollout.evidence import Evidence, Look
from pytest_rollout.gate import GateRecord
from pytest_rollout.outcomes import inconclusive
from pytest_rollout.stats import (
    Moments,
    NonInferiority,
    compare_means,
    compare_proportions,
    compare_quantiles,
    histogram_moments,
    mann_whitney_binned,
    sample_ratio_mismatch,
)
from pytest_rollout.stats.format import quantile_name

if TYPE_CHECKING:
    from pytest_rollout.metrics.prometheus import PromQuery


class _Sample(Protocol):
    @property
    def labels(self) -> dict[str, str]: ...

    @property
    def value(self) -> float: ...


class VectorSource(Protocol):
    """What AB needs from the ``prom`` fixture (PromQuery): an instant vector query."""

    def vector(
        self, query: str, *, allow_empty: bool = ..., allow_nan: bool = ...
    ) -> list[Any]: ...


@dataclass(frozen=True)
class ABSettings:
    """A/B settings of a phase (from rollout.toml)."""

    group_label: str = "group"
    control: str = "control"
    treatment: str = "treatment"
    window: str = "1h"  # PromQL duration of the evaluation window
    min_samples: int = 1000  # per group; fewer -> inconclusive
    alpha: float = 0.05  # two-sided; each side of an interval errs with alpha / 2
    sequential: bool = False  # always-valid intervals for gates re-run during a hold
    holm_family_size: int = 1  # criteria tested as one family: each gets alpha / size
    power: float = 0.8  # for the "n still needed" of an undecided comparison
    tuning_n: int | None = None  # where confidence sequences are tightest (default min_samples)
    design_effect: bool = True  # measure clustering over the span and widen intervals by it

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.holm_family_size < 1:
            raise ValueError(f"holm_family_size must be >= 1, got {self.holm_family_size}")
        if self.control == self.treatment:
            raise ValueError("control and treatment must be different label values")

    @property
    def alpha_per_side(self) -> float:
        # Bonferroni over the family is Holm's first step: valid without the other p-values,
        # which live in other gate tests.
        return self.alpha / 2.0 / self.holm_family_size


_SELECTOR = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(.*)\})?\s*$", re.S)


def split_selector(selector: str) -> tuple[str, str]:
    """``'x_total{a!="b"}'`` -> ``("x_total", 'a!="b"')``; only plain selectors are accepted
    because the group label and ``increase()`` are added around them."""
    m = _SELECTOR.match(selector)
    if not m:
        raise ValueError(f'expected a metric selector like name{{label="v"}}, got {selector!r}')
    return m.group(1), (m.group(2) or "").strip().rstrip(",")


class AB:
    """Treatment-vs-control comparisons over the phase's window (the ``ab`` fixture)."""

    def __init__(
        self,
        prom: VectorSource,
        gate: GateRecord,
        settings: ABSettings,
        evidence: Evidence | None = None,
    ) -> None:
        self.prom = prom
        self.gate = gate
        self.settings = settings
        self._le_text: dict[float, str] = {}  # bucket bound -> its le label as exported
        # The gate's kind decides how its looks are judged (evidence.py): never out of step.
        self.evidence = replace(
            evidence
            or Evidence(
                kind="window",
                at=float(getattr(prom, "at", 0.0)),
                window_s=parse_duration(settings.window),
            ),
            role=gate.kind,
        )

    # -- queries ---------------------------------------------------------------------------

    def _selector(self, metric: str, suffix: str = "", extra: str = "") -> str:
        name, matchers = split_selector(metric)
        s = self.settings
        if re.search(rf"(^|[,\s]){re.escape(s.group_label)}\s*(=|!=|=~|!~)", matchers):
            raise ValueError(
                f"{metric!r} already selects on {s.group_label!r}; the ab fixture "
                "adds the cohort label itself"
            )
        group = f'{s.group_label}=~"{re.escape(s.control)}|{re.escape(s.treatment)}"'
        inner = ", ".join(m for m in (matchers, extra, group) if m)
        return f"{name}{suffix}{{{inner}}}"

    def _increase(self, selector: str, by: str) -> str:
        return f"sum by ({by}) (increase({selector}{self.evidence.range_selector()}))"

    def _look(self, n_treatment: float) -> Look:
        s = self.settings
        return self.evidence.look(
            n_treatment, s.alpha_per_side, s.sequential, s.min_samples, s.tuning_n
        )

    def _per_group(self, query: str) -> dict[str, float]:
        s = self.settings
        out = {s.control: 0.0, s.treatment: 0.0}
        # No series means no traffic: zero counts, which the sample-size checks then report.
        # A NaN matters only for the two cohorts, checked below with the group named.
        for sample in self.prom.vector(query, allow_empty=True, allow_nan=True):
            g = sample.labels.get(s.group_label)
            if g in out:
                if not math.isfinite(sample.value):
                    inconclusive(f"{query} returned {sample.value} for {g}")
                out[g] += max(float(sample.value), 0.0)
        return out

    def _histogram(self, metric: str) -> tuple[list[float], dict[str, list[float]], str]:
        s = self.settings
        query = self._increase(self._selector(metric, "_bucket"), f"le, {s.group_label}")
        by_group: dict[str, dict[float, float]] = {s.control: {}, s.treatment: {}}
        # Emptiness and NaN are reported below per cohort, naming the group.
        for sample in self.prom.vector(query, allow_empty=True, allow_nan=True):
            g = sample.labels.get(s.group_label)
            if g not in by_group or "le" not in sample.labels:
                continue
            if not math.isfinite(sample.value):
                inconclusive(f"{query} returned {sample.value} for {g}")
            by_group[g][float(sample.labels["le"])] = float(sample.value)
            self._le_text[float(sample.labels["le"])] = sample.labels["le"]
        for g, buckets in by_group.items():
            if not buckets:
                inconclusive(
                    f"no {metric} histogram data for {s.group_label}={g!r} "
                    f"{self.evidence.span_text()}: {query}"
                )
        bounds = sorted(set(by_group[s.control]) | set(by_group[s.treatment]))
        if not bounds or not math.isinf(bounds[-1]):
            inconclusive(f'{metric} has no le="+Inf" bucket: {query}')
        if set(by_group[s.control]) != set(by_group[s.treatment]):
            inconclusive(f"{metric}: control and treatment use different buckets: {query}")
        # increase() extrapolates, so counts are fractional; the statistics need whole counts.
        cum: dict[str, list[float]] = {}
        for g, buckets in by_group.items():
            running = 0.0
            cum[g] = [running := max(running, float(round(buckets[b]))) for b in bounds]
        for g, counts in cum.items():
            if counts[-1] <= 0:
                inconclusive(
                    f"no {metric} observations for {s.group_label}={g!r} "
                    f"{self.evidence.span_text()}"
                )
        return bounds, cum, query

    # -- comparisons -----------------------------------------------------------------------

    def quantile_delta(
        self, metric: str, *, q: float, margin: float, worse: str = "higher"
    ) -> Comparison:
        """Treatment minus control q-quantile of a histogram (seconds), against ``margin``."""
        s = self.settings
        self.evidence.require_start(f"{metric} {quantile_name(q)} delta")
        bounds, cum, query = self._histogram(metric)
        pooled = [a + b for a, b in zip(cum[s.control], cum[s.treatment], strict=True)]
        edge = bounds[next(i for i, v in enumerate(pooled) if v >= q * pooled[-1])]
        clustering = self._clustering(
            self._selector(metric, "_bucket", f'le="{self._le_text[edge]}"'),
            self._selector(metric, "_count"),
            quantile_name(q),
        )
        cum = {g: [clustering.effective(v) for v in c] for g, c in cum.items()}
        look = self._look(cum[s.treatment][-1])
        result = compare_quantiles(
            bounds,
            cum[s.control],
            cum[s.treatment],
            q,
            margin,
            worse=worse,
            alpha=look.alpha,
            sequential=look.sequential,
            tuning_n=look.tuning_n,
            min_n=s.min_samples,
            power=s.power,
            alpha_at=look.alpha_at,
        )
        per_c = _per_bucket(cum[s.control])
        per_t = _per_bucket(cum[s.treatment])
        mw = mann_whitney_binned(per_c, per_t)
        ref = {
            "mann_whitney": {
                "u": finite_or_none(mw.u),
                "p_value": finite_or_none(mw.p_value),
                "prob_treatment_higher": finite_or_none(mw.prob_treatment_higher),
                "explanation": mw.explanation,
            }
        }
        return self._record(
            Comparison(
                "quantile_delta",
                f"{metric} {quantile_name(q)} delta",
                result,
                (query,),
                s.min_samples,
                ref,
                self.gate,
                self._progress(look, result, clustering),
            ),
            lambda r: (
                f"histogram_quantile({q}, sum by (le, {s.group_label}) "
                f"(rate({self._selector(metric, '_bucket')}[{r}])))"
            ),
        )

    def proportion_delta(
        self, numerator: str, denominator: str, *, margin: float, worse: str = "higher"
    ) -> Comparison:
        """Treatment minus control rate ``increase(numerator) / increase(denominator)``."""
        s = self.settings
        self.evidence.require_start(f"{numerator} / {denominator} rate delta")
        q_num = self._increase(self._selector(numerator), s.group_label)
        q_den = self._increase(self._selector(denominator), s.group_label)
        num = self._per_group(q_num)
        den = self._per_group(q_den)
        for g in (s.control, s.treatment):
            if round(den[g]) <= 0:
                inconclusive(
                    f"no {denominator} for {s.group_label}={g!r} "
                    f"{self.evidence.span_text()}: {q_den}"
                )
        clustering = self._clustering(
            self._selector(numerator), self._selector(denominator), "rate"
        )
        x = {g: clustering.effective(min(round(num[g]), round(den[g]))) for g in den}
        n = {g: clustering.effective(round(den[g])) for g in den}
        look = self._look(n[s.treatment])
        result = compare_proportions(
            x[s.control],
            n[s.control],
            x[s.treatment],
            n[s.treatment],
            margin,
            worse=worse,
            alpha=look.alpha,
            sequential=look.sequential,
            tuning_n=look.tuning_n,
            min_n=s.min_samples,
            power=s.power,
            statistic="rate",
            alpha_at=look.alpha_at,
        )
        return self._record(
            Comparison(
                "proportion_delta",
                f"{numerator} / {denominator} rate delta",
                result,
                (q_num, q_den),
                s.min_samples,
                {},
                self.gate,
                self._progress(look, result, clustering),
            ),
            lambda r: (
                f"{self._rate(self._selector(numerator), r)} / "
                f"{self._rate(self._selector(denominator), r)}"
            ),
        )

    def mean_delta(self, metric: str, *, margin: float, worse: str = "higher") -> Comparison:
        """Treatment minus control mean of a histogram (``_sum / _count``, variance from the
        buckets); ``worse="either"`` asks for two-sided equivalence within +-margin."""
        s = self.settings
        self.evidence.require_start(f"{metric} mean delta")
        bounds, cum, q_buckets = self._histogram(metric)
        q_sum = self._increase(self._selector(metric, "_sum"), s.group_label)
        sums = self._per_group(q_sum)
        groups: dict[str, Moments] = {
            g: histogram_moments(bounds, cum[g], sums[g]) for g in (s.control, s.treatment)
        }
        clustering = self._clustering(
            self._selector(metric, "_sum"),
            self._selector(metric, "_count"),
            "mean",
            {g: m.variance for g, m in groups.items()},
        )
        groups = {
            g: Moments(m.mean, m.variance, max(2, int(clustering.effective(m.n))))
            for g, m in groups.items()
        }
        look = self._look(groups[s.treatment].n)
        result = compare_means(
            groups[s.control],
            groups[s.treatment],
            margin,
            worse=worse,
            alpha=look.alpha,
            sequential=look.sequential,
            tuning_n=look.tuning_n,
            min_n=s.min_samples,
            power=s.power,
            alpha_at=look.alpha_at,
        )
        return self._record(
            Comparison(
                "mean_delta",
                f"{metric} mean delta",
                result,
                (q_buckets, q_sum),
                s.min_samples,
                {},
                self.gate,
                self._progress(look, result, clustering),
            ),
            lambda r: (
                f"{self._rate(self._selector(metric, '_sum'), r)} / "
                f"{self._rate(self._selector(metric, '_count'), r)}"
            ),
        )

    def srm(self, metric: str, *, expected: Mapping[str, float]) -> Comparison:
        """Sample ratio mismatch of units per group (a gauge like active spaces, or a counter's
        increase for ``*_total``) against the expected split; p < 0.001 means broken."""
        s = self.settings
        self.evidence.require_start(f"{metric} sample ratio")
        name, _ = split_selector(metric)
        sel = self._selector(metric)
        counter = name.endswith(("_total", "_count"))
        if counter:
            query = self._increase(sel, s.group_label)
        else:
            query = f"sum by ({s.group_label}) ({sel})"
        observed = self._per_group(query)
        missing = set(expected) - {s.control, s.treatment}
        if missing:
            raise ValueError(
                f"expected names unknown groups {sorted(missing)}; "
                f"use {s.control!r} and {s.treatment!r}"
            )
        if sum(observed.values()) <= 0:
            inconclusive(f"no {metric} units in either group: {query}")
        # Looks at a growing count during a phase: the always-valid form (stats/srm.py).
        phase = self.evidence.kind == "phase"
        result = sample_ratio_mismatch(
            observed, expected, sequential=phase, tuning_n=float(max(s.min_samples, 100))
        )
        # A counter's units per group over time are its rate; a gauge is plotted as it is.
        return self._record(
            Comparison("srm", f"{metric} sample ratio", result, (query,), 0, {}, self.gate),
            lambda r: self._rate(sel, r) if counter else query,
        )

    def _clustering(
        self, numerator: str, denominator: str, statistic: str, variance: Any = None
    ) -> Clustering:
        """The comparison's design effect over its span (none without range queries)."""
        s = self.settings
        if not s.design_effect or not hasattr(self.prom, "range"):
            return Clustering(note="design effect not measured")
        counts = IntervalCounts(
            cast("PromQuery", self.prom), self.evidence, s.group_label, (s.control, s.treatment)
        )
        return measure(counts, numerator, denominator, statistic=statistic, variance=variance)

    def _progress(
        self, look: Look, result: NonInferiority, clustering: Clustering
    ) -> dict[str, Any]:
        """n, information fraction and "n still needed → ETA", for the record and messages.
        n is the effective sample (counts / design effect), as the statistics saw it."""
        needed = (result.n_needed or {}).get("treatment")
        out = self.evidence.progress(result.delta.treatment.n, needed)
        out["design_effect"] = clustering.to_dict()
        out.update(
            design=look.design,
            information_fraction=finite_or_none(look.information_fraction)
            if look.information_fraction is not None
            else None,
            planned_n=int(look.planned_n) if look.planned_n else None,
            alpha_look=look.alpha,
        )
        self.gate.extra.setdefault("evidence", out)  # the gate's first comparison is its headline
        return out

    def _rate(self, selector: str, rate_range: str) -> str:
        return f"sum by ({self.settings.group_label}) (rate({selector}[{rate_range}]))"

    def _record(self, comparison: Comparison, plot_query: Callable[[str], str]) -> Comparison:
        self.gate.extra.setdefault("comparisons", []).append(comparison.to_dict())
        comparison._observe("criterion")
        self._plot(comparison.kind, plot_query)
        return comparison

    def _plot(self, kind: str, plot_query: Callable[[str], str]) -> None:
        """Fill ``gate.series`` with the compared statistic per group over the window.

        Evidence for the report, never a criterion: a failed range query leaves the series
        empty and the gate's outcome alone. The first comparison of a gate owns the plot (a
        gate's own ``gate.series`` is never overwritten). ``prom`` without ``range`` (a fake in
        unit tests) gets no plot.
        """
        if self.gate.series or not hasattr(self.prom, "range"):
            return
        try:
            window_s = (
                self.evidence.elapsed_s
                if self.evidence.kind == "phase"
                else parse_duration(self.settings.window)
            )
            if window_s < 1.0:
                return
            # About 60 points per window, in whole seconds (Prometheus steps are sent as
            # durations) and at least 1 s. Each point is a rate over R = max(4 steps, 1m): ranges
            # 4 steps wide overlap, so no sample falls between two points and one scrape cannot
            # make a spike; the 1m floor holds several scrapes at the usual 15 s interval, which
            # rate() needs. R is capped at the window so a short window's plot is not smoothed
            # over history the gate did not compare.
            step_s = max(1.0, float(round(window_s / 60.0)))
            rate_range = format_duration(min(max(4.0 * step_s, 60.0), math.floor(window_s)))
            query = plot_query(rate_range)
        except ValueError:
            return  # a window the plot cannot use (e.g. "1h30x"): no plot, the gate goes on

        from pytest_rollout.metrics.series import fetch_series

        s = self.settings
        fetched = fetch_series(cast("PromQuery", self.prom), query, s.group_label, window_s, step_s)
        # The report pairs "control" and "treatment" (the delta panel), whatever the label values.
        series = {
            role: fetched[value]
            for role, value in (("control", s.control), ("treatment", s.treatment))
            if fetched.get(value)
        }
        if not series:
            return
        self.gate.series = series
        # Delta margins bound treatment minus control; an SRM's threshold is a p-value, not a
        # number on the plotted axis.
        self.gate.extra["threshold_on"] = "none" if kind == "srm" else "delta"


def _per_bucket(cumulative: list[float]) -> list[float]:
    return [c - (cumulative[i - 1] if i else 0.0) for i, c in enumerate(cumulative)]
