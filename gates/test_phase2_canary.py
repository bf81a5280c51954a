"""Phase 2 — canary: blended recall for a small cohort of memory spaces, compared with control.

    pytest gates -m phase2 --rollout-decision-json out/phase2.json --html out/phase2.html

Criteria hold the canary until proven; abort triggers roll it back (--rollout-on-abort=rollback).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import canary

if TYPE_CHECKING:
    # types only: the fixture classes load when the gates run, as they would without annotations
    from pytest_rollout import AB, Flags, Gate, Phase, Prom, Rollout

pytestmark = pytest.mark.phase2


def test_cohort_flag_is_at_the_canary_percent(flags: Flags, phase: Phase, gate: Gate) -> None:
    canary.cohort_flag_matches_phase(flags, phase, gate)


def test_at_least_min_samples_queries_per_group(
    prom: Prom, phase: Phase, rollout: Rollout, gate: Gate, ab: AB
) -> None:
    canary.enough_queries_per_group(prom, phase, rollout, gate, ab)


def test_no_sample_ratio_mismatch_between_cohorts(ab: AB, phase: Phase) -> None:
    canary.no_sample_ratio_mismatch(ab, phase)


def test_p99_latency_not_worse_than_control_by_10ms(ab: AB, phase: Phase) -> None:
    canary.p99_latency_within_margin(ab, phase)


def test_p50_latency_not_worse_than_control_by_5ms(ab: AB, phase: Phase) -> None:
    canary.p50_latency_within_margin(ab, phase)


def test_error_rate_not_worse_than_control_by_0_1pp(ab: AB, phase: Phase) -> None:
    canary.error_rate_within_margin(ab, phase)


def test_recall_confidence_within_0_05_of_control(ab: AB, phase: Phase) -> None:
    canary.confidence_within_margin(ab, phase)


@pytest.mark.abort
def test_abort_when_p99_regresses_over_20ms(ab: AB, phase: Phase) -> None:
    canary.abort_on_p99_regression(ab, phase)


@pytest.mark.abort
def test_abort_when_error_rate_rises_over_0_1pp(ab: AB, phase: Phase) -> None:
    canary.abort_on_error_rate_rise(ab, phase)


@pytest.mark.abort
def test_abort_when_confidence_drops_over_0_10(ab: AB, phase: Phase) -> None:
    canary.abort_on_confidence_drop(ab, phase)
