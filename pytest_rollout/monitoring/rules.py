"""The rollout rule file: phase and comparison recording rules, abort alerts and their guards.

Which thresholds become which alert is the ``TRIGGERS`` registry in triggers.py; the guards that
make a blind abort alert visible are in guards.py.
"""

from __future__ import annotations

from pytest_rollout.config import ConfigError
from pytest_rollout.monitoring.alerts import Alert, RuleSet, dashboard_link, record
from pytest_rollout.monitoring.guards import guard_alerts
from pytest_rollout.monitoring.phases import active_rule_expr, conditions
from pytest_rollout.monitoring.promql import (
    BASELINE_HOLD,
    PHASE_ACTIVE,
    Q,
    num,
    resource_series,
    window,
)
from pytest_rollout.monitoring.settings import ROLLBACK_ANCHOR, MonitoringSettings
from pytest_rollout.monitoring.triggers import TRIGGERS, phase_triggers

PANEL_WINDOW = "5m"  # the comparison panels' window; the alerts use each phase's own window


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
        {**record(PHASE_ACTIVE, active_rule_expr(c, q)), "labels": {"phase": key}}
        for key, c in conds.items()
        if c
    ]
    base = s.phases[s.baseline_phase]
    w0 = window(base.window_s)
    live = q.phase_active(s.baseline_phase)
    m = s.metrics
    baseline_exprs = {
        "rss": f"sum by (job) ({resource_series('rss', w0, q.sel(m.rss))})",
        "cpu": f"sum by (job) ({resource_series('cpu', w0, q.sel(m.cpu))})",
        "p99": (
            f"{q.quantile(0.99, w0, 'job')}\n  and on(job)\n  "
            f"({q.volume(base.window_s, 'job')} >= {base.min_samples})"
        ),
    }
    for role, current in baseline_exprs.items():
        name = q.rec_baseline(role)
        phase_rules.append(
            record(
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
            record(q.rec_rate(w), f"sum by ({by}) (rate({total}[{w}]))"),
            record(q.rec_error_ratio(w), q.error_ratio(w, by)),
            record(q.rec_quantile("p50", w), q.quantile(0.5, w, by)),
            record(q.rec_quantile("p99", w), q.quantile(0.99, w, by)),
            record(
                q.rec_quality(w),
                (
                    f"sum by ({by}) (rate({qual_sum}[{w}]))\n/\n"
                    f"sum by ({by}) (rate({qual_count}[{w}]))"
                ),
            ),
        ]

    alerts = [_abort_alert(s, q, p, t, v) for p, t, v in triggers]
    alerts += guard_alerts(s, q, triggers, conds)
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
        # rollout_action + phase are what `rollout serve` (POST /v1/alertmanager) acts on.
        labels={
            "severity": "page",
            "rollout_action": "abort",
            "phase": phase,
            "trigger": threshold,
        },
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
            **dashboard_link(s, "canary" if trig.kind == "comparison" else "overview"),
        },
    )
