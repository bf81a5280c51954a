"""Phase 1 — shadow: concept formation and bindings run, recall does not use them.

    pytest gates -m phase1 --rollout-decision-json out/phase1.json --html out/phase1.html

Watches what shadow mode costs and whether formation is healthy. Memory and CPU are compared
with the baseline replica running phase 0's flags next to the shadow on the same traffic
(twin.py); recall latency with the baseline saved in phase 0. Abort triggers roll back with
--rollout-on-abort=rollback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_rollout import inconclusive
from pytest_rollout.stats import quantile_bounds

from contract import require_no_episodes_lost
from twin import (
    CPU,
    RSS,
    abort_if_overhead_proven_over,
    observe_formation_cpu_share,
    require_overhead_under,
)

if TYPE_CHECKING:
    # types only: the fixture classes load when the gates run, as they would without annotations
    from pytest_rollout import Baseline, Flags, Gate, Phase, Prom

pytestmark = pytest.mark.phase1

FORMATION = "engram_concept_formation_duration_seconds"


def _window(phase: Phase) -> str:
    return f"{int(phase.window_s)}s"


def test_recall_does_not_use_concepts_yet(
    prom: Prom, flags: Flags, phase: Phase, gate: Gate
) -> None:
    w = _window(phase)
    treatment = prom.value(
        f'sum(increase(engram_recall_total{{group="treatment"}}[{w}])) or vector(0)'
    )
    cohort = flags.snapshot().get("blended_recall")
    gate.observe(
        metric="blended recalls in shadow", observed=treatment, threshold=0, unit="queries"
    )
    assert cohort == 0, f"blended_recall is at {cohort} % in shadow mode: set it to 0"
    assert treatment == 0, f"{treatment:.0f} recalls used blended recall during shadow mode"


def test_concepts_and_bindings_are_being_formed(prom: Prom, phase: Phase, gate: Gate) -> None:
    w = _window(phase)
    formed = prom.value(f"sum(increase(engram_concepts_formed_total[{w}]))")
    bound = prom.value(f"sum(increase(engram_bindings_created_total[{w}]))")
    gate.observe(
        metric="concepts formed in window",
        observed=formed,
        threshold=1,
        unit="concepts",
        explanation=f"{formed:.0f} concepts and {bound:.0f} bindings formed in the last {w}",
    )
    assert formed > 0 and bound > 0, (
        f"shadow mode formed {formed:.0f} concepts and {bound:.0f} bindings in {w}: is "
        "concept_formation on and are episodes arriving?"
    )


def test_concept_formation_p99_under_100ms(prom: Prom, phase: Phase, gate: Gate) -> None:
    w = _window(phase)
    query = f"sum by (le) (increase({FORMATION}_bucket[{w}]))"
    # No buckets at all is reported just below, naming the window.
    buckets = sorted((float(s.labels["le"]), s.value) for s in prom.vector(query, allow_empty=True))
    if not buckets or buckets[-1][1] < 1:
        inconclusive(f"no concept formation cycles in the last {w}: {query}")
    bounds = [b for b, _ in buckets]
    cumulative = [round(c) for _, c in buckets]
    est, lower, upper = quantile_bounds(bounds, cumulative, 0.99, alpha=phase.config.alpha / 2)
    limit = phase.threshold("formation_p99_s_max")
    gate.observe(
        metric="formation cycle p99",
        observed=float(est),
        threshold=limit,
        unit="s",
        n={"cycles": int(cumulative[-1])},
        ci=(float(lower), float(upper)),
    )
    if float(upper) >= limit and float(est) < limit:
        inconclusive(
            f"formation p99 {float(est) * 1000:.1f} ms but its upper bound "
            f"{float(upper) * 1000:.1f} ms is not yet under {limit * 1000:.0f} ms: "
            f"only {cumulative[-1]} cycles; keep shadow mode running"
        )
    assert float(upper) < limit, (
        f"formation p99 is {float(est) * 1000:.1f} ms (upper bound {float(upper) * 1000:.1f} "
        f"ms), over {limit * 1000:.0f} ms: tune the formation cycle before the canary"
    )


def test_recall_p99_within_5pct_of_baseline(baseline: Baseline, phase: Phase) -> None:
    baseline.check(
        metrics=("p99 latency",),
        window_s=phase.window_s,
        margin=phase.threshold("recall_p99_regression_pct_max") / 100,
    )


def test_memory_overhead_under_10pct_of_baseline(prom: Prom, phase: Phase, gate: Gate) -> None:
    require_overhead_under(prom, phase, gate, RSS, "rss_overhead_pct_max")


def test_cpu_overhead_under_5pct_of_baseline(prom: Prom, phase: Phase, gate: Gate) -> None:
    observe_formation_cpu_share(prom, phase, gate)
    require_overhead_under(prom, phase, gate, CPU, "cpu_overhead_pct_max")


@pytest.mark.abort
def test_abort_on_concept_formation_errors(prom: Prom, phase: Phase, gate: Gate) -> None:
    errors = prom.value(f"sum(increase(engram_concept_formation_errors_total[{_window(phase)}]))")
    limit = phase.threshold("formation_errors_max")
    gate.observe(metric="formation errors", observed=errors, threshold=limit, unit="errors")
    assert errors <= limit, (
        f"{errors:.0f} concept formation cycles failed: roll back shadow "
        "mode (concept_formation off) and read the service log"
    )


@pytest.mark.abort
def test_abort_when_episode_count_drops(prom: Prom, phase: Phase, gate: Gate) -> None:
    require_no_episodes_lost(prom, phase, gate)


@pytest.mark.abort
def test_abort_when_memory_overhead_exceeds_20pct(prom: Prom, phase: Phase, gate: Gate) -> None:
    abort_if_overhead_proven_over(prom, phase, gate, RSS, "rss_overhead_pct_abort")


@pytest.mark.abort
def test_abort_when_cpu_overhead_exceeds_10pct(prom: Prom, phase: Phase, gate: Gate) -> None:
    abort_if_overhead_proven_over(prom, phase, gate, CPU, "cpu_overhead_pct_abort")
