"""Sample ratio mismatch over repeated looks: the sequential form keeps SRM_ALPHA over 1000
nested looks at a growing count, where a chi-square repeated at every look does not, and it still
flags a real 5 % -> 4 % mismatch within a few thousand units. Seeded, vectorised over replicates;
the real ``sample_ratio_mismatch`` confirms every flag the vectorised screen finds."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pytest_rollout.stats.srm import SRM_ALPHA, sample_ratio_mismatch, srm_critical_z

SHARE = 0.05
LOOKS, STEP = 1000, 50  # 1000 looks, 50 new units (first-seen spaces) each: 50k units at the end
TUNING_N = 10_000.0  # units expected by the planned end of the phase
EXPECTED = {"control": 1.0 - SHARE, "treatment": SHARE}


def _nested_treatment_counts(
    rng: np.random.Generator, share: float, reps: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Cumulative treatment units at each look (reps x looks) and the totals per look."""
    treatment = np.cumsum(rng.binomial(STEP, share, size=(reps, LOOKS)), axis=1)
    totals = STEP * np.arange(1, LOOKS + 1, dtype=np.float64)
    return treatment.astype(np.float64), totals


def _first_flag(
    treatment: npt.NDArray[np.float64], totals: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Index of the first look the sequential form flags per replicate (LOOKS if none)."""
    z = np.abs(treatment - totals * SHARE) / np.sqrt(totals * SHARE * (1.0 - SHARE))
    limit = np.array([srm_critical_z(n, 2, tuning_n=TUNING_N) for n in totals])
    flagged = z > limit
    first = np.where(flagged.any(axis=1), flagged.argmax(axis=1), LOOKS)
    for rep in np.flatnonzero(first < LOOKS)[:50]:  # the real function agrees with the screen
        look = int(first[rep])
        n_t, total = treatment[rep, look], totals[look]
        real = sample_ratio_mismatch(
            {"control": total - n_t, "treatment": n_t},
            EXPECTED,
            sequential=True,
            tuning_n=TUNING_N,
        )
        assert real.mismatch, real.explanation
        if look > 0:
            n_t, total = treatment[rep, look - 1], totals[look - 1]
            before = sample_ratio_mismatch(
                {"control": total - n_t, "treatment": n_t},
                EXPECTED,
                sequential=True,
                tuning_n=TUNING_N,
            )
            assert not before.mismatch, before.explanation
    return first


def test_a_correct_split_is_flagged_at_any_of_1000_looks_at_most_srm_alpha() -> None:
    rng = np.random.default_rng(20261130)
    reps = 4000
    treatment, totals = _nested_treatment_counts(rng, SHARE, reps)
    sequential = float(np.mean(_first_flag(treatment, totals) < LOOKS))
    assert sequential <= 0.003  # SRM_ALPHA = 0.001 plus Monte Carlo allowance at 4000 reps
    # The chi-square repeated at every look is what the sequential form replaces.
    from scipy.stats import chi2

    expected_t = totals * SHARE
    stat = (treatment - expected_t) ** 2 / expected_t
    stat += (treatment - expected_t) ** 2 / (totals * (1.0 - SHARE))
    repeated = float(np.mean((chi2.sf(stat, 1) < SRM_ALPHA).any(axis=1)))
    assert repeated > 3 * max(sequential, SRM_ALPHA)


def test_a_5_to_4_percent_mismatch_is_flagged_within_twenty_thousand_units() -> None:
    rng = np.random.default_rng(4)
    reps = 1000
    treatment, totals = _nested_treatment_counts(rng, 0.04, reps)
    first = _first_flag(treatment, totals)
    flagged_units = np.where(first < LOOKS, totals[np.minimum(first, LOOKS - 1)], np.inf)
    assert np.median(flagged_units) <= 12_000
    assert np.mean(flagged_units <= 20_000) >= 0.95


def test_sequential_form_explains_itself_and_keeps_the_chi_square_for_one_look() -> None:
    observed = {"control": 9500.0, "treatment": 400.0}
    fixed = sample_ratio_mismatch(observed, EXPECTED)
    sequential = sample_ratio_mismatch(observed, EXPECTED, sequential=True, tuning_n=TUNING_N)
    assert fixed.mismatch and not fixed.sequential and "chi-square" in fixed.explanation
    assert sequential.sequential and sequential.tuning_n == TUNING_N
    assert "always-valid" in sequential.explanation and "10000 units" in sequential.explanation
    assert sequential.p_value > fixed.p_value  # the price of looking any number of times
    assert sequential.mismatch == (sequential.p_value < SRM_ALPHA)
