"""promtool unit tests for the SLO burn-rate alerts: fast and slow burn fire, healthy stays quiet."""

from __future__ import annotations

from typing import Any

from pytest_rollout.monitoring.alerts import Alert, RuleSet
from pytest_rollout.monitoring.promql import window
from pytest_rollout.monitoring.ruletests import expected
from pytest_rollout.monitoring.settings import MonitoringSettings


def slo_tests(s: MonitoringSettings, rules: RuleSet) -> dict[str, Any]:
    """Fast burn pages and tickets, slow burn only tickets, healthy and idle stay quiet."""
    slo, m, interval = s.slo, s.metrics, 60
    steps = 61  # an hour: burn rates are ratios, so the long windows read the same share
    job = f'job="{s.job}"'
    tests: list[dict[str, Any]] = []
    n = 100_000
    by_slo: dict[str, list[Alert]] = {}
    for a in rules.alerts:
        by_slo.setdefault(a.labels["slo"], []).append(a)
    for slo_name, alerts in sorted(by_slo.items()):
        target = slo.availability if slo_name == "availability" else slo.latency_target
        assert target is not None
        budget = 1 - target
        for label, share, firing in (
            ("fast burn", min(0.5, 20 * budget), ("page", "ticket")),
            ("slow burn", 2 * budget, ("ticket",)),
            ("healthy", 0.5 * budget, ()),
            ("no traffic", 0.0, ()),
        ):
            per_step = 0 if label == "no traffic" else n
            bad = round(per_step * share)
            if slo_name == "availability":
                series = [
                    {
                        "series": f'{m.requests}{{{job},{m.outcome_label}="{m.ok_outcome}"}}',
                        "values": f"0+{per_step - bad}x{steps - 1}",
                    },
                    {
                        "series": f'{m.requests}{{{job},{m.outcome_label}="error"}}',
                        "values": f"0+{bad}x{steps - 1}",
                    },
                ]
            else:
                le = str(float(slo.latency_objective_s or 0))
                series = [
                    {
                        "series": f'{m.latency}_bucket{{{job},le="{le}"}}',
                        "values": f"0+{per_step - bad}x{steps - 1}",
                    },
                    {
                        "series": f"{m.latency}_count{{{job}}}",
                        "values": f"0+{per_step}x{steps - 1}",
                    },
                ]
            value = bad / per_step if per_step else 0.0
            checks: dict[str, list[dict[str, Any]]] = {}
            for a in alerts:  # page and ticket share a name: one check lists both
                fires = a.labels["severity"] in firing
                items = ((a, {"job": s.job}, value),) if fires else ()
                checks.setdefault(a.name, []).extend(expected(items))
            tests.append(
                {
                    "name": f"{slo_name} SLO: {label}",
                    "interval": "1m",
                    "input_series": series,
                    "alert_rule_test": [
                        {"eval_time": "40m", "alertname": name, "exp_alerts": exp}
                        for name, exp in checks.items()
                    ],
                }
            )
    return {"rule_files": [rules.filename], "evaluation_interval": window(interval), "tests": tests}
