"""The mean of an autocorrelated series (scrape samples), with a batch-means interval.

Samples a scrape apart are strongly autocorrelated (RSS barely moves in a second; a CPU rate
over a few seconds shares most of its range with the next one), so the textbook standard error
s / sqrt(n) claims far more precision than the series holds. Batch means: cut the series into
``batches`` consecutive blocks; once a block is much longer than the correlation time, the block
means are nearly independent, and their spread gives an honest standard error (Student t with
batches - 1 degrees of freedom).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

DEFAULT_BATCHES = 12


@dataclass(frozen=True)
class MeanInterval:
    """The mean of a series and its two-sided ``confidence`` interval."""

    mean: float
    low: float
    high: float
    stderr: float
    batches: int  # blocks the variance came from; < 2 means no interval (NaN bounds)
    n: int  # finite samples


def batch_means(
    values: Any,
    *,
    batches: int = DEFAULT_BATCHES,
    confidence: float = 0.95,
    min_stderr: float = 0.0,
) -> MeanInterval:
    """Mean of ``values`` with a batch-means interval; ``batches=len(values)`` is the naive one.

    ``min_stderr`` floors the standard error (e.g. the quantisation of the samples), so two flat
    series are never "infinitely" precise. Non-finite samples are dropped.
    """
    if not 0 < confidence < 1 or batches < 1:
        raise ValueError(f"need 0 < confidence < 1 and batches >= 1, got {confidence}, {batches}")
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    k = min(batches, x.size)
    if k < 2:
        mean = float(x.mean()) if x.size else math.nan
        return MeanInterval(mean, math.nan, math.nan, math.nan, k, int(x.size))
    edges = np.arange(k + 1) * x.size // k  # k consecutive blocks, sizes differing by <= 1
    means = np.add.reduceat(x, edges[:-1]) / np.diff(edges)
    stderr = max(float(means.std(ddof=1)) / math.sqrt(k), min_stderr)
    half = _t_quantile(0.5 + confidence / 2, k - 1) * stderr
    mean = float(x.mean())
    return MeanInterval(mean, mean - half, mean + half, stderr, k, int(x.size))


@lru_cache(maxsize=64)
def _t_quantile(p: float, df: int) -> float:
    # scipy's ppf costs milliseconds a call; gates and simulations ask for the same few.
    from scipy.stats import t as student_t

    return float(student_t.ppf(p, df))


@dataclass(frozen=True)
class RelativeDelta:
    """(treatment - baseline) / baseline of two concurrent series, in percent, with its interval."""

    treatment: float  # mean
    baseline: float  # mean
    delta_pct: float
    low_pct: float
    high_pct: float
    batches: int
    n: int  # paired samples


def paired_relative_delta(
    treatment: Any,
    baseline: Any,
    *,
    batches: int = DEFAULT_BATCHES,
    confidence: float = 0.95,
    min_stderr: float = 0.0,
) -> RelativeDelta:
    """Relative difference of two series sampled at the same instants (pairs with a non-finite
    side are dropped); the interval is the batch-means interval of the paired differences.

    Pairing removes what both replicas share (load bursts, a busy neighbour on the machine),
    which is most of their variance. The baseline mean is taken as exact when scaling to percent:
    its own error enters the ratio multiplied by the delta itself, negligible near the margins
    of a few percent this is for.
    """
    t = np.asarray(treatment, dtype=np.float64).ravel()
    b = np.asarray(baseline, dtype=np.float64).ravel()
    if t.shape != b.shape:
        raise ValueError(f"paired series differ in length: {t.size} and {b.size}")
    keep = np.isfinite(t) & np.isfinite(b)
    t, b = t[keep], b[keep]
    diff = batch_means(t - b, batches=batches, confidence=confidence, min_stderr=min_stderr)
    base = float(b.mean()) if b.size else math.nan

    def pct(x: float) -> float:
        return x / base * 100.0 if base > 0 and math.isfinite(x) else math.nan

    return RelativeDelta(
        treatment=float(t.mean()) if t.size else math.nan,
        baseline=base,
        delta_pct=pct(diff.mean),
        low_pct=pct(diff.low),
        high_pct=pct(diff.high),
        batches=diff.batches,
        n=diff.n,
    )
