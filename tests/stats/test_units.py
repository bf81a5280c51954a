"""Plain unit tests of the statistics: known values, edge cases, explanations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_rollout import stats
from tests.stats.simulate import BOUNDS


def test_point_estimate_matches_histogram_quantile_interpolation() -> None:
    bounds = [0.1, 0.2, 0.4, math.inf]
    cum = [10, 60, 100, 100]
    # rank 50 lies in (0.1, 0.2]: 0.1 + 0.1 * (50 - 10) / 50 = 0.18, as histogram_quantile says
    est = stats.quantile_estimate(bounds, cum, 0.5)
    assert est.estimate == pytest.approx(0.18)
    assert est.ci[0] <= 0.18 <= est.ci[1]
    assert est.resolution == pytest.approx(0.1)
    assert est.n == 100


def test_upper_bound_in_inf_bucket_is_infinite_and_undecided() -> None:
    bounds = [0.1, 0.2, math.inf]
    cum = [900, 990, 1000]  # 1 % of the data above the last finite bound
    est = stats.quantile_estimate(bounds, cum, 0.99)
    assert est.estimate == pytest.approx(0.2)
    assert math.isinf(est.ci[1])
    result = stats.compare_quantiles(bounds, cum, cum, 0.99, 0.010)
    assert result.verdict is stats.Verdict.UNDECIDED
    assert result.n_needed is None


def test_histogram_needs_an_inf_bucket_and_increasing_bounds() -> None:
    with pytest.raises(ValueError, match="Inf"):
        stats.quantile_estimate([0.1, 0.2], [1, 2], 0.5)
    with pytest.raises(ValueError, match="increasing"):
        stats.quantile_estimate([0.2, 0.1, math.inf], [1, 2, 3], 0.5)


def test_non_monotone_cumulative_counts_are_repaired() -> None:
    est = stats.quantile_estimate([0.1, 0.2, math.inf], [50, 49, 100], 0.25)
    assert 0 < est.estimate <= 0.1


def test_wilson_interval_known_value() -> None:
    # Wilson 95 % for 0 of 100: (0, 0.0370) -- the textbook value.
    lo, hi = stats.wilson_interval(0, 100, 1.959964)
    assert lo == 0.0
    assert hi == pytest.approx(0.0370, abs=5e-4)


def test_miettinen_nurminen_interval_known_value() -> None:
    # Newcombe (1998) table II example (a): 56/70 vs 48/80 -> difference 0.2, 95 % CI
    # 0.0528 to 0.3382 (method 8, Miettinen-Nurminen score). The gates take the outer bound of
    # this and the skewness-corrected one, which here (near-symmetric rates) differ by < 0.01.
    d, lo, hi = stats.proportion_delta_bounds(48, 80, 56, 70, skewness="none")
    assert float(d) == pytest.approx(0.2)
    assert float(lo) == pytest.approx(0.0528, abs=5e-4)
    assert float(hi) == pytest.approx(0.3382, abs=5e-4)
    gate = stats.proportion_delta(48, 80, 56, 70, alpha=0.025)
    assert gate.ci == pytest.approx((float(lo), float(hi)), abs=0.01)


def test_welch_interval_matches_scipy() -> None:
    from scipy.stats import ttest_ind

    rng = np.random.default_rng(7)
    a, b = rng.normal(0.7, 0.1, 300), rng.normal(0.68, 0.2, 50)
    d = stats.mean_delta(stats.moments(a), stats.moments(b), alpha=0.025)
    ci = ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert d.ci == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_histogram_moments_use_the_exact_sum() -> None:
    bounds = [0.25, 0.5, 0.75, 1.0, math.inf]
    m = stats.histogram_moments(bounds, [0, 10, 30, 40, 40], total_sum=24.0)
    assert m.mean == pytest.approx(0.6)
    assert m.n == 40
    assert m.variance > 0


def test_mann_whitney_binned_matches_scipy_with_ties() -> None:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, 200)
    y = rng.integers(1, 7, 150)
    c = np.bincount(x, minlength=7)
    t = np.bincount(y, minlength=7)
    ours = stats.mann_whitney_binned(c, t)
    ref = mannwhitneyu(y, x, alternative="two-sided", method="asymptotic")
    assert ours.u == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-6)


def test_srm_detects_a_broken_split_and_accepts_a_good_one() -> None:
    broken = stats.sample_ratio_mismatch(
        {"control": 9500, "treatment": 300}, {"control": 0.95, "treatment": 0.05}
    )
    assert broken.mismatch and broken.p_value < 1e-6
    assert "mismatch" in broken.explanation
    fine = stats.sample_ratio_mismatch(
        {"control": 9510, "treatment": 490}, {"control": 0.95, "treatment": 0.05}
    )
    assert not fine.mismatch and fine.p_value > 0.001


def test_holm_step_down() -> None:
    h = stats.holm([0.01, 0.04, 0.03], alpha=0.05)
    assert h.adjusted == pytest.approx((0.03, 0.06, 0.06))
    assert h.rejected == (True, False, False)


def test_sequential_multiplier_exceeds_z_and_grows_slowly() -> None:
    z = stats.critical_value(0.025, 1000)
    m1 = stats.critical_value(0.025, 1000, sequential=True, tuning_n=1000)
    m2 = stats.critical_value(0.025, 100_000, sequential=True, tuning_n=1000)
    assert z == pytest.approx(1.959964, abs=1e-5)
    assert z < m1 < m2 < 2 * m1


def test_required_sample_size_matches_the_textbook_formula() -> None:
    # Two groups, sd 1, margin 0.2, one-sided 0.025, power 0.8: 2 * (1.96 + 0.8416)^2 / 0.04
    size = stats.required_sample_size(1.0, 1.0, 0.2, alpha=0.025, power=0.8)
    assert size.n_treatment == pytest.approx(2 * (1.959964 + 0.841621) ** 2 / 0.04, abs=1)
    assert stats.power(1.0, 1.0, size.n_control, size.n_treatment, 0.2) >= 0.8


def test_required_sample_size_refuses_equivalence_for_rates() -> None:
    # rates= searches the upper bound alone: asked for a two-sided equivalence it used to return
    # the one-sided n, with less power than the explanation claimed
    with pytest.raises(ValueError, match="two_sided_equivalence.*rates"):
        stats.required_sample_size(
            0.0, 0.0, 0.001, rates=(0.002, 0.002), two_sided_equivalence=True
        )


def test_noninferiority_verdicts_and_explanation() -> None:
    rng = np.random.default_rng(11)
    from tests.stats.simulate import bucket_probs

    probs = bucket_probs(0.006, 0.6)
    c = np.cumsum(rng.multinomial(40_000, probs))
    t = np.cumsum(rng.multinomial(4_000, probs))
    ok = stats.compare_quantiles(BOUNDS, c, t, 0.99, 0.010, min_n=1000)
    assert ok.verdict is stats.Verdict.WITHIN
    assert ok.p_within < 0.025 and ok.p_value == ok.p_within
    assert "within the +10.0 ms margin" in ok.explanation
    assert "95 % interval" in ok.explanation
    slow = np.cumsum(rng.multinomial(4_000, bucket_probs(0.006, 0.6, shift=0.030)))
    bad = stats.compare_quantiles(BOUNDS, c, slow, 0.99, 0.010, min_n=1000)
    assert bad.verdict is stats.Verdict.BEYOND
    assert bad.p_beyond < 0.025 and "beyond" in bad.explanation
    few = stats.compare_quantiles(
        BOUNDS, c, np.cumsum(rng.multinomial(300, probs)), 0.99, 0.010, min_n=1000
    )
    assert few.verdict is stats.Verdict.UNDECIDED
    assert few.n_needed is not None and few.n_needed["treatment"] >= 1000
    assert "need 1000 per group" in few.explanation


def test_undecided_reports_the_n_it_still_needs() -> None:
    r = stats.compare_proportions(20, 20_000, 3, 1_500, 0.001, min_n=1000)
    assert r.verdict is stats.Verdict.UNDECIDED
    assert r.n_needed is not None and r.n_needed["treatment"] > 1_500
    assert f"{r.n_needed['treatment']} treatment" in r.explanation


def test_equivalence_is_two_sided() -> None:
    c = stats.Moments(0.70, 0.04, 20_000)
    assert (
        stats.compare_means(c, stats.Moments(0.69, 0.04, 5_000), 0.05, worse="either").verdict
        is stats.Verdict.WITHIN
    )
    assert (
        stats.compare_means(c, stats.Moments(0.80, 0.04, 5_000), 0.05, worse="either").verdict
        is stats.Verdict.BEYOND
    )
    assert (
        stats.compare_means(c, stats.Moments(0.60, 0.04, 5_000), 0.05, worse="lower").verdict
        is stats.Verdict.BEYOND
    )


def test_p_values_agree_with_the_verdict() -> None:
    r = stats.compare_proportions(40, 40_000, 2, 4_000, 0.002)
    assert (r.p_within < r.delta.alpha) == (r.verdict is stats.Verdict.WITHIN)


@pytest.mark.parametrize("worse", ["up", ""])
def test_bad_direction_is_rejected(worse: str) -> None:
    with pytest.raises(ValueError, match="worse"):
        stats.compare_proportions(1, 100, 1, 100, 0.01, worse=worse)
