"""The service's Prometheus metrics, exactly as design.md's metric contract names them.

Counters and histograms are updated where things happen; gauges that describe state (episodes,
concepts, flags, active spaces) are computed when Prometheus scrapes, so they are never stale.
Everything lives in a registry owned by one ``ServiceMetrics``: no module-level globals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from staging.memory import MemoryService

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0065,
    0.008,
    0.01,
    0.0125,
    0.015,
    0.0175,
    0.02,
    0.025,
    0.03,
    0.035,
    0.04,
    0.045,
    0.05,
    0.06,
    0.07,
    0.08,
    0.1,
    0.125,
    0.15,
    0.2,
    0.3,
    0.5,
    1.0,
    2.5,
    float("inf"),
)
CONFIDENCE_BUCKETS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 21)) + (
    float("inf"),
)
RESULT_BUCKETS: tuple[float, ...] = (0, 1, 2, 3, 5, 10, 20, 50, 100, float("inf"))
GROUPS = ("control", "treatment")
ACTIVE_WINDOW_S = 300.0


class ActiveSpaces:
    """Distinct spaces per group seen in the last five minutes (the SRM denominator)."""

    def __init__(self, window_s: float = ACTIVE_WINDOW_S) -> None:
        self._window_s = window_s
        self._seen: dict[str, dict[str, float]] = {g: {} for g in GROUPS}
        self._lock = threading.Lock()

    def seen(self, group: str, space: str) -> None:
        now = time.monotonic()
        with self._lock:
            # A space counts in the group it was last served in: after a cohort change it moves
            # as soon as it is seen again, instead of counting in both groups for five minutes
            # (which would look like a sample ratio mismatch).
            for other, spaces in self._seen.items():
                if other != group:
                    spaces.pop(space, None)
            self._seen[group][space] = now

    def counts(self) -> dict[str, int]:
        horizon = time.monotonic() - self._window_s
        with self._lock:
            for spaces in self._seen.values():
                for name in [s for s, t in spaces.items() if t < horizon]:
                    del spaces[name]
            return {group: len(spaces) for group, spaces in self._seen.items()}


class _StateCollector(Collector):
    """Gauges read from the service's state at scrape time."""

    def __init__(
        self,
        memory: MemoryService,
        active: ActiveSpaces,
        flag_values: Callable[[], Mapping[str, float]],
    ) -> None:
        self._memory = memory
        self._active = active
        self._flag_values = flag_values

    def collect(self) -> Iterable[Metric]:
        totals = self._memory.totals()
        yield GaugeMetricFamily("engram_episodes", "Episodes stored", value=totals.episodes)
        yield GaugeMetricFamily("engram_concepts", "Concepts stored", value=totals.concepts)
        yield GaugeMetricFamily(
            "engram_bindings", "Episode-concept bindings stored", value=totals.bindings
        )
        yield GaugeMetricFamily(
            "engram_concept_coherence",
            "Mean coherence of stored concepts",
            value=totals.mean_coherence,
        )
        active = GaugeMetricFamily(
            "engram_active_spaces",
            "Distinct memory spaces seen in the last 5 minutes",
            labels=["group"],
        )
        for group, count in self._active.counts().items():
            active.add_metric([group], count)
        yield active
        flags = GaugeMetricFamily(
            "engram_feature_flag",
            "Flag value as the service sees it (1/0, or percent)",
            labels=["flag"],
        )
        for name, value in self._flag_values().items():
            flags.add_metric([name], value)
        yield flags


class ServiceMetrics:
    def __init__(
        self, memory: MemoryService, flag_values: Callable[[], Mapping[str, float]]
    ) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        self.recall_duration = Histogram(
            "engram_recall_duration_seconds",
            "Per-query recall latency",
            ["group", "mode"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.recall_total = Counter(
            "engram_recall", "Recall requests", ["group", "outcome"], registry=r
        )
        self.recall_confidence = Histogram(
            "engram_recall_confidence",
            "Per-query mean confidence of the results",
            ["group"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.recall_results = Histogram(
            "engram_recall_results",
            "Results returned per query",
            ["group"],
            buckets=RESULT_BUCKETS,
            registry=r,
        )
        self.concepts_formed = Counter("engram_concepts_formed", "Concepts formed", registry=r)
        self.concept_formation_errors = Counter(
            "engram_concept_formation_errors", "Failed formation cycles", registry=r
        )
        self.concept_formation_duration = Histogram(
            "engram_concept_formation_duration_seconds",
            "One formation cycle of one space",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.bindings_created = Counter(
            "engram_bindings_created", "Episode-concept bindings created", registry=r
        )
        self.semantic_timeouts = Counter(
            "engram_semantic_pathway_timeouts",
            "Blended recalls that fell back to episodic on timeout",
            registry=r,
        )
        self.cohort_assignments_total = Counter(
            "engram_cohort_assignments",
            "Spaces assigned to a cohort group, counted the first time this process serves each "
            "(space, group) pair: first-seen spaces per group, the sample-ratio-mismatch unit",
            ["group"],
            registry=r,
        )
        self._assigned: set[tuple[str, str]] = set()
        self._assigned_percent: float | None = None
        self._assigned_lock = threading.Lock()
        self.active_spaces = ActiveSpaces()
        r.register(_StateCollector(memory, self.active_spaces, flag_values))
        # Every label combination exists from the start: a rate() over a series that appears
        # only after the first error would read as "no data" rather than zero.
        for group, mode in (("control", "episodic"), ("treatment", "blended")):
            for outcome in ("ok", "error", "timeout"):
                self.recall_total.labels(group=group, outcome=outcome)
            self.cohort_assignments_total.labels(group=group)
            self.recall_duration.labels(group=group, mode=mode)
            self.recall_confidence.labels(group=group)
            self.recall_results.labels(group=group)

    def assigned(self, group: str, space: str, percent: float) -> None:
        """Count ``space`` in ``group`` the first time this process serves that pair under the
        current cohort ``percent``.

        A new percent is a new assignment (a new phase): every space counts again, in the group
        it now has. Otherwise control spaces already seen before a phase began would be missing
        from the counts since its start while every newly treated space is counted, and the
        sample-ratio check would see a mismatch that is not there.

        Randomization is per space, so the sample ratio is checked on spaces, not requests (a
        busy space would weigh as much as its traffic) and not on a gauge of active spaces (which
        moves with activity, a real treatment effect, and double-counts across replicas).
        """
        with self._assigned_lock:
            if percent != self._assigned_percent:
                self._assigned.clear()
                self._assigned_percent = percent
            if (space, group) in self._assigned:
                return
            self._assigned.add((space, group))
        self.cohort_assignments_total.labels(group=group).inc()
