"""The span and level of A/B looks (pytest_rollout.evidence), without a backend."""

from __future__ import annotations

import pytest

from pytest_rollout.evidence import MIN_LOOK_ALPHA, Evidence
from pytest_rollout.instants import rfc3339
from pytest_rollout.outcomes import Inconclusive
from pytest_rollout.stats.spending import obf_look_alpha

DAY = 86400.0
SINCE = 1_764_000_000.0


def _phase(at: float, **kw: object) -> Evidence:
    fields: dict[str, object] = {
        "kind": "phase",
        "at": at,
        "window_s": 3600.0,
        "since": SINCE,
        "since_source": "audit-log",
        "duration_s": 7 * DAY,
        **kw,
    }
    return Evidence(**fields)  # type: ignore[arg-type]


def test_criterion_spends_alpha_on_the_share_of_the_plan_that_ran() -> None:
    ev = _phase(SINCE + 1.75 * DAY)
    look = ev.look(n_treatment=4000, alpha=0.025, sequential=True, min_samples=1000)
    assert look.design == "obf" and not look.sequential
    assert look.information_fraction == pytest.approx(0.25)
    assert look.planned_n == pytest.approx(16000)
    assert look.alpha == pytest.approx(obf_look_alpha(0.025, 0.25))
    assert look.alpha < 0.025 / 10  # strict a quarter of the way in
    # More data later: the level grows toward alpha / 2 per side at the plan's end.
    assert look.alpha_at is not None and look.alpha_at(4.0) == pytest.approx(0.0125)


def test_abort_trigger_uses_a_confidence_sequence_at_full_alpha() -> None:
    ev = _phase(SINCE + DAY, role="abort")
    look = ev.look(n_treatment=500, alpha=0.025, sequential=False, min_samples=1000)
    assert look.design == "confidence-sequence" and look.sequential
    assert look.alpha == 0.025 and look.tuning_n == 1000


def test_tiny_information_fraction_never_passes_zero_alpha() -> None:
    look = _phase(SINCE + 60).look(10, 0.025, True, 1000)
    assert look.alpha == MIN_LOOK_ALPHA


def test_past_the_plan_a_criterion_repeats_the_final_analysis() -> None:
    ev = _phase(SINCE + 9 * DAY)
    assert ev.final_analysis and ev.end == SINCE + 7 * DAY
    assert ev.range_selector() == f"[{int(7 * DAY)}s] offset {int(2 * DAY)}s"
    assert ev.look(50_000, 0.025, True, 1000).information_fraction == pytest.approx(1.0)
    abort = _phase(SINCE + 9 * DAY, role="abort")
    assert not abort.final_analysis and abort.range_selector() == f"[{int(9 * DAY)}s]"


def test_explicit_planned_n_sets_the_information_fraction() -> None:
    ev = _phase(SINCE + DAY, planned_n=100_000)
    look = ev.look(25_000, 0.025, True, 1000)
    assert look.information_fraction == pytest.approx(0.25)
    assert not ev.final_analysis  # a planned n has no planned end to pin


def test_phase_without_a_plan_uses_the_confidence_sequence() -> None:
    look = _phase(SINCE + DAY, duration_s=None).look(5000, 0.025, False, 1000)
    assert look.design == "confidence-sequence" and look.information_fraction is None


def test_window_keeps_the_phase_setting() -> None:
    ev = Evidence(kind="window", at=SINCE, window_s=3600.0)
    assert ev.range_selector() == "[1h]"
    assert ev.look(5000, 0.025, False, 1000).design == "fixed"
    assert ev.look(5000, 0.025, True, 1000).design == "confidence-sequence"
    assert ev.span_text() == "in the last 1h"


def test_progress_gives_the_eta_at_the_current_rate() -> None:
    ev = _phase(SINCE + 1000.0)
    p = ev.progress(n_treatment=500, n_needed=2000)
    assert p["rate_per_s"] == pytest.approx(0.5)
    assert p["eta"] == rfc3339(SINCE + 1000.0 + (2000 - 500) / 0.5)
    assert ev.progress(500, None)["eta"] is None


def test_unknown_start_is_inconclusive_and_says_how_to_set_it() -> None:
    ev = Evidence(kind="phase", at=SINCE, window_s=3600.0, problem="pass --rollout-since TIME")
    with pytest.raises(Inconclusive, match="p99 delta: pass --rollout-since TIME"):
        ev.require_start("p99 delta")
    Evidence(kind="window", at=SINCE, window_s=3600.0).require_start("p99")  # no start needed
