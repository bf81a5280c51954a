"""promtool unit tests for the rollout rule file, generated from the same thresholds as the rules.

Each abort alert gets three cases: a bad series (it fires, with the predicted value in its
summary), a healthy one and one without traffic (it stays quiet).  Each guard gets a case where
it fires and a healthy one where it stays quiet.  Scenarios are built from the threshold itself
(twice the allowed deviation), so a changed threshold changes the test data with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_rollout.monitoring.alerts import Alert, RuleSet
from pytest_rollout.monitoring.phases import conditions, matching
from pytest_rollout.monitoring.promql import window
from pytest_rollout.monitoring.ruletests import (
    BASE_CPU_CORES,
    BASE_QUALITY,
    BASE_RSS,
    FAST_LE,
    Builder,
    Case,
    Check,
    Segment,
    expected,
)
from pytest_rollout.monitoring.settings import MonitoringSettings
from pytest_rollout.monitoring.triggers import recorded_baseline


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
                bad.changes["twin_cpu_per_step"] = per_step
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
        uses_baseline = any(recorded_baseline(s, a.threshold or "") for a in abort)
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
            twin = s.twin_job if alert.labels.get("replica") == "baseline" else None
            job = {"job": twin or s.job}
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
                        "exp_alerts": expected(check.fires),
                    }
                    for check in case.checks
                ],
            }
        )
    return {"rule_files": [rules.filename], "evaluation_interval": window(interval), "tests": tests}
