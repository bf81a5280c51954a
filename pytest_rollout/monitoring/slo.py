"""SLO recording rules and multi-window burn-rate alerts (the SRE workbook's), from [slo]."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytest_rollout.durations import parse_duration
from pytest_rollout.monitoring.alerts import Alert, RuleSet, dashboard_link, record
from pytest_rollout.monitoring.promql import Q, num
from pytest_rollout.monitoring.settings import SLO_ANCHOR, MonitoringSettings

SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# (severity, for, [(long window, short window, burn rate)]): the SRE workbook's recommendation.
BURN_RATE_ALERTS: tuple[tuple[str, str, tuple[tuple[str, str, float], ...]], ...] = (
    ("page", "2m", (("1h", "5m", 14.4), ("6h", "30m", 6.0))),
    ("ticket", "15m", (("1d", "2h", 3.0), ("3d", "6h", 1.0))),
)


def slo_rules(s: MonitoringSettings) -> RuleSet:
    q, m, slo = Q(s), s.metrics, s.slo
    records: list[dict[str, Any]] = []
    alerts: list[Alert] = []
    objectives: list[tuple[str, str, float, Callable[[str], str]]] = []
    if slo.availability is not None:
        for w in SLO_WINDOWS:
            records.append(record(q.rec_job_error_ratio(w), q.error_ratio(w, "job")))
        objectives.append(("availability", "Availability", slo.availability, q.rec_job_error_ratio))
    if slo.latency_objective_s is not None and slo.latency_target is not None:
        le = str(float(slo.latency_objective_s))
        for w in SLO_WINDOWS:
            fast = q.sel(f"{m.latency}_bucket", le=le)
            count = q.sel(f"{m.latency}_count")
            records.append(
                record(
                    q.rec_job_slow_ratio(w),
                    (
                        f"1 - (\n  sum by (job) (rate({fast}[{w}]))\n  /\n"
                        f"  sum by (job) (rate({count}[{w}]))\n)"
                    ),
                )
            )
        objectives.append(("latency", "Latency", slo.latency_target, q.rec_job_slow_ratio))
    for slo_name, title, target, ratio in objectives:
        budget = 1 - target
        what = (
            "requests that did not succeed"
            if slo_name == "availability"
            else f"requests slower than {num(float(slo.latency_objective_s or 0) * 1000)}ms"
        )
        for severity, for_, windows in BURN_RATE_ALERTS:
            parts = [
                f'(\n  {ratio(long)}{{job="{s.job}"}} > {num(rate * budget)}\n'
                f'  and on(job)\n  {ratio(short)}{{job="{s.job}"}} > {num(rate * budget)}\n)'
                for long, short, rate in windows
            ]
            desc = "; ".join(f"{rate:g}x over {long} and {short}" for long, short, rate in windows)
            alerts.append(
                Alert(
                    name=f"{s.alert_prefix}{title}BudgetBurn",
                    expr="\nor\n".join(parts),
                    for_s=float(parse_duration(for_)),
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
                    annotations=dashboard_link(s, "slo"),
                )
            )
    groups: list[dict[str, Any]] = []
    if records:
        groups.append({"name": f"{s.uid_prefix}-slo-recording", "rules": records})
        groups.append(
            {"name": f"{s.uid_prefix}-slo-burn-rate", "rules": [a.rule() for a in alerts]}
        )
    return RuleSet("slo.rules.yml", groups, alerts)
