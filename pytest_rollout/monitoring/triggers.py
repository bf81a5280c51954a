"""The abort-trigger-to-PromQL mapping: the ``TRIGGERS`` registry, keyed by threshold name.

A phase that defines one of these thresholds gets that alert, scoped to the phase by the flag
state (see phases.py).  Abort thresholds the registry declares ``GATE_ONLY`` need statistics or
drills PromQL cannot express; any other ``*_abort`` threshold is an error, so a new abort trigger
is never silently left without an alert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pytest_rollout.config import ConfigError
from pytest_rollout.monitoring.alerts import Summary
from pytest_rollout.monitoring.promql import Q, num, resource_series, window
from pytest_rollout.monitoring.settings import MonitoringSettings

Built = tuple[str, Summary]  # an abort trigger's PromQL and its summary
Builder = Callable[["Q", str, float, float], Built]  # (queries, phase, threshold, window s)

# Abort thresholds that stay gate-only, and why (rendered into docs/operations/monitoring.md).
GATE_ONLY: dict[str, str] = {
    "srm_p_value_min": "a chi-square test over cohort sizes; the gate computes it",
    "chaos_latency_ms": "a drill parameter, not a signal",
    "rollback_seconds_max": "measured by the chaos drill gate, flag-off to recovery",
    "soak_rss_growth_pct_per_hour_max": "a regression slope over the soak run",
    "soak_failure_rate_max": "measured by the soak run's own load generator",
    "baseline_regression_pct_max": "compared with the saved baseline file, not live series",
}


@dataclass(frozen=True)
class Trigger:
    """How one abort threshold becomes PromQL."""

    alert: str  # name after the prefix
    kind: Literal["comparison", "baseline", "total", "plain"]
    what: str  # for descriptions
    build: Builder
    baseline: str | None = None  # the baseline record it compares with ("rss", "cpu", "p99")


def _delta(q: Q, record: Callable[[str], str], w: str) -> str:
    s = q.s
    return (
        f'(\n  {record(w)}{{job="{s.job}",{s.group_label}="{s.treatment}"}}\n'
        f"  - on(job) group_left\n"
        f'  {record(w)}{{job="{s.job}",{s.group_label}="{s.control}"}}\n)'
    )


def _p99_delta(q: Q, phase: str, t: float, w_s: float) -> Built:
    w = window(w_s)
    expr = f"{_delta(q, lambda x: q.rec_quantile('p99', x), w)} > {num(t)}"
    return expr, (
        f"{q.s.treatment} p99 latency is ",
        "duration",
        f" above {q.s.control} over {w} (abort above {num(t * 1000)}ms)",
    )


def _error_delta(q: Q, phase: str, t: float, w_s: float) -> Built:
    w = window(w_s)
    expr = f"{_delta(q, q.rec_error_ratio, w)} > {num(t)}"
    return expr, (
        f"{q.s.treatment} error rate is ",
        "percent",
        f" above {q.s.control} over {w} (abort above {num(t * 100)} pp)",
    )


def _quality_drop(q: Q, phase: str, t: float, w_s: float) -> Built:
    w = window(w_s)
    expr = f"{_delta(q, q.rec_quality, w)} < -{num(t)}"
    return expr, (
        f"{q.s.treatment} mean {q.s.metrics.quality} differs from {q.s.control} by ",
        "fixed3",
        f" over {w} (abort below -{num(t)})",
    )


def _overhead(role: str) -> Builder:
    def build(q: Q, phase: str, t: float, w_s: float) -> Built:
        w, m = window(w_s), q.s.metrics
        metric = m.rss if role == "rss" else m.cpu
        name = "resident memory" if role == "rss" else "CPU usage"
        if q.s.twin_job is not None:
            # Same traffic, same data growth, same instant: only the flags differ. Per-process
            # means, so a shadow of N replicas compares with a baseline of M.
            current = f"avg by (job) ({resource_series(role, w, q.sel(metric))})"
            twin = f"avg({resource_series(role, w, q.twin(metric))})"
            expr = f"100 * (\n  {current}\n  / on() group_left\n  {twin}\n  - 1\n) > {num(t)}"
            return expr, (
                f"{name} per process is ",
                "fixed1",
                f"% above the baseline replica (job {q.s.twin_job}) over {w} "
                f"(abort above {num(t)}%)",
            )
        current = f"sum by (job) ({resource_series(role, w, q.sel(metric))})"
        base = f'{q.rec_baseline(role)}{{job="{q.s.job}"}}'
        expr = f"100 * (\n  {current}\n  / on(job)\n  {base}\n  - 1\n) > {num(t)}"
        return expr, (
            f"{name} is ",
            "fixed1",
            f"% above the {q.s.baseline_phase} baseline over {w} (abort above {num(t)}%)",
        )

    return build


def recorded_baseline(s: MonitoringSettings, threshold: str) -> str | None:
    """The recorded baseline ("rss", "cpu", "p99") a trigger compares with, if any.

    With a twin (``[monitoring] twin_job``) resource overhead compares with the baseline
    replica instead, so it needs no record.
    """
    role = TRIGGERS[threshold].baseline
    if role in ("rss", "cpu") and s.twin_job is not None:
        return None
    return role


def uses_twin(s: MonitoringSettings, threshold: str) -> bool:
    return s.twin_job is not None and TRIGGERS[threshold].baseline in ("rss", "cpu")


def _p99_vs_baseline(q: Q, phase: str, t: float, w_s: float) -> Built:
    w = window(w_s)
    base = f'{q.rec_baseline("p99")}{{job="{q.s.job}"}}'
    expr = f"100 * (\n  {q.quantile(0.99, w, 'job')}\n  / on(job)\n  {base}\n  - 1\n) > {num(t)}"
    return expr, (
        "p99 latency is ",
        "fixed1",
        f"% above the {q.s.baseline_phase} baseline over {w} (abort above {num(t)}%)",
    )


def _error_rate(q: Q, phase: str, t: float, w_s: float) -> Built:
    w = window(w_s)
    ratio = q.error_ratio(w, "job").replace("\n", "\n  ")
    return f"(\n  {ratio}\n) > {num(t)}", (
        "error rate is ",
        "percent",
        f" over {w} (abort above {num(t * 100)}%)",
    )


def _formation_errors(q: Q, phase: str, t: float, w_s: float) -> Built:
    w = window(w_s)
    expr = f"sum by (job) (increase({q.sel(q.s.metrics.formation_errors)}[{w}])) > {num(t)}"
    return expr, ("", "int", f" failed formation cycles over {w} (abort above {num(t)})")


def _items_lost(q: Q, phase: str, t: float, w_s: float) -> Built:
    w, m = window(w_s), q.s.metrics
    expr = (
        f"max by (job) (max_over_time({q.sel(m.stored_items)}[{w}]))\n"
        f"- on(job)\nmax by (job) ({q.sel(m.stored_items)})\n> {num(t)}"
    )
    return expr, ("", "int", f" {m.stored_items} lost within {w} (abort above {num(t)})")


TRIGGERS: dict[str, Trigger] = {
    "p99_delta_abort_s": Trigger(
        "RolloutP99Regression", "comparison", "treatment p99 latency minus control p99", _p99_delta
    ),
    "error_rate_delta_abort": Trigger(
        "RolloutErrorRateRegression",
        "comparison",
        "treatment error rate minus control error rate",
        _error_delta,
    ),
    "confidence_drop_abort": Trigger(
        "RolloutQualityDrop",
        "comparison",
        "treatment mean quality score minus control",
        _quality_drop,
    ),
    "rss_overhead_pct_abort": Trigger(
        "RolloutMemoryOverhead",
        "baseline",
        "resident memory overhead (vs the baseline replica, else the baseline phase)",
        _overhead("rss"),
        baseline="rss",
    ),
    "cpu_overhead_pct_abort": Trigger(
        "RolloutCpuOverhead",
        "baseline",
        "CPU usage overhead (vs the baseline replica, else the baseline phase)",
        _overhead("cpu"),
        baseline="cpu",
    ),
    "p99_regression_vs_baseline_pct_max": Trigger(
        "RolloutP99RegressionVsBaseline",
        "baseline",
        "p99 latency vs the baseline phase",
        _p99_vs_baseline,
        baseline="p99",
    ),
    "error_rate_max": Trigger(
        "RolloutErrorRate", "total", "error rate of all requests", _error_rate
    ),
    "formation_errors_max": Trigger(
        "RolloutFormationErrors", "plain", "failed shadow formation cycles", _formation_errors
    ),
    "episodes_lost_max": Trigger(
        "RolloutItemsLost",
        "plain",
        "drop of the stored-items gauge below its window maximum",
        _items_lost,
    ),
}


def phase_triggers(s: MonitoringSettings) -> list[tuple[str, str, float]]:
    """(phase, threshold, value) for every alertable abort threshold, in a stable order."""
    out = []
    for phase_key, phase in s.phases.items():
        for name, value in sorted(phase.thresholds.items()):
            if name in TRIGGERS:
                out.append((phase_key, name, value))
            elif name.endswith("_abort") and name not in GATE_ONLY:
                raise ConfigError(
                    f"{s.source}: phases.{phase_key}.thresholds.{name} is an abort trigger with "
                    "no PromQL mapping; add it to pytest_rollout.monitoring.triggers.TRIGGERS or "
                    "GATE_ONLY"
                )
    return out
