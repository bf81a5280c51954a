"""What the generated promtool tests are made of: input series, checks and expected alerts.

A scenario is a list of ``Segment``s (steady stretches of steps) that ``Builder`` turns into
promtool's compressed input series; ``expected`` predicts an alert's labels and annotations,
including the value its summary template prints.  The cases themselves come from
ruletests_rollout.py and ruletests_slo.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_rollout.monitoring.alerts import Alert, ValueFormat
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
    twin_cpu_per_step: float | None = None  # the baseline replica's; None: as cpu_per_step
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
                if s.twin_job is not None:  # the baseline replica: base RSS, base CPU
                    twin_cpu = (
                        seg.cpu_per_step if seg.twin_cpu_per_step is None else seg.twin_cpu_per_step
                    )
                    add(f'{m.rss}{{job="{s.twin_job}"}}', BASE_RSS)
                    counter(f'{m.cpu}{{job="{s.twin_job}"}}', 0.0 if first else twin_cpu)
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


def expected(fires: Sequence[tuple[Alert, dict[str, str], float]]) -> list[dict[str, Any]]:
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
