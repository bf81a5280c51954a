"""Guard alerts: they make silence visible (no phase, missing series, too little traffic).

An abort alert that cannot see its series stays quiet, which would read as healthy; each guard
turns one such blind spot into an alert of its own.
"""

from __future__ import annotations

from typing import Any

from pytest_rollout.monitoring.alerts import Alert, ValueFormat, dashboard_link
from pytest_rollout.monitoring.promql import BASELINE_HOLD, PHASE_ACTIVE, Q, num, window
from pytest_rollout.monitoring.settings import ROLLBACK_ANCHOR, MonitoringSettings
from pytest_rollout.monitoring.triggers import TRIGGERS, recorded_baseline, uses_twin


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
        annotations=dashboard_link(s, "overview"),
    )


def guard_alerts(
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
        # The baseline replica's series, when overhead alerts compare with it.
        twin_selectors: list[tuple[str, str]] = []
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
            role = recorded_baseline(s, t)
            if role:
                rec = q.rec_baseline(role)
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
        if any(uses_twin(s, t) for t in names):
            twin_selectors += [(x, f"absent({q.twin(x)})") for x in (m.rss, m.cpu)]
        seen: set[str] = set()
        for (metric, absent), twin in [(x, False) for x in selectors] + [
            (x, True) for x in twin_selectors
        ]:
            if absent in seen:
                continue
            seen.add(absent)
            result = tuple(sorted(k for k in ("job", s.group_label) if f'{k}="' in absent))
            whose = f" of the baseline replica (job {s.twin_job})" if twin else ""
            out.append(
                _guard(
                    s,
                    "RolloutMetricAbsent",
                    f"(\n  {absent}\n)\nand on() {active}",
                    phase,
                    result,
                    (f"{phase} {p.name}: {metric}{whose} is absent", None, ""),
                    f"{metric}{whose} is absent while {phase} is live: its abort alerts cannot "
                    "fire.",
                    extra_labels={"metric": metric, **({"replica": "baseline"} if twin else {})},
                    severity="page",
                )
            )
    return out
