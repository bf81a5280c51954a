"""Performance baselines: capture a window from Prometheus, compare a later window against it.

A baseline holds what phase 0 promises to keep within 5 %: the latency histogram of a window
(cumulative bucket counts, so any quantile can be re-derived with an interval), the request rate,
and RSS and CPU series of the service's processes.  :func:`compare` judges the current window
against it with the statistics engine (``pytest_rollout.stats``), as non-inferiority: a row passes
only when the interval *proves* the current window is no more than the margin worse.

RSS and CPU samples a few seconds apart are autocorrelated, so their means are compared over batch
means (up to 12 consecutive blocks per window), not raw samples, which would claim far more
precision than the data holds.  Both carry a variance floor from their quantisation (one page of
RSS, one clock tick of CPU per step), so two flat series are not "infinitely" precise either.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_rollout.gate import json_safe
from pytest_rollout.instants import rfc3339
from pytest_rollout.load.baseline_explain import WINDOW_SETTINGS, explain
from pytest_rollout.metrics.prometheus import PromQuery, RangeSeries
from pytest_rollout.outcomes import inconclusive

SCHEMA = 1
DEFAULT_MARGIN = 0.05
_MAX_BATCHES = 12
_MIN_BATCH = 3
_PAGE_BYTES = 4096.0
_CPU_TICK_S = 0.01  # process_cpu_seconds_total moves in clock ticks


@dataclass(frozen=True)
class BaselineSpec:
    """Which series describe the service, and over what window."""

    selector: str = '{job="engram"}'  # the service's processes (process_* metrics)
    latency_metric: str = "engram_recall_duration_seconds"  # a histogram's base name
    latency_selector: str | None = None  # default: ``selector``
    window_s: float = 3600.0
    step_s: float | None = None  # RSS/CPU resolution; default: window / 120, at least 1 s

    @property
    def latency_sel(self) -> str:
        return self.latency_selector or self.selector

    @property
    def step(self) -> float:
        return self.step_s if self.step_s else max(1.0, self.window_s / 120.0)


@dataclass
class Snapshot:
    """One window of the service as Prometheus saw it (a saved baseline is one of these)."""

    spec: BaselineSpec
    at: float  # end of the window, unix seconds
    bounds: list[float]  # histogram upper bounds, ending with +Inf
    cumulative: list[float]  # cumulative counts per bound over the window
    requests: float
    rps: float
    rss: list[list[float]]  # [[t, mean RSS bytes over the processes], ...]
    cpu: list[list[float]]  # [[t, mean CPU cores per process over the step before t], ...]
    queries: list[str] = field(default_factory=list)

    @property
    def start(self) -> float:
        return self.at - self.spec.window_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "kind": "baseline",
            "spec": asdict(self.spec),
            "at": self.at,
            "window": {"start": rfc3339(self.start), "end": rfc3339(self.at)},
            "latency": {
                "metric": self.spec.latency_metric,
                "le": ["+Inf" if math.isinf(b) else b for b in self.bounds],
                "cumulative": self.cumulative,
                "requests": self.requests,
            },
            "rps": self.rps,
            "rss_bytes": self.rss,
            "cpu_cores": self.cpu,
            "queries": self.queries,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        if data.get("schema") != SCHEMA or data.get("kind") != "baseline":
            raise ValueError("not a baseline file (schema 1, kind baseline)")
        lat = data["latency"]
        return cls(
            spec=BaselineSpec(**data["spec"]),
            at=float(data["at"]),
            bounds=[float(b) for b in lat["le"]],  # float("+Inf") is inf
            cumulative=[float(c) for c in lat["cumulative"]],
            requests=float(lat["requests"]),
            rps=float(data["rps"]),
            rss=data["rss_bytes"],
            cpu=data["cpu_cores"],
            queries=list(data.get("queries", [])),
        )

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read baseline {path}: {exc}") from exc


def capture(prom: PromQuery, spec: BaselineSpec) -> Snapshot:
    """Read one window ending at ``prom.at``; inconclusive (via ``prom``) when data is missing."""
    from pytest_rollout.durations import format_duration

    window = format_duration(spec.window_s)
    lat, sel = spec.latency_metric, spec.latency_sel
    bucket_q = f"sum by (le) (increase({lat}_bucket{sel}[{window}]))"
    buckets = prom.vector(bucket_q, allow_empty=True)  # said below, with the window
    if not buckets:
        inconclusive(f"no latency histogram data in the window: {bucket_q}")
    pairs = sorted((float(s.labels.get("le", "nan")), s.value) for s in buckets)
    if not pairs or not math.isinf(pairs[-1][0]) or any(math.isnan(b) for b, _ in pairs):
        inconclusive(f"histogram buckets incomplete (need le labels ending at +Inf): {bucket_q}")
    # increase() extrapolates each bucket on its own; whole, monotone counts keep it a histogram.
    cumulative = np.maximum.accumulate(np.round([max(v, 0.0) for _, v in pairs]))
    if cumulative[-1] <= 0:
        inconclusive(f"no requests in the {window} window ending {rfc3339(prom.at)}: {bucket_q}")
    rps_q = f"sum(rate({lat}_count{sel}[{window}]))"
    rps = prom.value(rps_q)

    step = spec.step
    rss_q = f"process_resident_memory_bytes{spec.selector}"
    cpu_q = f"process_cpu_seconds_total{spec.selector}"
    # _mean_across drops non-finite points; an empty RSS series is reported below.
    rss_series = prom.range(
        rss_q, step_s=step, window_s=spec.window_s, allow_empty=True, allow_nan=True
    )
    cpu_series = prom.range(
        cpu_q, step_s=step, window_s=spec.window_s, allow_empty=True, allow_nan=True
    )
    rss = _mean_across(rss_series, diff=False)
    cpu = _mean_across(cpu_series, diff=True)
    if not rss:
        inconclusive(f"no RSS samples for {spec.selector} in the window: {rss_q}")
    return Snapshot(
        spec=spec,
        at=prom.at,
        bounds=[b for b, _ in pairs],
        cumulative=[float(c) for c in cumulative],
        requests=float(cumulative[-1]),
        rps=rps,
        rss=rss,
        cpu=cpu,
        queries=[bucket_q, rps_q, rss_q, cpu_q],
    )


def _mean_across(series: list[RangeSeries], *, diff: bool) -> list[list[float]]:
    """Per timestamp, the mean over processes; with ``diff``, of each counter's rate per step."""
    per_t: dict[float, list[float]] = {}
    for s in series:
        points = [(t, v) for t, v in s.points if math.isfinite(v)]
        if diff:
            rates = []
            for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
                used = v1 - v0 if v1 >= v0 else v1  # a counter reset starts again from zero
                rates.append((t1, used / (t1 - t0)))
            points = rates
        for t, v in points:
            per_t.setdefault(t, []).append(v)
    return [[t, float(np.mean(vs))] for t, vs in sorted(per_t.items())]


