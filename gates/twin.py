"""Phase 1's resource overhead, measured against a concurrent baseline replica (the twin).

The shadow replica runs phase 1's flags, the baseline replica phase 0's; both get the same
traffic (and so the same data growth). Over the phase window, each scrape instant gives one
pair of samples (CPU rate or RSS, shadow and baseline); the overhead is the mean of the paired
differences relative to the baseline's mean, with a batch-means interval for the samples'
autocorrelation (pytest_rollout.stats.batch_means). A window saved in phase 0 instead reads
every byte the service has written since as feature overhead (gates/rollout.toml).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_rollout import inconclusive
from pytest_rollout.stats.batch_means import RelativeDelta, paired_relative_delta

from contract import BASELINE_REPLICA, REPLICA_LABEL, SHADOW_REPLICA

if TYPE_CHECKING:
    # types only: the fixture classes load when the gates run, as they would without annotations
    from pytest_rollout import Gate, Phase, Prom

FORMATION_SUM = "engram_concept_formation_duration_seconds_sum"
_SAMPLES_PER_WINDOW = 120
_MIN_COVERAGE = 0.8  # of the window's scrape instants, each replica must report at this share


@dataclass(frozen=True)
class Resource:
    name: str  # "CPU", "RSS"
    unit: str
    query: str  # PromQL with {selector} and {range}
    quantum: float  # the metric's smallest step (a CPU tick, a page): floors the standard error
    is_rate: bool


CPU = Resource("CPU", "cores", "rate(process_cpu_seconds_total{selector}[{range}])", 0.01, True)
RSS = Resource("RSS", "B", "process_resident_memory_bytes{selector}", 4096.0, False)


def _selector(replica: str) -> str:
    return f'{{{REPLICA_LABEL}="{replica}"}}'


def _step_s(phase: Phase) -> float:
    return max(1.0, phase.window_s / _SAMPLES_PER_WINDOW)


def _replica_samples(
    prom: Prom, phase: Phase, resource: Resource, replica: str
) -> dict[float, float]:
    """Per scrape instant, the mean over the replica's processes; inconclusive when missing."""
    step = _step_s(phase)
    # The rate's range spans 4 steps, so it holds at least two scrapes at any scrape interval
    # up to twice the step.
    query = resource.query.format(selector=_selector(replica), range=f"{int(4 * step)}s")
    series = prom.range(
        query, step_s=step, window_s=phase.window_s, allow_empty=True, allow_nan=True
    )
    per_t: dict[float, list[float]] = {}
    for s in series:
        for t, v in s.points:
            if math.isfinite(v):
                per_t.setdefault(t, []).append(v)
    expected = int(phase.window_s / step)
    if len(per_t) < _MIN_COVERAGE * expected:
        inconclusive(
            f"the {replica} replica reported {resource.name} at {len(per_t)} of {expected} "
            f"instants of the last {int(phase.window_s)}s: {query}. Phase 1 compares the shadow "
            f"with a baseline replica running at the same time: check that both run and are "
            f'scraped with {REPLICA_LABEL}="{SHADOW_REPLICA}"/"{BASELINE_REPLICA}" '
            '(docs/staging.md, "The baseline twin"), then re-run after a full window'
        )
    return {t: sum(vs) / len(vs) for t, vs in per_t.items()}


def twin_overhead(prom: Prom, phase: Phase, resource: Resource) -> RelativeDelta:
    """Shadow against baseline replica over the phase window: relative delta and interval.

    The interval is two-sided at 1 - 2 alpha: its upper bound is the one-sided alpha bound a
    non-inferiority criterion needs, its lower bound the one an abort trigger needs.
    """
    shadow = _replica_samples(prom, phase, resource, SHADOW_REPLICA)
    baseline = _replica_samples(prom, phase, resource, BASELINE_REPLICA)
    both = sorted(set(shadow) & set(baseline))
    # A rate divides the counter's quantum by its range.
    quantum = resource.quantum / (4 * _step_s(phase) if resource.is_rate else 1.0)
    delta = paired_relative_delta(
        [shadow[t] for t in both],
        [baseline[t] for t in both],
        confidence=1 - 2 * phase.config.alpha,
        # Rounding noise of both samples of a pair (uniform: quantum^2 / 12), over the pairs.
        min_stderr=quantum * math.sqrt(2 / 12 / max(len(both), 1)),
    )
    if not (math.isfinite(delta.low_pct) and math.isfinite(delta.high_pct)):
        inconclusive(
            f"{resource.name} of shadow and baseline replicas gives no interval ({delta.n} "
            f"paired samples, baseline mean {delta.baseline}): is the baseline replica idle?"
        )
    return delta


