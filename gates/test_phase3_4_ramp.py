"""Phases 3 and 4 — ramp: the canary criteria at each cohort step, plus a chaos drill.

    pytest gates -m phase3     # 25 % of spaces
    pytest gates -m phase4     # 50 % of spaces

Every test runs once per step; the step's settings (cohort, window, thresholds) come from
[phases.phase3] / [phases.phase4] of rollout.toml.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pytest

from pytest_rollout import inconclusive

import canary
import drill

if TYPE_CHECKING:
    # types only: the fixture classes load when the gates run, as they would without annotations
    from conftest import Engram

    from pytest_rollout import AB, Flags, Gate, Phase, Prom, Rollout

STEPS = pytest.mark.parametrize(
    "step",
    [
        pytest.param("25pct", marks=pytest.mark.phase3, id="25pct"),
        pytest.param("50pct", marks=pytest.mark.phase4, id="50pct"),
    ],
)

pytestmark = STEPS


def test_cohort_flag_is_at_the_step_percent(
    step: str, flags: Flags, phase: Phase, gate: Gate
) -> None:
    canary.cohort_flag_matches_phase(flags, phase, gate)


def test_at_least_min_samples_queries_per_group(
    step: str, prom: Prom, phase: Phase, rollout: Rollout, gate: Gate, ab: AB
) -> None:
    canary.enough_queries_per_group(prom, phase, rollout, gate, ab)


def test_no_sample_ratio_mismatch_between_cohorts(step: str, ab: AB, phase: Phase) -> None:
    canary.no_sample_ratio_mismatch(ab, phase)


def test_p99_latency_not_worse_than_control_by_10ms(step: str, ab: AB, phase: Phase) -> None:
    canary.p99_latency_within_margin(ab, phase)


def test_p50_latency_not_worse_than_control_by_5ms(step: str, ab: AB, phase: Phase) -> None:
    canary.p50_latency_within_margin(ab, phase)


def test_error_rate_not_worse_than_control_by_0_1pp(step: str, ab: AB, phase: Phase) -> None:
    canary.error_rate_within_margin(ab, phase)


def test_recall_confidence_within_0_05_of_control(step: str, ab: AB, phase: Phase) -> None:
    canary.confidence_within_margin(ab, phase)


@pytest.mark.abort
def test_abort_when_p99_regresses_over_20ms(step: str, ab: AB, phase: Phase) -> None:
    canary.abort_on_p99_regression(ab, phase)


@pytest.mark.abort
def test_abort_when_error_rate_rises_over_0_1pp(step: str, ab: AB, phase: Phase) -> None:
    canary.abort_on_error_rate_rise(ab, phase)


@pytest.mark.abort
def test_abort_when_confidence_drops_over_0_10(step: str, ab: AB, phase: Phase) -> None:
    canary.abort_on_confidence_drop(ab, phase)


# ---------------------------------------------------------------------------------------------
# chaos drill: inject latency into the blended path, see it, roll back, see recovery, lose nothing

PROBE_SPACES = [f"space-{i:04d}" for i in range(200)]
PROBE_QUERY = "what do we remember about the rollout"


def _probe(engram: Engram, spaces: Iterable[str]) -> dict[str, tuple[float, str | None]]:
    """Recall once in each space: {space: (seconds, group the service put it in)}."""
    seen: dict[str, tuple[float, str | None]] = {}
    for space in spaces:
        started = time.perf_counter()
        answer = engram.recall(space, PROBE_QUERY)
        seen[space] = (time.perf_counter() - started, answer.get("group"))
    return seen


def _perform_drill(engram: Engram, flags: Flags, phase: Phase) -> drill.DrillResult:
    """Inject latency into treatment, see it, flag off, time the recovery, count episodes."""
    chaos_s = phase.threshold("chaos_latency_ms") / 1000.0
    rto_s = phase.threshold("rollback_seconds_max")
    cohort = phase.config.flags.get(canary.COHORT_FLAG)
    if cohort is None or flags.snapshot().get(canary.COHORT_FLAG) != cohort:
        inconclusive(
            f"{canary.COHORT_FLAG} is not at the step's {cohort} %: set the step's "
            "flags before the drill (see the runbook)"
        )
    before = engram.integrity()
    treatment = [
        s for s, (_, group) in _probe(engram, PROBE_SPACES).items() if group == "treatment"
    ][:10]
    if not treatment:
        inconclusive(
            f"none of {len(PROBE_SPACES)} probe spaces is in the treatment cohort: "
            "the drill has nothing to inject into"
        )
    baseline = {s: t for s, (t, _) in _probe(engram, treatment).items()}
    engram.chaos(latency_ms=chaos_s * 1000, error_rate=0.0, duration_s=120)
    try:
        injected = {s: t for s, (t, _) in _probe(engram, treatment).items()}
        slow = [s for s in treatment if injected[s] >= chaos_s * 0.9]
        if not slow:
            inconclusive(
                "chaos latency did not reach the treatment path: the drill cannot "
                "show a recovery; check the chaos API"
            )
        rollback_started = time.monotonic()
        flags.set_many({canary.COHORT_FLAG: 0}, reason=f"{phase.key} chaos drill: roll back")
        recovered_after = None
        while time.monotonic() - rollback_started < rto_s * 3:
            if max(t for t, _ in _probe(engram, slow).values()) < chaos_s * 0.5:
                recovered_after = time.monotonic() - rollback_started
                break
            time.sleep(0.1)
    finally:
        engram.clear_chaos()
        flags.set_many({canary.COHORT_FLAG: cohort}, reason=f"{phase.key} chaos drill: restore")
    after = engram.integrity()
    lost = {
        s: v["episodes"] - after["spaces"].get(s, {"episodes": 0})["episodes"]
        for s, v in before["spaces"].items()
        if after["spaces"].get(s, {"episodes": 0})["episodes"] < v["episodes"]
    }
    return drill.DrillResult(
        recovered_s=recovered_after,
        episodes_lost=lost,
        slow_probes=len(slow),
        injected_ms=statistics.median(injected[s] for s in slow) * 1000,
        before_ms=statistics.median(baseline[s] for s in slow) * 1000,
    )


@pytest.mark.abort
def test_abort_when_chaos_drill_does_not_recover(
    step: str, engram: Engram, flags: Flags, phase: Phase, gate: Gate, rollout: Rollout
) -> None:
    """Once per phase: inject latency into treatment, flag off, recovery within the RTO, no loss.

    Later runs of the phase judge the recorded drill again (gates/drill.py says why).
    """
    rto_s = phase.threshold("rollback_seconds_max")
    result = drill.recorded_in_phase(rollout, phase.key)
    when = "now"
    if result is None:
        result = drill.record(rollout, phase.key, _perform_drill(engram, flags, phase))
    else:
        when = f"at {result.performed_at} (audit id {result.change_id}), once per phase"
    recovered_after, lost = result.recovered_s, result.episodes_lost
    gate.observe(
        metric="rollback to recovered latency",
        observed=recovered_after,
        threshold=rto_s,
        unit="s",
        explanation=f"drill {when}: {result.slow_probes} treatment probe spaces slowed by chaos "
        f"(median {result.injected_ms:.0f} ms, before {result.before_ms:.1f} ms); recovered "
        f"{'never' if recovered_after is None else f'{recovered_after:.2f} s'} after "
        f"the flag went off",
    )
    assert not lost, f"episodes lost during the drill: {lost} — restore from backup (rollback.md)"
    assert recovered_after is not None and recovered_after <= rto_s, (
        f"treatment latency did not recover within {rto_s:g} s of the rollback "
        f"(took {recovered_after}); the flag rollback path is too slow — stop the ramp"
    )