# ---- comparison ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComparisonRow:
    metric: str  # "p99 latency"
    unit: str  # "s", "B", "cores", "req/s"
    baseline: float
    current: float
    delta_pct: float  # (current - baseline) / baseline, in %
    ci_pct: tuple[float, float]  # interval of that delta, in %
    limit_pct: float | None  # None: informational row, not a criterion
    outcome: str  # "pass" | "fail" | "inconclusive" | "info"
    explanation: str
    p_value: float | None = None
    n: dict[str, int] | None = None


@dataclass
class Comparison:
    baseline: Snapshot
    current: Snapshot
    rows: list[ComparisonRow]

    @property
    def outcome(self) -> str:
        outcomes = {r.outcome for r in self.rows}
        if "fail" in outcomes:
            return "fail"
        return "inconclusive" if "inconclusive" in outcomes else "pass"

    def failures(self) -> list[ComparisonRow]:
        return [r for r in self.rows if r.outcome in ("fail", "inconclusive")]

    def table(self) -> str:
        """A plain-text table for people: one row per metric."""
        head = ("metric", "baseline", "current", "delta", "95% CI of delta", "limit", "verdict")
        lines = [head]
        for r in self.rows:
            lo, hi = r.ci_pct
            ci = "" if r.limit_pct is None else f"[{lo:+.1f} %, {hi:+.1f} %]"
            lines.append((
                r.metric,
                format_value(r.baseline, r.unit),
                format_value(r.current, r.unit),
                f"{r.delta_pct:+.1f} %",
                ci,
                "" if r.limit_pct is None else f"+{r.limit_pct:g} %",
                {"pass": "pass", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}.get(r.outcome, ""),
            ))  # fmt: skip
        widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
        text = [
            "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in lines
        ]  # fmt: skip
        text.insert(1, "  ".join("-" * w for w in widths))
        b, c = self.baseline, self.current
        text.append("")
        text.append(
            f"baseline {rfc3339(b.start)} .. {rfc3339(b.at)} ({b.requests:.0f} requests); current "
            f"{rfc3339(c.start)} .. {rfc3339(c.at)} ({c.requests:.0f} requests)"
        )
        for r in self.failures():
            text.append(f"{r.outcome.upper()}: {r.metric}: {r.explanation}")
        text.append(f"verdict: {self.outcome.upper()}")
        return "\n".join(text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "baseline_window": {
                "start": rfc3339(self.baseline.start),
                "end": rfc3339(self.baseline.at),
            },
            "current_window": {
                "start": rfc3339(self.current.start),
                "end": rfc3339(self.current.at),
            },
            "rows": [json_safe(asdict(r)) for r in self.rows],
        }


