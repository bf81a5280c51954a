"""Alerting-rule building blocks shared by the rollout and SLO rule files.

An ``Alert`` carries, besides its rule, what the promtool tests need to predict it (result labels,
the summary split around its value); a ``RuleSet`` is one rendered rule file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_rollout.monitoring.promql import window
from pytest_rollout.monitoring.settings import MonitoringSettings

ValueFormat = Literal["duration", "percent", "fixed3", "fixed1", "int"]
Summary = tuple[str, ValueFormat | None, str]  # text before the value, its format, text after
GO_FORMATS: dict[ValueFormat, str] = {
    "duration": "humanizeDuration",
    "percent": "humanizePercentage",
    "fixed3": 'printf "%.3f"',
    "fixed1": 'printf "%.1f"',
    "int": 'printf "%.0f"',
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
class RuleSet:
    """A rendered rule file: its groups, and the alerts in it (for the promtool tests)."""

    filename: str
    groups: list[dict[str, Any]]
    alerts: list[Alert]

    def document(self) -> dict[str, Any]:
        return {"groups": self.groups}


def record(name: str, expr: str) -> dict[str, Any]:
    return {"record": name, "expr": expr}


def dashboard_link(s: MonitoringSettings, dashboard: str) -> dict[str, str]:
    return {"dashboard": f"/d/{s.uid_prefix}-{dashboard}"}
