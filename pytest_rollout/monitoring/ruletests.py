"""promtool unit tests for every rendered alert, generated from the same thresholds as the rules.

Each abort alert gets three cases: a bad series (it fires, with the predicted value in its
summary), a healthy one and one without traffic (it stays quiet).  Each guard gets a case where
it fires and a healthy one where it stays quiet.  Scenarios are built from the threshold itself
(twice the allowed deviation), so a changed threshold changes the test data with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_rollout.monitoring.phases import conditions, matching
from pytest_rollout.monitoring.promql import window
from pytest_rollout.monitoring.rules import TRIGGERS, Alert, RuleSet, ValueFormat
from pytest_rollout.monitoring.settings import MonitoringSettings
from pytest_rollout.monitoring.yamlout import number

FAST_LE = 0.01  # every healthy request lands in this latency bucket
BASE_QUALITY = 0.8
BASE_RSS = 100_000_000.0
BASE_CPU_CORES = 0.1


def go_format(fmt: ValueFormat, value: float) -> str:
    """What Prometheus' template functions print for ``value``."""
    if fmt == "percent":
        return "%.4g%%" % (value * 100)
    if fmt == "fixed3":
        return f"{value:.3f}"
    if fmt == "fixed1":
        return f"{value:.1f}"
    if fmt == "int":
        return f"{value:.0f}"
    if value == 0:
        return "0s"
    if abs(value) >= 1:
        if abs(value) >= 60:
            raise ValueError("durations of a minute and more are not predicted here")
        return f"{value:.4g}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{value:.4g}{prefix}s"


@dataclass(frozen=True)
class Segment:
    """A stretch of steps with steady behaviour; ``flags`` None means no flag series at all."""

    steps: int
    flags: Mapping[str, float] | None
    n: int = 0  # requests per group per step
    errors: Mapping[str, int] = field(default_factory=dict)  # per group per step
    slow: Mapping[str, float] = field(default_factory=dict)  # share in the slow bucket per group
    quality: Mapping[str, float] = field(default_factory=dict)
    rss: float = BASE_RSS
    cpu_per_step: float = 0.0
    stored_step: float = 0.0  # stored items added per step
    stored_drop: float = 0.0  # stored items lost at the segment's first step
    formation_errors: int = 0
    metrics: bool = True  # False: only the flag series exist


def compress(values: Sequence[float]) -> str:
    """promtool's expanding notation: each run with a constant step becomes ``a+bxn``."""
    parts, i = [], 0
    while i < len(values):
        start = number(round(values[i], 9))
        if i + 1 == len(values):
            parts.append(start)
            break
        step, j = values[i + 1] - values[i], i + 1
        while j + 1 < len(values) and math.isclose(values[j + 1] - values[j], step, abs_tol=1e-9):
            j += 1
        if step == 0:
            parts.append(f"{start}x{j - i}")
        else:
            sign = "+" if step > 0 else "-"
            parts.append(f"{start}{sign}{number(round(abs(step), 9))}x{j - i}")
        i = j + 1
    return " ".join(parts)


class Builder:
    """Input series for one scenario, from a list of segments."""

    def __init__(self, s: MonitoringSettings, slow_le: float) -> None:
        self.s, self.slow_le = s, slow_le

    def series(self, segments: Sequence[Segment]) -> list[dict[str, str]]:
        s, m = self.s, self.s.metrics
        groups = (s.control, s.treatment)
        job = f'job="{s.job}"'
        values: dict[str, list[float]] = {}
        flag_names = sorted({f for p in s.phases.values() for f in p.flags})

        def add(selector: str, value: float) -> None:
            values.setdefault(selector, []).append(value)

        cum: dict[str, float] = {}

        def counter(selector: str, inc: float) -> None:
            cum[selector] = cum.get(selector, 0.0) + inc
            add(selector, cum[selector])

        stored = 1000.0
        first = True
        for seg in segments:
            for step in range(seg.steps):
                if seg.flags is not None:
                    for flag in flag_names:
                        add(f'{m.flag}{{{job},{m.flag_label}="{flag}"}}', seg.flags.get(flag, 0.0))
                if not seg.metrics:
                    continue
                for g in groups:
                    gl = f'{job},{s.group_label}="{g}"'
                    err = seg.errors.get(g, 0) if seg.n else 0
                    inc = 0.0 if first else 1.0
                    counter(
                        f'{m.requests}{{{gl},{m.outcome_label}="{m.ok_outcome}"}}',
                        inc * (seg.n - err),
                    )
                    counter(f'{m.requests}{{{gl},{m.outcome_label}="error"}}', inc * err)
                    slow = seg.slow.get(g, 0.0)
                    for le, share in ((FAST_LE, 1 - slow), (self.slow_le, 1.0), (math.inf, 1.0)):
                        le_text = "+Inf" if le == math.inf else str(le)
                        counter(
                            f'{m.latency}_bucket{{{gl},le="{le_text}"}}', inc * round(seg.n * share)
                        )
                    counter(f"{m.quality}_count{{{gl}}}", inc * seg.n)
                    counter(
                        f"{m.quality}_sum{{{gl}}}", inc * seg.n * seg.quality.get(g, BASE_QUALITY)
                    )
                add(f"{m.rss}{{{job}}}", seg.rss)
                counter(f"{m.cpu}{{{job}}}", 0.0 if first else seg.cpu_per_step)
                counter(f"{m.formation_errors}{{{job}}}", 0.0 if first else seg.formation_errors)
                stored += seg.stored_step - (seg.stored_drop if step == 0 else 0.0)
                add(f"{m.stored_items}{{{job}}}", stored)
                first = False
        return [{"series": k, "values": compress(v)} for k, v in sorted(values.items())]