def compare(
    baseline: Snapshot,
    current: Snapshot,
    *,
    margin: float = DEFAULT_MARGIN,
    quantiles: tuple[float, ...] = (0.5, 0.99),
) -> Comparison:
    """Current window against the baseline: non-inferiority within ``margin`` (0.05 = 5 %) on
    the latency quantiles, mean RSS and mean CPU; request rate shown for context."""
    from pytest_rollout.stats import compare_means, compare_quantiles, quantile_estimate

    rows: list[ComparisonRow] = []
    windows = (baseline.spec.window_s, current.spec.window_s)
    same_buckets = len(baseline.bounds) == len(current.bounds) and np.allclose(
        baseline.bounds, current.bounds
    )
    for q in quantiles:
        name = f"p{q * 100:g} latency"
        base_q = quantile_estimate(baseline.bounds, baseline.cumulative, q).estimate
        cur_q = quantile_estimate(current.bounds, current.cumulative, q).estimate
        if not same_buckets:
            rows.append(
                _undecided(
                    name,
                    "s",
                    base_q,
                    cur_q,
                    margin,
                    "histogram bucket layout differs from the baseline's",
                )
            )
            continue
        if not (math.isfinite(base_q) and base_q > 0):
            rows.append(
                _undecided(
                    name,
                    "s",
                    base_q,
                    cur_q,
                    margin,
                    f"baseline {name} is {base_q}: nothing to scale the margin by",
                )
            )
            continue
        result = compare_quantiles(
            baseline.bounds, baseline.cumulative, current.cumulative, q, margin * base_q, unit="s"
        )
        rows.append(_row(name, "s", base_q, result, margin, windows))

    for name, unit, base_series, cur_series, floor in (
        ("RSS", "B", baseline.rss, current.rss, _PAGE_BYTES),
        ("CPU", "cores", baseline.cpu, current.cpu, _CPU_TICK_S / baseline.spec.step),
    ):
        base_m = _batch_moments([v for _, v in base_series], floor)
        cur_m = _batch_moments([v for _, v in cur_series], floor)
        if base_m.n < 2 or cur_m.n < 2 or not base_m.mean > 0:
            rows.append(
                _undecided(
                    name,
                    unit,
                    base_m.mean,
                    cur_m.mean,
                    margin,
                    f"too few {name} samples ({base_m.n} baseline and {cur_m.n} current batch "
                    f"means, need 2 each): compare longer windows ({WINDOW_SETTINGS})",
                )
            )
            continue
        result = compare_means(
            base_m, cur_m, margin * base_m.mean, unit=unit, statistic=f"mean {name}"
        )
        rows.append(_row(name, unit, base_m.mean, result, margin, windows))

    base_rps, cur_rps = baseline.rps, current.rps
    rows.append(ComparisonRow(
        metric="request rate", unit="req/s", baseline=base_rps, current=cur_rps,
        delta_pct=_pct(cur_rps - base_rps, base_rps), ci_pct=(math.nan, math.nan),
        limit_pct=None, outcome="info",
        explanation="context only: latency compared at a very different load means little",
    ))  # fmt: skip
    return Comparison(baseline=baseline, current=current, rows=rows)


