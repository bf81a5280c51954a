"""Prometheus recording and alerting rules rendered from rollout.toml's thresholds.

The abort-trigger-to-PromQL mapping is the ``TRIGGERS`` registry below, keyed by threshold name:
a phase that defines one of these thresholds gets that alert, scoped to the phase by the flag
state (see phases.py).  Abort thresholds the registry declares ``GATE_ONLY`` need statistics or
drills PromQL cannot express; any other ``*_abort`` threshold is an error, so a new abort trigger
is never silently left without an alert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_rollout.config import ConfigError
from pytest_rollout.monitoring.phases import active_rule_expr, conditions
from pytest_rollout.monitoring.promql import BASELINE_HOLD, PHASE_ACTIVE, Q, num, window
from pytest_rollout.monitoring.settings import (
    ROLLBACK_ANCHOR,
    SLO_ANCHOR,
    MonitoringSettings,
)

ValueFormat = Literal["duration", "percent", "fixed3", "fixed1", "int"]
Summary = tuple[str, ValueFormat | None, str]  # text before the value, its format, text after
Built = tuple[str, Summary]  # an abort trigger's PromQL and its summary
Builder = Callable[["Q", str, float, float], Built]  # (queries, phase, threshold, window s)
GO_FORMATS: dict[ValueFormat, str] = {
    "duration": "humanizeDuration",
    "percent": "humanizePercentage",
    "fixed3": 'printf "%.3f"',
    "fixed1": 'printf "%.1f"',
    "int": 'printf "%.0f"',
}
PANEL_WINDOW = "5m"  # the comparison panels' window; the alerts use each phase's own window
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# (severity, for, [(long window, short window, burn rate)]): the SRE workbook's recommendation.
BURN_RATE_ALERTS: tuple[tuple[str, str, tuple[tuple[str, str, float], ...]], ...] = (
    ("page", "2m", (("1h", "5m", 14.4), ("6h", "30m", 6.0))),
    ("ticket", "15m", (("1d", "2h", 3.0), ("3d", "6h", 1.0))),
)

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
class Alert:
    """One alerting rule, with what promtool tests need to predict it."""

    name: str
    expr: str
    for_s: float
    labels: dict[str, str]
    result_labels: tuple[str, ...]  # labels the expression itself yields (job, group, ...)
    summary: tuple[str, ValueFormat | None, str]  # text before the value, its format, after
    description: str
    runbook_url: str
    kind: str  # "abort", "guard" or "slo"
    phase: str | None = None
    threshold: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def summary_template(self) -> str:
        before, fmt, after = self.summary
        return before + (f"{{{{ $value | {GO_FORMATS[fmt]} }}}}" if fmt else "") + after

    def rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_s:
            rule["for"] = window(self.for_s)
        rule["labels"] = dict(self.labels)
        rule["annotations"] = {
            "summary": self.summary_template(),
            "description": self.description,
            "runbook_url": self.runbook_url,
            **self.annotations,
        }
        return rule


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
        current = (
            f"sum by (job) (avg_over_time({q.sel(m.rss)}[{w}]))"
            if role == "rss"
            else f"sum by (job) (rate({q.sel(m.cpu)}[{w}]))"
        )
        base = f'{q.rec_baseline(role)}{{job="{q.s.job}"}}'
        expr = f"100 * (\n  {current}\n  / on(job)\n  {base}\n  - 1\n) > {num(t)}"
        name = "resident memory" if role == "rss" else "CPU usage"
        return expr, (
            f"{name} is ",
            "fixed1",
            f"% above the {q.s.baseline_phase} baseline over {w} (abort above {num(t)}%)",
        )

    return build


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
        "resident memory vs the baseline phase",
        _overhead("rss"),
        baseline="rss",
    ),
    "cpu_overhead_pct_abort": Trigger(
        "RolloutCpuOverhead",
        "baseline",
        "CPU usage vs the baseline phase",
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


@dataclass(frozen=True)
class RuleSet:
    """A rendered rule file: its groups, and the alerts in it (for the promtool tests)."""

    filename: str
    groups: list[dict[str, Any]]
    alerts: list[Alert]

    def document(self) -> dict[str, Any]:
        return {"groups": self.groups}


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
                    "no PromQL mapping; add it to pytest_rollout.monitoring.rules.TRIGGERS or "
                    "GATE_ONLY"
                )
    return out


def _record(name: str, expr: str) -> dict[str, Any]:
    return {"record": name, "expr": expr}


def _annotations(s: MonitoringSettings, dashboard: str) -> dict[str, str]:
    return {"dashboard": f"/d/{s.uid_prefix}-{dashboard}"}


def rollout_rules(s: MonitoringSettings) -> RuleSet:
    q = Q(s)
    conds = conditions(s)
    triggers = phase_triggers(s)
    needed_phases = {p for p, _, _ in triggers}
    for phase in sorted(needed_phases):
        if not conds[phase]:
            raise ConfigError(
                f"{s.source}: phase {phase} has abort alerts but no [phases."
                f"{phase}.flags], so alerts cannot tell when it is live"
            )
    prefix = s.uid_prefix

    # One record per phase, told apart by a static label: the flag state picks at most one.
    phase_rules = [
        {**_record(PHASE_ACTIVE, active_rule_expr(c, q)), "labels": {"phase": key}}
        for key, c in conds.items()
        if c
    ]
    base = s.phases[s.baseline_phase]
    w0 = window(base.window_s)
    live = q.phase_active(s.baseline_phase)
    m = s.metrics
    baseline_exprs = {
        "rss": f"sum by (job) (avg_over_time({q.sel(m.rss)}[{w0}]))",
        "cpu": f"sum by (job) (rate({q.sel(m.cpu)}[{w0}]))",
        "p99": (
            f"{q.quantile(0.99, w0, 'job')}\n  and on(job)\n  "
            f"({q.volume(base.window_s, 'job')} >= {base.min_samples})"
        ),
    }
    for role, current in baseline_exprs.items():
        name = q.rec_baseline(role)
        phase_rules.append(
            _record(
                name,
                (
                    f"(\n  {current}\n  and on(job)\n  {live}\n)\n"
                    f'or\nlast_over_time({name}{{job="{s.job}"}}[{BASELINE_HOLD}])'
                ),
            )
        )

    comparison_windows = sorted(
        {PANEL_WINDOW}
        | {
            window(s.phases[p].window_s) for p, t, _ in triggers if TRIGGERS[t].kind == "comparison"
        },
        key=lambda w: (len(w), w),
    )
    by = q.by_group
    comparison_rules = []
    for w in comparison_windows:
        total = q.sel(m.requests)
        qual_sum, qual_count = q.sel(f"{m.quality}_sum"), q.sel(f"{m.quality}_count")
        comparison_rules += [
            _record(q.rec_rate(w), f"sum by ({by}) (rate({total}[{w}]))"),
            _record(q.rec_error_ratio(w), q.error_ratio(w, by)),
            _record(q.rec_quantile("p50", w), q.quantile(0.5, w, by)),
            _record(q.rec_quantile("p99", w), q.quantile(0.99, w, by)),
            _record(
                q.rec_quality(w),
                (
                    f"sum by ({by}) (rate({qual_sum}[{w}]))\n/\n"
                    f"sum by ({by}) (rate({qual_count}[{w}]))"
                ),
            ),
        ]

    alerts = [_abort_alert(s, q, p, t, v) for p, t, v in triggers]
    alerts += _guards(s, q, triggers, conds)
    groups = [
        {"name": f"{prefix}-phase", "rules": phase_rules},
        {"name": f"{prefix}-comparison", "rules": comparison_rules},
        {"name": f"{prefix}-abort", "rules": [a.rule() for a in alerts if a.kind == "abort"]},
        {"name": f"{prefix}-guards", "rules": [a.rule() for a in alerts if a.kind == "guard"]},
    ]
    return RuleSet("rollout.rules.yml", groups, alerts)


def _abort_alert(s: MonitoringSettings, q: Q, phase: str, threshold: str, value: float) -> Alert:
    trig = TRIGGERS[threshold]
    p = s.phases[phase]
    expr, summary = trig.build(q, phase, value, p.window_s)
    guards = []
    if trig.kind == "comparison":
        for group in (s.control, s.treatment):
            guards.append(
                f'({q.rec_rate(window(p.window_s))}{{job="{s.job}",'
                f'{s.group_label}="{group}"}} * {num(p.window_s)} >= {p.min_samples})'
            )
    elif trig.kind in ("total",) or threshold == "p99_regression_vs_baseline_pct_max":
        guards.append(f"({q.volume(p.window_s, 'job')} >= {p.min_samples})")
    guards.append(q.phase_active(phase))
    full = f"(\n  {expr.replace(chr(10), chr(10) + '  ')}\n)\n" + "".join(
        f"and on(job) {g}\n" for g in guards
    ).rstrip("\n")
    result = ("job", s.group_label) if trig.kind == "comparison" else ("job",)
    return Alert(
        name=s.alert_prefix + trig.alert,
        expr=full,
        for_s=s.abort_for_s,
        labels={"severity": "page", "phase": phase, "trigger": threshold},
        result_labels=result,
        summary=(f"{phase} {p.name}: " + summary[0], summary[1], summary[2]),
        description=(
            f"Abort trigger {threshold} = {num(value)} of phase {phase} ({p.name}): "
            f"{trig.what} over {window(p.window_s)}, held for {window(s.abort_for_s)}. "
            f"The gate `pytest gates -m {phase}` makes the decision; roll back if it "
            "confirms."
        ),
        runbook_url=s.runbook_url(s.anchor(phase)),
        kind="abort",
        phase=phase,
        threshold=threshold,
        annotations={
            "rollback_url": s.runbook_url(ROLLBACK_ANCHOR),
            **_annotations(s, "canary" if trig.kind == "comparison" else "overview"),
        },
    )


def _guard(
    s: MonitoringSettings,
    name: str,
    expr: str,
    phase: str | None,
    result: tuple[str, ...],
    summary: tuple[str, ValueFormat | None, str],
    description: str,
    extra_labels: dict[str, str] | None = None,
    severity: str = "ticket",
) -> Alert:
    labels = {"severity": severity, **({"phase": phase} if phase else {}), **(extra_labels or {})}
    anchor = s.anchor(phase) if phase else ROLLBACK_ANCHOR
    return Alert(
        name=s.alert_prefix + name,
        expr=expr,
        for_s=s.abort_for_s,
        labels=labels,
        result_labels=result,
        summary=summary,
        description=description,
        runbook_url=s.runbook_url(anchor),
        kind="guard",
        phase=phase,
        annotations=_annotations(s, "overview"),
    )


def _guards(
    s: MonitoringSettings, q: Q, triggers: list[tuple[str, str, float]], conds: dict[str, Any]
) -> list[Alert]:
    """Alerts that make silence visible: no phase, missing series, too little traffic."""
    m = s.metrics
    out = [
        _guard(
            s,
            "RolloutFlagsAbsent",
            f"absent({q.sel(m.flag)})",
            None,
            ("job",),
            (
                "no flag values from job ",
                None,
                f"{s.job}: the rollout phase is unknown and every abort alert is blind",
            ),
            f"{m.flag} is absent for job {s.job}: the service is not scraped or does not "
            "export its flags.",
            severity="page",
        ),
        _guard(
            s,
            "RolloutPhaseUnknown",
            f'group by (job) ({q.sel(m.flag)})\nunless on(job)\n{PHASE_ACTIVE}{{job="{s.job}"}}',
            None,
            ("job",),
            ("the flag values match no phase of the rollout plan", None, ""),
            "The flags the service reports match no [phases.*.flags] table, so no abort "
            "alert is armed. Set the flags of a phase or roll back.",
        ),
    ]
    for phase in sorted({p for p, _, _ in triggers}):
        kinds = {TRIGGERS[t].kind for p, t, _ in triggers if p == phase}
        names = [t for p, t, _ in triggers if p == phase]
        p = s.phases[phase]
        w, active = window(p.window_s), q.phase_active(phase)
        # (metric, absent() expression): one rule per metric, the groups joined by `or`.
        selectors: list[tuple[str, str]] = []
        if "comparison" in kinds:
            for metric in (m.requests, f"{m.latency}_bucket", f"{m.quality}_count"):
                selectors.append(
                    (
                        metric,
                        " or ".join(
                            f"absent({q.grp(metric, g)})" for g in (s.control, s.treatment)
                        ),
                    )
                )
            out.append(
                _guard(
                    s,
                    "RolloutLowVolume",
                    f'{q.rec_rate(w)}{{job="{s.job}"}} * {num(p.window_s)} < {p.min_samples}\n'
                    f"and on(job) {active}",
                    phase,
                    ("job", s.group_label),
                    (
                        f"{phase} {p.name}: only ",
                        "int",
                        f" requests over {w} in this group (abort alerts need {p.min_samples})",
                    ),
                    f"Too little traffic in a cohort for the comparison alerts of {phase} to judge.",
                )
            )
        if "total" in kinds or "p99_regression_vs_baseline_pct_max" in names:
            selectors.append((m.requests, f"absent({q.sel(m.requests)})"))
            out.append(
                _guard(
                    s,
                    "RolloutLowVolume",
                    f"{q.volume(p.window_s, 'job')} < {p.min_samples}\nand on(job) {active}",
                    phase,
                    ("job",),
                    (
                        f"{phase} {p.name}: only ",
                        "int",
                        f" requests over {w} (abort alerts need {p.min_samples})",
                    ),
                    f"Too little traffic for the abort alerts of {phase} to judge.",
                )
            )
        for t in names:
            trig = TRIGGERS[t]
            if trig.baseline:
                rec = q.rec_baseline(trig.baseline)
                out.append(
                    _guard(
                        s,
                        "RolloutBaselineMissing",
                        f'absent({rec}{{job="{s.job}"}})\nand on() {active}',
                        phase,
                        ("job",),
                        (f"{phase} {p.name}: no {s.baseline_phase} baseline for {t}", None, ""),
                        f"{rec} was not recorded while {s.baseline_phase} was live (or was lost for "
                        f"more than {BASELINE_HOLD}), so {t} cannot alert.",
                        extra_labels={"record": rec},
                    )
                )
        if "formation_errors_max" in names:
            selectors.append((m.formation_errors, f"absent({q.sel(m.formation_errors)})"))
        if "episodes_lost_max" in names:
            selectors.append((m.stored_items, f"absent({q.sel(m.stored_items)})"))
        if {"rss_overhead_pct_abort", "cpu_overhead_pct_abort"} & set(names):
            selectors += [(m.rss, f"absent({q.sel(m.rss)})"), (m.cpu, f"absent({q.sel(m.cpu)})")]
        seen: set[str] = set()
        for metric, absent in selectors:
            if absent in seen:
                continue
            seen.add(absent)
            result = tuple(sorted(k for k in ("job", s.group_label) if f'{k}="' in absent))
            out.append(
                _guard(
                    s,
                    "RolloutMetricAbsent",
                    f"(\n  {absent}\n)\nand on() {active}",
                    phase,
                    result,
                    (f"{phase} {p.name}: {metric} is absent", None, ""),
                    f"{metric} is absent while {phase} is live: its abort alerts cannot fire.",
                    extra_labels={"metric": metric},
                    severity="page",
                )
            )
    return out


def slo_rules(s: MonitoringSettings) -> RuleSet:
    q, m, slo = Q(s), s.metrics, s.slo
    records: list[dict[str, Any]] = []
    alerts: list[Alert] = []
    objectives: list[tuple[str, str, float, Callable[[str], str]]] = []
    if slo.availability is not None:
        for w in SLO_WINDOWS:
            records.append(_record(q.rec_job_error_ratio(w), q.error_ratio(w, "job")))
        objectives.append(("availability", "Availability", slo.availability, q.rec_job_error_ratio))
    if slo.latency_objective_s is not None and slo.latency_target is not None:
        le = str(float(slo.latency_objective_s))
        for w in SLO_WINDOWS:
            fast = q.sel(f"{m.latency}_bucket", le=le)
            count = q.sel(f"{m.latency}_count")
            records.append(
                _record(
                    q.rec_job_slow_ratio(w),
                    (
                        f"1 - (\n  sum by (job) (rate({fast}[{w}]))\n  /\n"
                        f"  sum by (job) (rate({count}[{w}]))\n)"
                    ),
                )
            )
        objectives.append(("latency", "Latency", slo.latency_target, q.rec_job_slow_ratio))
    for slo_name, title, target, record in objectives:
        budget = 1 - target
        what = (
            "requests that did not succeed"
            if slo_name == "availability"
            else f"requests slower than {num(float(slo.latency_objective_s or 0) * 1000)}ms"
        )
        for severity, for_, windows in BURN_RATE_ALERTS:
            parts = [
                f'(\n  {record(long)}{{job="{s.job}"}} > {num(rate * budget)}\n'
                f'  and on(job)\n  {record(short)}{{job="{s.job}"}} > {num(rate * budget)}\n)'
                for long, short, rate in windows
            ]
            desc = "; ".join(f"{rate:g}x over {long} and {short}" for long, short, rate in windows)
            alerts.append(
                Alert(
                    name=f"{s.alert_prefix}{title}BudgetBurn",
                    expr="\nor\n".join(parts),
                    for_s=float(window_seconds(for_)),
                    labels={"severity": severity, "slo": slo_name},
                    result_labels=("job",),
                    summary=(
                        f"{slo_name} SLO ({num(target * 100)}%): ",
                        "percent",
                        f" of requests failing it, burning the error budget ({severity})",
                    ),
                    description=(
                        f"Share of {what} burns the {num(budget * 100)}% error budget at {desc}."
                    ),
                    runbook_url=s.runbook_url(SLO_ANCHOR),
                    kind="slo",
                    annotations=_annotations(s, "slo"),
                )
            )
    groups: list[dict[str, Any]] = []
    if records:
        groups.append({"name": f"{s.uid_prefix}-slo-recording", "rules": records})
        groups.append(
            {"name": f"{s.uid_prefix}-slo-burn-rate", "rules": [a.rule() for a in alerts]}
        )
    return RuleSet("slo.rules.yml", groups, alerts)


def window_seconds(text: str) -> float:
    from pytest_rollout.durations import parse_duration

    return parse_duration(text)