@dataclass(frozen=True)
class Check:
    """At ``eval_steps``, alert ``name`` fires exactly as listed (empty: stays quiet)."""

    name: str
    fires: tuple[tuple[Alert, dict[str, str], float], ...] = ()


@dataclass(frozen=True)
class Case:
    name: str
    segments: tuple[Segment, ...]
    eval_steps: int
    checks: tuple[Check, ...]
    slow_le: float = FAST_LE * 2


def _flags_of(s: MonitoringSettings, phase: str) -> dict[str, float]:
    return {k: float(v) for k, v in s.phases[phase].flags.items()}


@dataclass
class _Bad:
    """What the bad series of one phase looks like, accumulated over its triggers."""

    changes: dict[str, Any] = field(default_factory=dict)
    fires: list[tuple[Alert, dict[str, str], float]] = field(default_factory=list)
    slow_le: float = FAST_LE * 2
    n: int = 10
    drop: float = 0.0


class Planner:
    """Per phase: a bad, a healthy, an idle and a blind scenario; timing in ``interval_s`` steps."""

    def __init__(self, s: MonitoringSettings, interval_s: int, alerts: Sequence[Alert]) -> None:
        self.s, self.interval_s, self.alerts = s, interval_s, list(alerts)

    def steps(self, seconds: float) -> int:
        return math.ceil(seconds / self.interval_s)

    def n_for(self, phase: str) -> int:
        """Requests per group per step: twice the phase's minimum over its window."""
        p = self.s.phases[phase]
        per_step = 2 * p.min_samples / max(1, self.steps(p.window_s))
        return max(10, 10 * math.ceil(per_step / 10))

    def named(self, name: str, phase: str | None) -> list[Alert]:
        return [a for a in self.alerts if a.name == self.s.alert_prefix + name and a.phase == phase]

    def _bad(self, phase: str, abort: list[Alert], base_n: int) -> _Bad:
        s, job = self.s, {"job": self.s.job}
        tr = {**job, s.group_label: s.treatment}
        bad = _Bad(n=base_n)
        p = s.phases[phase]
        both = (s.control, s.treatment)
        for a in abort:
            assert a.threshold is not None
            t, value = a.threshold, p.thresholds[a.threshold]
            if t == "p99_delta_abort_s":
                bad.slow_le = FAST_LE + 4 * value
                bad.changes["slow"] = {s.treatment: 0.1}
                p99_t = FAST_LE + (bad.slow_le - FAST_LE) * 0.9
                bad.fires.append((a, tr, p99_t - FAST_LE * 0.99))
            elif t in ("error_rate_delta_abort", "error_rate_max"):
                bad.n = max(bad.n, 10 * math.ceil(4 / max(value, 1e-6) / 10))
                bad.changes.setdefault("errors", {})
                groups = (s.treatment,) if t == "error_rate_delta_abort" else both
                bad.fires.append((a, tr if t == "error_rate_delta_abort" else job, -1.0))
                for g in groups:
                    bad.changes["errors"][g] = "2x"
            elif t == "confidence_drop_abort":
                worse = max(0.0, BASE_QUALITY - 2 * value)
                bad.changes["quality"] = {s.treatment: worse}
                bad.fires.append((a, tr, worse - BASE_QUALITY))
            elif t == "rss_overhead_pct_abort":
                bad.changes["rss"] = BASE_RSS * (1 + 2 * value / 100)
                bad.fires.append((a, job, 100 * (bad.changes["rss"] / BASE_RSS - 1)))
            elif t == "cpu_overhead_pct_abort":
                per_step = BASE_CPU_CORES * self.interval_s
                bad.changes["cpu_per_step"] = per_step * (1 + 2 * value / 100)
                bad.fires.append((a, job, 2 * value))
            elif t == "p99_regression_vs_baseline_pct_max":
                bad.slow_le = FAST_LE * (2 + value / 25)
                bad.changes["slow"] = {g: 0.1 for g in both}
                p99 = FAST_LE + (bad.slow_le - FAST_LE) * 0.9
                bad.fires.append((a, job, 100 * (p99 / (FAST_LE * 0.99) - 1)))
            elif t == "formation_errors_max":
                per_step = int(value) + 1
                bad.changes["formation_errors"] = per_step
                bad.fires.append((a, job, per_step * self.steps(p.window_s)))
            elif t == "episodes_lost_max":
                bad.drop = value + 10
                bad.changes["stored_step"] = 0.0
                bad.fires.append((a, job, bad.drop))
            else:  # pragma: no cover - the registry and this planner are tested to match
                raise KeyError(t)
        # Errors need the final request count: twice the threshold's share of it.
        errors = {}
        for g in bad.changes.get("errors", {}):
            t = (
                "error_rate_delta_abort"
                if "error_rate_delta_abort" in p.thresholds
                else "error_rate_max"
            )
            errors[g] = max(1, math.ceil(2 * p.thresholds[t] * bad.n))
        if errors:
            bad.changes["errors"] = errors
            bad.fires = [
                (a, lab, errors[s.treatment] / bad.n) if v == -1.0 else (a, lab, v)
                for a, lab, v in bad.fires
            ]
        return bad

    def phase_cases(self, phase: str) -> list[Case]:
        s = self.s
        p = s.phases[phase]
        flags = _flags_of(s, phase)
        abort = [a for a in self.alerts if a.kind == "abort" and a.phase == phase]
        guards = [a for a in self.alerts if a.kind == "guard" and a.phase == phase]
        uses_baseline = any(TRIGGERS[a.threshold or ""].baseline for a in abort)
        n = self.n_for(phase)
        if uses_baseline:
            n = max(n, self.n_for(s.baseline_phase))
        bad = self._bad(phase, abort, n)
        n = bad.n
        run = self.steps(p.window_s + s.abort_for_s) + 3
        healthy = Segment(
            run, flags, n=n, stored_step=10.0, cpu_per_step=BASE_CPU_CORES * self.interval_s
        )
        lead: tuple[Segment, ...] = ()
        if uses_baseline:
            base = s.phases[s.baseline_phase]
            lead = (
                replace(
                    healthy,
                    steps=self.steps(base.window_s) + 3,
                    flags=_flags_of(s, s.baseline_phase),
                ),
            )
        bad_run = replace(healthy, **bad.changes)
        bad_segments: tuple[Segment, ...] = (bad_run,)
        if bad.drop:
            # Items lost half a window before the evaluation: inside the window, held for `for`.
            half = self.steps(p.window_s / 2)
            bad_segments = (
                replace(bad_run, steps=run - half),
                replace(bad_run, steps=half, stored_drop=bad.drop),
            )
        at = sum(x.steps for x in lead) + run - 1
        names = sorted({a.name for a in abort})
        guard_names = sorted(
            {a.name for a in guards}
            | {a.name for a in self.alerts if a.kind == "guard" and not a.phase}
        )

        def quiet(names: Sequence[str]) -> tuple[Check, ...]:
            return tuple(Check(n) for n in names)

        def firing(name: str, items: Sequence[tuple[Alert, dict[str, str], float]]) -> Check:
            return Check(name, tuple(x for x in items if x[0].name == name))

        def all_results(alert: Alert, value: float) -> list[tuple[Alert, dict[str, str], float]]:
            job = {"job": s.job}
            if s.group_label in alert.result_labels:
                return [(alert, {**job, s.group_label: g}, value) for g in (s.control, s.treatment)]
            return [(alert, job, value)]

        cases = [
            Case(
                f"{phase}: every abort alert fires on its bad series",
                (*lead, *bad_segments),
                at,
                tuple(firing(nm, bad.fires) for nm in names),
                bad.slow_le,
            ),
            Case(
                f"{phase}: healthy series, every alert stays quiet",
                (*lead, healthy),
                at,
                quiet(names + guard_names),
                bad.slow_le,
            ),
        ]
        low = [x for a in self.named("RolloutLowVolume", phase) for x in all_results(a, 0.0)]
        idle = replace(healthy, n=0, stored_step=0.0)
        cases.append(
            Case(
                f"{phase}: no traffic, abort alerts quiet, low volume fires",
                (*lead, idle),
                at,
                (*quiet(names), *([firing(low[0][0].name, low)] if low else ())),
                bad.slow_le,
            )
        )
        blind = Segment(self.steps(s.abort_for_s) + 3, flags, metrics=False)
        absent = [x for a in self.named("RolloutMetricAbsent", phase) for x in all_results(a, 1.0)]
        missing = [
            x for a in self.named("RolloutBaselineMissing", phase) for x in all_results(a, 1.0)
        ]
        checks = [firing(items[0][0].name, items) for items in (absent, missing) if items]
        cases.append(
            Case(
                f"{phase}: no metrics but flags, absence alerts fire",
                (blind,),
                blind.steps - 1,
                (*checks, *quiet(names)),
            )
        )
        return cases

    def global_cases(self) -> list[Case]:
        s, job = self.s, {"job": self.s.job}
        short = self.steps(s.abort_for_s) + 3
        cases = []
        flags_absent = self.named("RolloutFlagsAbsent", None)
        if flags_absent:
            cases.append(
                Case(
                    "no series at all: flags absent fires",
                    (Segment(short, None, metrics=False),),
                    short - 1,
                    (Check(flags_absent[0].name, ((flags_absent[0], job, 1.0),)),),
                )
            )
        unknown_alert = self.named("RolloutPhaseUnknown", None)
        unknown = _unmatched_flags(s)
        if unknown_alert and unknown is not None:
            cases.append(
                Case(
                    "flags of no phase: phase unknown fires",
                    (Segment(short, unknown, n=10),),
                    short - 1,
                    (Check(unknown_alert[0].name, ((unknown_alert[0], job, 1.0),)),),
                )
            )
        return cases