def _batch_moments(values: list[float], floor: float) -> Any:
    """Moments over batch means of consecutive samples (autocorrelation-robust)."""
    from pytest_rollout.stats import Moments

    x = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    k = min(_MAX_BATCHES, x.size // _MIN_BATCH)
    if k < 2:
        return Moments(float(x.mean()) if x.size else math.nan, math.nan, k)
    means = np.array([b.mean() for b in np.array_split(x, k)])
    # Quantisation noise of one sample, shrunk by the batch size: a floor, never zero.
    batch = x.size / k
    variance = max(float(means.var(ddof=1)), floor * floor / 12.0 / batch)
    return Moments(float(means.mean()), variance, k)


def _row(
    name: str, unit: str, base: float, result: Any, margin: float, windows: tuple[float, float]
) -> ComparisonRow:
    from pytest_rollout.stats import Verdict

    lo, hi = result.ci
    outcome = {Verdict.WITHIN: "pass", Verdict.BEYOND: "fail"}.get(result.verdict, "inconclusive")
    return ComparisonRow(
        metric=name,
        unit=unit,
        baseline=base,
        current=base + result.estimate,
        delta_pct=_pct(result.estimate, base),
        ci_pct=(_pct(lo, base), _pct(hi, base)),
        limit_pct=margin * 100.0,
        outcome=outcome,
        explanation=explain(result, unit, windows),
        p_value=result.p_value,
        n={"baseline": result.n["control"], "current": result.n["treatment"]},
    )


def _undecided(
    name: str, unit: str, base: float, cur: float, margin: float, why: str
) -> ComparisonRow:
    return ComparisonRow(
        metric=name, unit=unit, baseline=base, current=cur, delta_pct=_pct(cur - base, base),
        ci_pct=(-math.inf, math.inf), limit_pct=margin * 100.0, outcome="inconclusive",
        explanation=why,
    )  # fmt: skip


def _pct(delta: float, base: float) -> float:
    return delta / base * 100.0 if base and math.isfinite(base) else math.nan


def format_value(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if unit == "s":
        return f"{value * 1000:.2f} ms"
    if unit == "B":
        return f"{value / 1e6:.1f} MB"
    if unit == "cores":
        return f"{value:.3f} cores"
    return f"{value:.1f} {unit}"


def current_spec(
    base: BaselineSpec,
    window_s: float | None = None,
    selector: str | None = None,
    latency_selector: str | None = None,
) -> BaselineSpec:
    """The baseline's spec with the overrides for the current window (same step unless the
    window changes)."""
    window = window_s or base.window_s
    return BaselineSpec(
        selector=selector or base.selector,
        latency_metric=base.latency_metric,
        latency_selector=latency_selector or base.latency_selector,
        window_s=window,
        step_s=base.step_s if window == base.window_s else None,
    )
