"""engram_cohort_assignments_total counts first-seen spaces per group: the SRM unit."""

from __future__ import annotations

import uuid
from pathlib import Path

from staging.client import EngramClient
from staging.memory import MemoryService
from staging.metrics import ServiceMetrics


def _assignments(metrics: ServiceMetrics, group: str) -> float:
    value = metrics.registry.get_sample_value("engram_cohort_assignments_total", {"group": group})
    assert value is not None, f"no engram_cohort_assignments_total series for group {group}"
    return value


def test_each_space_counts_once_per_group_however_often_it_is_served(tmp_path: Path) -> None:
    metrics = ServiceMetrics(MemoryService(tmp_path), dict)
    assert _assignments(metrics, "control") == 0 and _assignments(metrics, "treatment") == 0
    for _ in range(5):  # a busy space weighs as one unit, not as its traffic
        metrics.assigned("treatment", "busy")
    metrics.assigned("control", "quiet")
    metrics.assigned("treatment", "quiet")  # moved by a cohort change: counted in its new group
    assert _assignments(metrics, "treatment") == 2
    assert _assignments(metrics, "control") == 1


def test_recall_counts_a_new_space_once_in_the_group_that_served_it(
    engram: EngramClient,
) -> None:
    space = f"assign-{uuid.uuid4().hex[:8]}"
    group = engram.recall(space, "warm up")["group"]
    before = engram.metric("engram_cohort_assignments_total", group=group)
    engram.recall(space, "again")
    assert engram.metric("engram_cohort_assignments_total", group=group) == before
    groups = ("control", "treatment")
    counts = {g: engram.metric("engram_cohort_assignments_total", group=g) for g in groups}
    fresh_group = engram.recall(f"assign-{uuid.uuid4().hex[:8]}", "warm up")["group"]
    for g in groups:
        expected = counts[g] + (1 if g == fresh_group else 0)
        assert engram.metric("engram_cohort_assignments_total", group=g) == expected
