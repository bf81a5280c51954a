"""Grafana dashboards (JSON model) over the contract metrics and the rendered recording rules.

UIDs are ``<uid_prefix>-overview|canary|slo|shadow``: stable, so the runbook and the alerts'
``dashboard`` annotation can link to them.  Panel ids and positions come from the panel order,
so a render is byte-for-byte reproducible.  Queries use fixed windows (no Grafana-only macros) so
the same PromQL also runs against Prometheus directly, which is how the tests check them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_rollout.monitoring.promql import PHASE_ACTIVE, Q, num, resource_series
from pytest_rollout.monitoring.rules import PANEL_WINDOW
from pytest_rollout.monitoring.settings import MonitoringSettings
from pytest_rollout.monitoring.slo import BURN_RATE_ALERTS
from pytest_rollout.monitoring.triggers import TRIGGERS

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Panel:
    title: str
    targets: Sequence[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    thresholds: Sequence[float] = ()  # drawn as red lines: the abort thresholds
    text: str = ""  # markdown, for text panels
    options: dict[str, Any] = field(default_factory=dict)


def _panel(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": "red", "value": t} for t in sorted(p.thresholds)]
    out: dict[str, Any] = {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
    }
    if p.kind == "text":
        out["options"] = {"mode": "markdown", "content": p.text}
        return out
    custom: dict[str, Any] = {}
    if p.kind == "timeseries":
        custom = {"thresholdsStyle": {"mode": "line" if p.thresholds else "off"}}
    out.update(
        {
            "datasource": DATASOURCE,
            "fieldConfig": {
                "defaults": {
                    "unit": p.unit,
                    "custom": custom,
                    "thresholds": {"mode": "absolute", "steps": steps},
                },
                "overrides": [],
            },
            "options": dict(p.options),
            "targets": [
                {
                    "datasource": DATASOURCE,
                    "expr": expr,
                    "legendFormat": legend,
                    "refId": chr(ord("A") + i),
                }
                for i, (expr, legend) in enumerate(p.targets)
            ],
        }
    )
    return out


def _dashboard(
    s: MonitoringSettings, key: str, title: str, description: str, panels: Sequence[Panel]
) -> dict[str, Any]:
    return {
        "uid": f"{s.uid_prefix}-{key}",
        "title": f"{s.title}: {title}",
        "description": description,
        "tags": ["rollout", s.uid_prefix],
        "editable": False,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "utc",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "links": [{"title": "Runbook", "type": "link", "url": s.runbook, "targetBlank": True}],
        "annotations": {"list": []},
        "panels": [_panel(p, i + 1, 12 * (i % 2), 8 * (i // 2)) for i, p in enumerate(panels)],
    }


def _abort_values(s: MonitoringSettings, threshold: str) -> list[float]:
    return sorted({p.thresholds[threshold] for p in s.phases.values() if threshold in p.thresholds})


def _threshold_table(s: MonitoringSettings, source_name: str) -> str:
    lines = ["| phase | abort trigger | value | alert |", "|---|---|---|---|"]
    for key, phase in s.phases.items():
        for name, value in sorted(phase.thresholds.items()):
            if name in TRIGGERS:
                lines.append(
                    f"| {key} {phase.name} | {name} | {num(value)} | "
                    f"{s.alert_prefix}{TRIGGERS[name].alert} |"
                )
    return "\n".join(lines) + f"\n\nRendered from {source_name}; runbook: {s.runbook}"


def overview(s: MonitoringSettings, q: Q, source_name: str) -> dict[str, Any]:
    m, w = s.metrics, PANEL_WINDOW
    items = [(q.sel(name), name) for name in (m.stored_items, *m.derived_items)]
    return _dashboard(
        s,
        "overview",
        "rollout overview",
        "Which phase is live, the flags behind it, traffic and alerts.",
        [
            Panel(
                "Live rollout phase",
                [(f'{PHASE_ACTIVE}{{job="{s.job}"}}', "{{phase}}")],
                kind="stat",
                description="From the flag values the service exports; see the "
                "[phases.*.flags] tables",
                options={"textMode": "name"},
            ),
            Panel(
                "Flag values as the service sees them", [(q.sel(m.flag), f"{{{{{m.flag_label}}}}}")]
            ),
            Panel(
                "Requests per second by group",
                [(f'{q.rec_rate(w)}{{job="{s.job}"}}', f"{{{{{s.group_label}}}}}")],
                unit="reqps",
            ),
            Panel(
                "Error ratio by group",
                [(f'{q.rec_error_ratio(w)}{{job="{s.job}"}}', f"{{{{{s.group_label}}}}}")],
                unit="percentunit",
            ),
            Panel(
                "Latency p50 / p99 (all groups)",
                [(q.quantile(0.5, w, "job"), "p50"), (q.quantile(0.99, w, "job"), "p99")],
                unit="s",
            ),
            Panel(
                "Resident memory and CPU",
                [
                    (f"sum by (job) ({q.sel(m.rss)})", "resident bytes"),
                    (f"sum by (job) (rate({q.sel(m.cpu)}[{w}]))", "CPU cores"),
                ],
            ),
            Panel(
                "Rollout alerts firing",
                [(f'sum(ALERTS{{job="{s.job}",alertstate="firing"}}) or vector(0)', "firing")],
                kind="stat",
            ),
            Panel("Stored items (must never drop)", items),
            Panel(
                "Abort triggers and their alerts",
                [],
                kind="text",
                text=_threshold_table(s, source_name),
            ),
        ],
    )


def canary(s: MonitoringSettings, q: Q) -> dict[str, Any]:
    m, w, job, gl = s.metrics, PANEL_WINDOW, s.job, s.group_label
    legend = f"{{{{{gl}}}}}"

    def delta(record: str) -> str:
        return (
            f'{record}{{job="{job}",{gl}="{s.treatment}"}} - on(job) group_left '
            f'{record}{{job="{job}",{gl}="{s.control}"}}'
        )

    return _dashboard(
        s,
        "canary",
        "canary vs control",
        f"{s.treatment} against {s.control} over {w}; red lines are abort "
        "thresholds (the alerts use each phase's own window).",
        [
            Panel(
                "p99 latency by group",
                [(f'{q.rec_quantile("p99", w)}{{job="{job}"}}', legend)],
                unit="s",
            ),
            Panel(
                f"p99 delta ({s.treatment} - {s.control})",
                [(delta(q.rec_quantile("p99", w)), "delta")],
                unit="s",
                thresholds=_abort_values(s, "p99_delta_abort_s"),
            ),
            Panel(
                "p50 latency by group",
                [(f'{q.rec_quantile("p50", w)}{{job="{job}"}}', legend)],
                unit="s",
            ),
            Panel(
                "Error ratio by group",
                [(f'{q.rec_error_ratio(w)}{{job="{job}"}}', legend)],
                unit="percentunit",
            ),
            Panel(
                f"Error ratio delta ({s.treatment} - {s.control})",
                [(delta(q.rec_error_ratio(w)), "delta")],
                unit="percentunit",
                thresholds=_abort_values(s, "error_rate_delta_abort"),
            ),
            Panel(f"Mean {m.quality} by group", [(f'{q.rec_quality(w)}{{job="{job}"}}', legend)]),
            Panel(
                f"{m.quality} delta ({s.treatment} - {s.control})",
                [(delta(q.rec_quality(w)), "delta")],
                thresholds=[-v for v in _abort_values(s, "confidence_drop_abort")],
            ),
            Panel(
                "Requests per second by group",
                [(f'{q.rec_rate(w)}{{job="{job}"}}', legend)],
                unit="reqps",
            ),
            Panel(f"{m.active_units} by group (sample ratio)", [(q.sel(m.active_units), legend)]),
            Panel(
                "Fallbacks per second",
                [(f"sum by (job) (rate({q.sel(m.fallbacks)}[{w}]))", "fallbacks")],
                unit="reqps",
            ),
        ],
    )


def slo(s: MonitoringSettings, q: Q) -> dict[str, Any] | None:
    objectives = []
    if s.slo.availability is not None:
        objectives.append(("availability", s.slo.availability, q.rec_job_error_ratio))
    if s.slo.latency_target is not None:
        objectives.append(("latency", s.slo.latency_target, q.rec_job_slow_ratio))
    if not objectives:
        return None
    panels = []
    windows = [long for _, _, pairs in BURN_RATE_ALERTS for long, _, _ in pairs]
    for name, target, record in objectives:
        budget = 1 - target
        panels.append(
            Panel(
                f"{name} SLI over 1h (objective {num(target * 100)}%)",
                [(f'1 - {record("1h")}{{job="{s.job}"}}', "SLI")],
                unit="percentunit",
                thresholds=[target],
            )
        )
        panels.append(
            Panel(
                f"{name} error-budget burn rate",
                [(f'{record(w)}{{job="{s.job}"}} / {num(budget)}', w) for w in windows],
                description="1 = spending the budget exactly over the SLO period",
                thresholds=sorted({rate for _, _, pairs in BURN_RATE_ALERTS for *_, rate in pairs}),
            )
        )
    return _dashboard(
        s, "slo", "SLO compliance", "Multi-window multi-burn-rate view of the recall SLOs.", panels
    )


def shadow(s: MonitoringSettings, q: Q) -> dict[str, Any]:
    m, w = s.metrics, PANEL_WINDOW
    if s.twin_job is not None:  # per process, against the baseline replica (as the alerts)
        rss = f"avg by (job) ({resource_series('rss', w, q.sel(m.rss))})"
        cpu = f"avg by (job) ({resource_series('cpu', w, q.sel(m.cpu))})"
        rss_base = f"avg({resource_series('rss', w, q.twin(m.rss))})"
        cpu_base = f"avg({resource_series('cpu', w, q.twin(m.cpu))})"
        join, against = "on() group_left", f"the baseline replica (job {s.twin_job})"
    else:
        rss = f"sum by (job) ({resource_series('rss', w, q.sel(m.rss))})"
        cpu = f"sum by (job) ({resource_series('cpu', w, q.sel(m.cpu))})"
        rss_base = f'{q.rec_baseline("rss")}{{job="{s.job}"}}'
        cpu_base = f'{q.rec_baseline("cpu")}{{job="{s.job}"}}'
        join, against = "on(job)", f"the {s.baseline_phase} baseline"
    return _dashboard(
        s,
        "shadow",
        "shadow-mode overhead",
        f"Resource overhead against {against}, and the shadow work itself.",
        [
            Panel(
                "Resident memory vs baseline", [(rss, "now"), (rss_base, "baseline")], unit="bytes"
            ),
            Panel(
                "Resident memory overhead",
                [(f"100 * ({rss} / {join} {rss_base} - 1)", "overhead %")],
                unit="percent",
                thresholds=_abort_values(s, "rss_overhead_pct_abort"),
            ),
            Panel("CPU vs baseline", [(cpu, "now"), (cpu_base, "baseline")], unit="short"),
            Panel(
                "CPU overhead",
                [(f"100 * ({cpu} / {join} {cpu_base} - 1)", "overhead %")],
                unit="percent",
                thresholds=_abort_values(s, "cpu_overhead_pct_abort"),
            ),
            Panel(
                "Formation p99 duration",
                [
                    (
                        f"histogram_quantile(0.99, sum by (job, le) "
                        f"(rate({q.sel(m.formation_latency + '_bucket')}[{w}])))",
                        "p99",
                    )
                ],
                unit="s",
            ),
            Panel(
                "Formations and formation errors per second",
                [
                    (f"sum by (job) (rate({q.sel(m.formations)}[{w}]))", "formed"),
                    (f"sum by (job) (rate({q.sel(m.formation_errors)}[{w}]))", "errors"),
                ],
            ),
            Panel(
                "Items built by the new path",
                [(q.sel(name), name) for name in m.derived_items]
                or [(q.sel(m.stored_items), m.stored_items)],
            ),
            Panel(
                "p99 latency during shadow mode",
                [(q.quantile(0.99, w, "job"), "p99")],
                unit="s",
                description="nothing reads the new state yet, so this must not move",
            ),
        ],
    )


def dashboards(
    s: MonitoringSettings, source_name: str = "rollout.toml"
) -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON model, in a stable order."""
    q = Q(s)
    boards = [overview(s, q, source_name), canary(s, q), slo(s, q), shadow(s, q)]
    return {b["uid"]: b for b in boards if b is not None}


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query in a dashboard: what the tests run."""
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
