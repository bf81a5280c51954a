"""Batch means on autocorrelated samples: honest coverage where the naive interval is far too narrow."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from pytest_rollout.stats.batch_means import batch_means, paired_relative_delta

PHI = 0.9  # AR(1) coefficient: integrated correlation time (1 + phi) / (1 - phi) = 19 samples


def _ar1(rng: np.random.Generator, shape: tuple[int, int], mean: float = 0.0) -> np.ndarray:
    """Stationary AR(1) rows: x_t = phi x_(t-1) + e_t, started from the stationary law."""
    noise = rng.standard_normal(shape)
    noise[:, 0] /= math.sqrt(1 - PHI**2)
    out: np.ndarray = lfilter([1.0], [1.0, -PHI], noise, axis=1) + mean
    return out


def _coverage(samples: np.ndarray, batches: int | None) -> float:
    covered = 0
    for row in samples:
        interval = batch_means(row, batches=batches or row.size, confidence=0.95)
        covered += interval.low <= 0.0 <= interval.high
    return covered / len(samples)


def test_batch_means_interval_covers_at_the_nominal_rate_and_the_naive_one_does_not() -> None:
    samples = _ar1(np.random.default_rng(17), (400, 1200))
    batched = _coverage(samples, batches=12)  # blocks of 100 samples, 5x the correlation time
    naive = _coverage(samples, batches=None)  # blocks of one sample: s / sqrt(n)
    # 400 runs: a binomial sd of 1.1 points around 95 %; batch-means' own small-block bias is
    # about a point.
    assert 0.91 <= batched <= 0.98, batched
    assert naive < 0.6, naive


def test_too_few_samples_give_no_interval() -> None:
    assert math.isnan(batch_means([1.0]).low)
    assert batch_means([]).n == 0
    with pytest.raises(ValueError, match="confidence"):
        batch_means([1.0, 2.0], confidence=1.5)


def test_min_stderr_floors_a_flat_series() -> None:
    flat = batch_means(np.full(120, 5.0), min_stderr=0.01)
    assert flat.stderr == 0.01 and flat.low < 5.0 < flat.high


def test_paired_relative_delta_removes_the_shared_noise() -> None:
    rng = np.random.default_rng(3)
    shared = _ar1(rng, (1, 1200), mean=100.0)[0] * 5  # load both replicas see
    baseline = shared + rng.standard_normal(1200)
    treatment = shared * 1.03 + rng.standard_normal(1200)  # 3 % overhead
    delta = paired_relative_delta(treatment, baseline, confidence=0.9)
    assert delta.low_pct < 3.0 < delta.high_pct
    assert delta.high_pct - delta.low_pct < 2.0  # unpaired, the shared noise alone is ~+-5 %
    assert delta.n == 1200 and delta.batches == 12


def test_paired_relative_delta_drops_unpaired_points_and_refuses_unequal_lengths() -> None:
    delta = paired_relative_delta([1.0, math.nan, 1.1, 1.2], [1.0, 1.0, math.nan, 1.0])
    assert delta.n == 2 and delta.delta_pct == pytest.approx(10.0)
    with pytest.raises(ValueError, match="length"):
        paired_relative_delta([1.0], [1.0, 2.0])
