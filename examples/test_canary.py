"""Example canary gates over the bundled scenarios (python examples/run_scenario.py NAME)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.phase2

LATENCY = "engram_recall_duration_seconds"


def test_cohort_split_matches_the_flag(ab):
    ab.srm("engram_active_spaces", expected={"control": 0.9, "treatment": 0.1}).require()


def test_p99_latency_within_10ms_of_control(ab, phase):
    ab.quantile_delta(LATENCY, q=0.99, margin=phase.threshold("p99_delta_margin_s")).require()


def test_error_rate_within_0_1pp_of_control(ab, phase):
    ab.proportion_delta(
        'engram_recall_total{outcome!="ok"}',
        "engram_recall_total",
        margin=phase.threshold("error_rate_delta_margin"),
    ).require()


@pytest.mark.abort
def test_abort_when_p99_regresses_over_20ms(ab, phase):
    ab.quantile_delta(LATENCY, q=0.99, margin=phase.threshold("p99_delta_abort_s")).abort_if_worse()
