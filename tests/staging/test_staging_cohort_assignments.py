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
        metrics.assigned("treatment", "busy", 5.0)
    metrics.assigned("control", "quiet", 5.0)
    metrics.assigned("treatment", "quiet", 5.0)  # moved by a cohort change: counted anew
    assert _assignments(metrics, "treatment") == 2
    assert _assignments(metrics, "control") == 1


def test_a_new_cohort_percent_counts_every_space_again(tmp_path: Path) -> None:
    # Phase 1 serves everyone as control; phase 2 starts at 5 %. Counted since the phase start,
    # the control spaces seen in phase 1 must count again, or the split looks broken.
    metrics = ServiceMetrics(MemoryService(tmp_path), dict)
    for space in ("a", "b", "c"):
        metrics.assigned("control", space, 0.0)
    before = {g: _assignments(metrics, g) for g in ("control", "treatment")}
    for space, group in (("a", "control"), ("b", "control"), ("c", "treatment")):
        metrics.assigned(group, space, 5.0)
        metrics.assigned(group, space, 5.0)  # once per phase
    assert _assignments(metrics, "control") - before["control"] == 2
    assert _assignments(metrics, "treatment") - before["treatment"] == 1


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
