"""Checks shared by the canary (phase 2) and the ramp steps (phases 3 and 4).

Each function is one success criterion or abort trigger over the A/B comparison of treatment
(blended recall on) against control; the test modules give them names and phase markers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_rollout import inconclusive

if TYPE_CHECKING:
    # types only: the fixture classes load when the gates run, as they would without annotations
    from pytest_rollout import AB, Flags, Gate, Phase, Prom, Rollout

LATENCY = "engram_recall_duration_seconds"
CONFIDENCE = "engram_recall_confidence"
ERRORS = 'engram_recall_total{outcome!="ok"}'
REQUESTS = "engram_recall_total"
COHORT_FLAG = "blended_recall"


def cohort_flag_matches_phase(flags: Flags, phase: Phase, gate: Gate) -> None:
    expected = phase.config.flags.get(COHORT_FLAG)
    if expected is None:
        inconclusive(f"[phases.{phase.key}.flags] has no {COHORT_FLAG}: nothing to compare")
    actual = flags.snapshot().get(COHORT_FLAG)
    gate.observe(
        metric=f"{COHORT_FLAG} cohort percent", observed=actual, threshold=expected, unit="%"
    )
    assert actual == expected, (
        f"{COHORT_FLAG} is at {actual} % but {phase.key} runs at {expected} %: set it with "
        f"`rollout flags cohort {COHORT_FLAG} {expected:g} --reason '{phase.key}'` and re-run"
    )


def enough_queries_per_group(
    prom: Prom, phase: Phase, rollout: Rollout, gate: Gate, ab: AB
) -> None:
    # The same span the A/B gates judge: since the phase start, or the sliding window.
    cfg = rollout.config
    ab.evidence.require_start("recall queries per group")
    span = ab.evidence.span_text()
    query = f"sum by ({cfg.group_label}) (increase({REQUESTS}{ab.evidence.range_selector()}))"
    # No series means no queries yet: "too few per group" below says so with the numbers.
    counts = {s.labels.get(cfg.group_label): s.value for s in prom.vector(query, allow_empty=True)}
    n = {g: int(counts.get(g, 0)) for g in (cfg.control, cfg.treatment)}
    gate.observe(
        metric="recall queries per group",
        observed=min(n.values()),
        threshold=phase.config.min_samples,
        unit="queries",
        n=n,
    )
    short = {g: c for g, c in n.items() if c < phase.config.min_samples}
    if short:
        inconclusive(
            f"too few queries {span}: {short} (need "
            f"{phase.config.min_samples} per group); keep the phase running and re-run"
        )


def no_sample_ratio_mismatch(ab: AB, phase: Phase) -> None:
    percent = phase.config.cohort_percent
    if percent is None:
        inconclusive(f"[phases.{phase.key}] has no cohort_percent: cannot check the split")
    share = percent / 100.0
    # First-seen spaces per group: the randomization unit, counted once per process, so real
    # activity effects (a cohort making more requests) cannot look like broken assignment.
    ab.srm(
        "engram_cohort_assignments_total", expected={"control": 1 - share, "treatment": share}
    ).require()


def p99_latency_within_margin(ab: AB, phase: Phase) -> None:
    ab.quantile_delta(LATENCY, q=0.99, margin=phase.threshold("p99_delta_margin_s")).require()


def p50_latency_within_margin(ab: AB, phase: Phase) -> None:
    ab.quantile_delta(LATENCY, q=0.50, margin=phase.threshold("p50_delta_margin_s")).require()


def error_rate_within_margin(ab: AB, phase: Phase) -> None:
    ab.proportion_delta(
        ERRORS, REQUESTS, margin=phase.threshold("error_rate_delta_margin")
    ).require()


def confidence_within_margin(ab: AB, phase: Phase) -> None:
    ab.mean_delta(
        CONFIDENCE, margin=phase.threshold("confidence_delta_margin"), worse="either"
    ).require()


def abort_on_p99_regression(ab: AB, phase: Phase) -> None:
    ab.quantile_delta(LATENCY, q=0.99, margin=phase.threshold("p99_delta_abort_s")).abort_if_worse()


def abort_on_error_rate_rise(ab: AB, phase: Phase) -> None:
    ab.proportion_delta(
        ERRORS, REQUESTS, margin=phase.threshold("error_rate_delta_abort")
    ).abort_if_worse()


def abort_on_confidence_drop(ab: AB, phase: Phase) -> None:
    ab.mean_delta(
        CONFIDENCE, margin=phase.threshold("confidence_drop_abort"), worse="lower"
    ).abort_if_worse()