def _record(gate: Gate, resource: Resource, delta: RelativeDelta, limit: float) -> None:
    gate.observe(
        metric=f"{resource.name} overhead vs baseline replica",
        observed=delta.delta_pct,
        threshold=limit,
        unit="%",
        n={SHADOW_REPLICA: delta.n, BASELINE_REPLICA: delta.n},
        ci=(delta.low_pct, delta.high_pct),
        explanation=(
            f"shadow {delta.treatment:.4g} vs baseline replica {delta.baseline:.4g} {resource.unit}"
            f" at the same {delta.n} instants: {delta.delta_pct:+.1f} % (interval "
            f"{delta.low_pct:+.1f} .. {delta.high_pct:+.1f} %, batch means of {delta.batches} "
            "blocks)"
        ),
    )


def require_overhead_under(
    prom: Prom, phase: Phase, gate: Gate, resource: Resource, key: str
) -> None:
    """Criterion: pass once the interval's upper bound is under the limit."""
    limit = phase.threshold(key)
    delta = twin_overhead(prom, phase, resource)
    _record(gate, resource, delta, limit)
    assert delta.low_pct <= limit, (
        f"{resource.name} overhead {delta.delta_pct:+.1f} % against the baseline replica is "
        f"proven over +{limit:g} % (interval {delta.low_pct:+.1f} .. {delta.high_pct:+.1f} %): "
        "shadow mode costs too much; tune concept formation before the canary"
    )
    if delta.high_pct >= limit:
        inconclusive(
            f"{resource.name} overhead {delta.delta_pct:+.1f} % against the baseline replica, "
            f"interval {delta.low_pct:+.1f} .. {delta.high_pct:+.1f} % not yet under +{limit:g} "
            f"% ({key}): keep shadow mode running and re-run with a longer window "
            "(--rollout-window) for a narrower interval"
        )


def abort_if_overhead_proven_over(
    prom: Prom, phase: Phase, gate: Gate, resource: Resource, key: str
) -> None:
    """Abort trigger: fails only on proof, the interval's lower bound over the limit."""
    limit = phase.threshold(key)
    delta = twin_overhead(prom, phase, resource)
    _record(gate, resource, delta, limit)
    assert delta.low_pct <= limit, (
        f"{resource.name} overhead {delta.delta_pct:+.1f} % against the baseline replica is "
        f"proven over +{limit:g} % (interval {delta.low_pct:+.1f} .. {delta.high_pct:+.1f} %): "
        "roll back shadow mode (rollout flags rollback --phase phase1 --phase-state)"
    )


def observe_formation_cpu_share(prom: Prom, phase: Phase, gate: Gate) -> None:
    """Record (not judge) the cost attributed to formation directly: its cycles' time over the
    shadow's CPU in the window. Wall time, so an upper bound of formation's CPU share."""
    w = f"{int(phase.window_s)}s"
    sel = _selector(SHADOW_REPLICA)
    query = f"sum(rate({FORMATION_SUM}{sel}[{w}])) / sum(rate(process_cpu_seconds_total{sel}[{w}]))"
    samples = prom.vector(query, allow_empty=True, allow_nan=True, check_staleness=False)
    share = samples[0].value if samples and math.isfinite(samples[0].value) else None
    gate.extra["formation_cpu_share"] = {
        "share": share,
        "query": query,
        "note": (
            "wall time of concept formation cycles over the shadow's process CPU, an upper "
            "bound of formation's CPU share; an observation, not a criterion"
            if share is not None
            else "no formation cycles in the window (concept_formation off?)"
        ),
    }