def _unmatched_flags(s: MonitoringSettings) -> dict[str, float] | None:
    """A flag state that matches no phase: one phase's flags with one flag changed."""
    conds = conditions(s)
    for phase in s.phases.values():
        for flag, value in sorted(phase.flags.items()):
            other = not value if isinstance(value, bool) else float(value) + 0.5
            candidate = {k: float(v) for k, v in phase.flags.items()}
            candidate[flag] = float(other)
            if not matching(conds, candidate):
                return candidate
    return None


def _expected(fires: Sequence[tuple[Alert, dict[str, str], float]]) -> list[dict[str, Any]]:
    out = []
    for a, labels, value in fires:
        before, fmt, after = a.summary
        summary = before + (go_format(fmt, value) if fmt else "") + after
        out.append(
            {
                "exp_labels": {**{k: labels[k] for k in sorted(labels)}, **a.labels},
                "exp_annotations": {
                    "summary": summary,
                    "description": a.description,
                    "runbook_url": a.runbook_url,
                    **a.annotations,
                },
            }
        )
    return out


def _interval(s: MonitoringSettings) -> int:
    """A twelfth of the shortest window, at most the `for` of the abort alerts."""
    shortest = min(p.window_s for p in s.phases.values())
    return int(max(1, min(shortest // 12, s.abort_for_s)))


def rollout_tests(s: MonitoringSettings, rules: RuleSet) -> dict[str, Any]:
    interval = _interval(s)
    planner = Planner(s, interval, rules.alerts)
    cases: list[Case] = []
    for phase in sorted({a.phase for a in rules.alerts if a.kind == "abort" and a.phase}):
        cases += planner.phase_cases(phase)
    cases += planner.global_cases()
    tests = []
    for case in cases:
        builder = Builder(s, case.slow_le)
        tests.append(
            {
                "name": case.name,
                "interval": window(interval),
                "input_series": builder.series(case.segments),
                "alert_rule_test": [
                    {
                        "eval_time": window(case.eval_steps * interval),
                        "alertname": check.name,
                        "exp_alerts": _expected(check.fires),
                    }
                    for check in case.checks
                ],
            }
        )
    return {"rule_files": [rules.filename], "evaluation_interval": window(interval), "tests": tests}


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
                checks.setdefault(a.name, []).extend(_expected(items))
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
