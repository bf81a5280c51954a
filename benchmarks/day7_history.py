"""Seven days of 15 s-scrape history for the staging metric contract, as OpenMetrics text.

A healthy canary at the end of phase 2: control 60 req/s, treatment 5 % of spaces (3.2 req/s),
a diurnal swing of +-35 %, error 0.1 %, timeouts 0.02 %; treatment latency 1 ms slower at the
median. One hour of phase 1 (flag ``blended_recall`` at 0, no treatment traffic) precedes the
phase so the flag gauge shows the change to phase 2's values. Every series is one target
(``job="engram"``, ``instance="127.0.0.1:8080"``), like the staging stack's scrape config.

Counters are cumulative and monotone; histograms are cumulative by ``le`` and over time (the
per-step bucket counts are multinomial draws from the latency law's bucket probabilities).
Everything is generated as numpy arrays and rendered per day, so a day's text can go to
``promtool`` while the next is rendered.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from staging.metrics import CONFIDENCE_BUCKETS, LATENCY_BUCKETS, RESULT_BUCKETS

SCRAPE_S = 15
DAY_S = 86_400
PHASE_S = 7 * DAY_S
PRELUDE_S = 3_600  # phase 1 before the canary began: the flag gauge's change is in the data
END = 1_794_999_990  # 2026-11-18T11:06:30Z, a multiple of the scrape interval: reproducible runs
PHASE_START = END - PHASE_S
FIRST = PHASE_START - PRELUDE_S
LABELS = {"job": "engram", "instance": "127.0.0.1:8080"}

CONTROL_RPS = 60.0
TREATMENT_SHARE = 0.05
TREATMENT_RPS = CONTROL_RPS * TREATMENT_SHARE / (1 - TREATMENT_SHARE)
ERROR_RATE = 0.001
TIMEOUT_RATE = 0.0002
SPACES = 2_000
NEW_SPACES_PER_S = 0.05
# The process metrics carry the replica as a target label (gates/contract.py REPLICA_LABEL).
REPLICA = {"replica": "shadow"}

PHASE1_FLAGS = {
    "dual_memory_types": 1.0,
    "concept_formation": 1.0,
    "blended_recall": 0.0,
    "semantic_weight": 0.3,
}
PHASE2_FLAGS = {**PHASE1_FLAGS, "blended_recall": 5.0}

Array = NDArray[Any]  # counts (int) and values (float) alike


@dataclass
class Series:
    family: str
    kind: str  # gauge | counter | histogram
    name: str  # sample name (with _total, _bucket, ...)
    labels: dict[str, str]
    values: Array
    integer: bool


def _label_text(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _lognormal_bucket_p(median: float, sigma: float, bounds: tuple[float, ...]) -> Array:
    """Probability of each (non-cumulative) bucket for a lognormal latency law."""
    finite = np.array([b for b in bounds if math.isfinite(b)])
    z = (np.log(finite) - math.log(median)) / (sigma * math.sqrt(2))
    cdf = 0.5 * (1 + np.array([math.erf(v) for v in z]))
    return np.diff(np.concatenate(([0.0], cdf, [1.0])))


def _empirical_bucket_p(samples: Array, bounds: tuple[float, ...]) -> Array:
    edges = np.concatenate(([-np.inf], [b for b in bounds if math.isfinite(b)], [np.inf]))
    counts: Array = np.histogram(samples, bins=edges)[0].astype(float)
    return counts / float(counts.sum())


class History:
    """All series of the week, as arrays over ``times``."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.times = np.arange(FIRST, END + 1, SCRAPE_S, dtype=np.int64)
        self.in_phase = self.times >= PHASE_START
        self.series: list[Series] = []
        self._build()

    def _add(
        self,
        family: str,
        kind: str,
        name: str,
        labels: dict[str, str],
        values: Array,
        integer: bool = False,
    ) -> None:
        self.series.append(Series(family, kind, name, {**LABELS, **labels}, values, integer))

    def _counter(self, family: str, labels: dict[str, str], increments: Array) -> None:
        self._add(family, "counter", f"{family}_total", labels, np.cumsum(increments), True)

    def _histogram(
        self,
        family: str,
        labels: dict[str, str],
        n: NDArray[np.int64],
        p: Array,
        bounds: tuple[float, ...],
        mean: float,
    ) -> None:
        per_step = self.rng.multinomial(n, p)  # (steps, buckets), non-cumulative
        cumulative = np.cumsum(np.cumsum(per_step, axis=1), axis=0)
        all_bounds = [*[b for b in bounds if math.isfinite(b)], math.inf]
        for j, bound in enumerate(all_bounds):
            self._add(
                family,
                "histogram",
                f"{family}_bucket",
                {**labels, "le": _le(bound)},
                cumulative[:, j].astype(float),
                True,
            )
        # The sum of n positive observations: n x mean, jittered, never decreasing.
        sums = n * mean * self.rng.uniform(0.97, 1.03, size=n.shape)
        self._add(family, "histogram", f"{family}_sum", labels, np.cumsum(sums))
        self._add(family, "histogram", f"{family}_count", labels, cumulative[:, -1] * 1.0, True)

    def _build(self) -> None:
        rng, t = self.rng, self.times
        steps = len(t)
        diurnal = 1 + 0.35 * np.sin(2 * np.pi * (t % DAY_S) / DAY_S)
        rates = {
            "control": CONTROL_RPS * diurnal,
            "treatment": TREATMENT_RPS * diurnal * self.in_phase,
        }
        latency = {"control": ("episodic", 0.006), "treatment": ("blended", 0.007)}
        confidence = {"control": 0.62, "treatment": 0.64}
        result_p = np.array([0.01, 0.02, 0.03, 0.04, 0.90, 0.0, 0.0, 0.0, 0.0, 0.0])
        for group, rate in rates.items():
            n = rng.poisson(rate * SCRAPE_S)
            mode, median = latency[group]
            p = _lognormal_bucket_p(median, 0.5, LATENCY_BUCKETS)
            self._histogram(
                "engram_recall_duration_seconds",
                {"group": group, "mode": mode},
                n,
                p,
                LATENCY_BUCKETS,
                median * math.exp(0.125),
            )
            errors = rng.binomial(n, ERROR_RATE)
            timeouts = rng.binomial(n - errors, TIMEOUT_RATE)
            for outcome, inc in (("ok", n - errors - timeouts), ("error", errors)):
                self._counter("engram_recall", {"group": group, "outcome": outcome}, inc)
            self._counter("engram_recall", {"group": group, "outcome": "timeout"}, timeouts)
            a = 8.0
            b = a * (1 - confidence[group]) / confidence[group]
            conf_p = _empirical_bucket_p(rng.beta(a, b, size=200_000), CONFIDENCE_BUCKETS)
            self._histogram(
                "engram_recall_confidence", {"group": group}, n, conf_p, CONFIDENCE_BUCKETS, 0.62
            )
            self._histogram(
                "engram_recall_results", {"group": group}, n, result_p, RESULT_BUCKETS, 4.6
            )
            share = TREATMENT_SHARE if group == "treatment" else 1 - TREATMENT_SHARE
            # First-seen spaces per group (the SRM unit): new spaces arrive at a steady rate.
            new_spaces = rng.poisson(NEW_SPACES_PER_S * share * SCRAPE_S * (rate > 0))
            self._counter("engram_cohort_assignments", {"group": group}, new_spaces)
            active = rng.poisson(SPACES * share * (0.6 + 0.4 * diurnal / 1.35))
            self._add("engram_active_spaces", "gauge", "engram_active_spaces", {"group": group},
                      active * (rate > 0), True)  # fmt: skip
        writes = rng.poisson(0.07 * CONTROL_RPS * diurnal * SCRAPE_S)
        episodes = 2_000_000 + np.cumsum(writes)
        formed = rng.poisson(0.5 * SCRAPE_S, size=steps)
        self._add("engram_episodes", "gauge", "engram_episodes", {}, episodes * 1.0, True)
        self._add("engram_concepts", "gauge", "engram_concepts", {},
                  50_000 + np.cumsum(formed) * 1.0, True)  # fmt: skip
        self._add("engram_bindings", "gauge", "engram_bindings", {}, episodes * 1.5, True)
        self._add("engram_concept_coherence", "gauge", "engram_concept_coherence", {},
                  0.8 + 0.02 * rng.standard_normal(steps))  # fmt: skip
        self._counter("engram_concepts_formed", {}, formed)
        self._counter("engram_concept_formation_errors", {}, rng.poisson(0.001 * SCRAPE_S, steps))
        self._counter("engram_bindings_created", {}, formed * 12)
        self._counter(
            "engram_semantic_pathway_timeouts",
            {},
            rng.poisson(rates["treatment"] * SCRAPE_S * 2e-4),
        )
        cycles = rng.poisson(2 * SCRAPE_S / 30, size=steps)  # formation every 30 s, 2 spaces
        self._histogram(
            "engram_concept_formation_duration_seconds",
            {},
            cycles,
            _lognormal_bucket_p(0.04, 0.6, LATENCY_BUCKETS),
            LATENCY_BUCKETS,
            0.048,
        )
        for flag in PHASE2_FLAGS:
            value = np.where(self.in_phase, PHASE2_FLAGS[flag], PHASE1_FLAGS[flag])
            self._add("engram_feature_flag", "gauge", "engram_feature_flag", {"flag": flag}, value)
        rss = 450e6 + 40e6 * (t - FIRST) / PHASE_S + 5e6 * rng.standard_normal(steps)
        self._add("process_resident_memory_bytes", "gauge", "process_resident_memory_bytes", REPLICA,
                  np.round(rss), True)  # fmt: skip
        self._add("process_virtual_memory_bytes", "gauge", "process_virtual_memory_bytes", REPLICA,
                  np.round(rss * 2.4), True)  # fmt: skip
        self._counter("process_cpu_seconds", REPLICA, rng.gamma(50, 0.35 * SCRAPE_S / 50, steps))
        self._add("process_open_fds", "gauge", "process_open_fds", REPLICA,
                  rng.integers(40, 60, steps) * 1.0, True)  # fmt: skip
        self._add("process_start_time_seconds", "gauge", "process_start_time_seconds", REPLICA,
                  np.full(steps, float(FIRST - 3600)), True)  # fmt: skip
        self._add("up", "gauge", "up", {}, np.ones(steps), True)

    @property
    def sample_count(self) -> int:
        return len(self.series) * len(self.times)

    def chunks(self, chunk_s: int = DAY_S) -> Iterator[tuple[int, int, str]]:
        """``(first, last, text)`` per chunk of time: OpenMetrics documents ending in # EOF."""
        # Edges on multiples of chunk_s in unix time: promtool cuts 2 h blocks on those too, so
        # no two chunks write overlapping blocks.
        edges = [FIRST, *range((FIRST // chunk_s + 1) * chunk_s, END + 1, chunk_s)]
        for i, lo in enumerate(edges):
            hi = edges[i + 1] if i + 1 < len(edges) else END + 1
            mask = (self.times >= lo) & (self.times < hi)
            if not mask.any():
                continue
            yield lo, hi, self.render(mask)

    def render(self, mask: NDArray[np.bool_]) -> str:
        stamps = [f" {s}" for s in self.times[mask].tolist()]
        out: list[str] = []
        declared: set[str] = set()
        by_family: dict[str, list[Series]] = {}
        for s in self.series:
            by_family.setdefault(s.family, []).append(s)
        for family, members in by_family.items():
            if family not in declared:
                out.append(f"# TYPE {family} {members[0].kind}")
                declared.add(family)
            for s in members:
                prefix = s.name + _label_text(s.labels) + " "
                vals = s.values[mask]
                text = (
                    vals.astype(np.int64).astype(str).tolist()
                    if s.integer
                    else [repr(v) for v in vals.tolist()]
                )
                out.extend(prefix + v + ts for v, ts in zip(text, stamps, strict=True))
        out.append("# EOF")
        return "\n".join(out) + "\n"
