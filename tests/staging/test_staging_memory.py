"""The dual memory in-process: embeddings, formation, blended ranking, durability."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from staging.chaos import ChaosError, ChaosSpec
from staging.corpus import TOPICS, episode_text, query_text
from staging.embeddings import DIM, embed
from staging.formation import FormationParams, FormationRunner, plan_cycle
from staging.memory import MemoryService
from staging.metrics import ActiveSpaces, ServiceMetrics
from staging.recall import blend, episodic, semantic_candidates


def test_embeddings_are_deterministic_unit_vectors_that_track_shared_words() -> None:
    a = embed("rust borrow checker lifetimes")
    assert a.shape == (DIM,) and a.dtype == np.float32
    assert np.array_equal(a, embed("Rust borrow-checker LIFETIMES"))
    assert float(np.linalg.norm(a)) == pytest.approx(1.0, abs=1e-5)
    assert float(a @ embed("the borrow checker and lifetimes")) > 0.5
    assert float(a @ embed("tomato soup garlic")) < 0.2
    assert not embed("?!").any()


def _filled(tmp_path: Path, per_topic: int = 120, topics: int = 3) -> tuple[MemoryService, dict]:
    memory = MemoryService(tmp_path)
    rng = random.Random(7)
    names = list(TOPICS)[:topics]
    items = [(episode_text(rng, t), f'{{"topic":"{t}"}}') for t in names for _ in range(per_topic)]
    rng.shuffle(items)
    memory.get_or_create("s").remember(items)
    topic_of = {i + 1: items[i][1].split('"')[3] for i in range(len(items))}
    return memory, topic_of


def _metrics(memory: MemoryService) -> ServiceMetrics:
    return ServiceMetrics(memory, lambda: {})


def test_formation_finds_one_pure_concept_per_topic(tmp_path: Path) -> None:
    memory, topic_of = _filled(tmp_path)
    metrics = _metrics(memory)
    runner = FormationRunner(memory=memory, metrics=metrics, enabled=lambda: True)
    formed = runner.run_once()
    snap = memory.get("s").snapshot  # type: ignore[union-attr]
    assert formed == snap.concepts.count >= 3
    for members in snap.concepts.members:
        topics = Counter(topic_of[int(snap.ids[r])] for r in members)
        assert topics.most_common(1)[0][1] / len(members) >= 0.95
    assert snap.concepts.bindings >= 0.8 * snap.n
    assert float(snap.concepts.coherence.min()) >= FormationParams().coherence_threshold
    assert runner.run_once() == 0  # nothing new: no work, no cycle
    assert metrics.concept_formation_duration.collect()[0].samples  # cycles were timed


def test_formation_respects_cluster_size_and_per_cycle_limits(tmp_path: Path) -> None:
    memory, _ = _filled(tmp_path, per_topic=40, topics=6)
    space = memory.get("s")
    assert space is not None
    rows = np.arange(space.snapshot.n, dtype=np.int64)
    plan = plan_cycle(space, rows, FormationParams(max_concepts_per_cycle=2))
    assert len(plan.new) == 2
    plan = plan_cycle(space, rows[:8], FormationParams(min_cluster_size=50))
    assert plan.new == [] and len(plan.leftover) == 8


def test_blended_recall_mixes_in_concept_members(tmp_path: Path) -> None:
    memory, topic_of = _filled(tmp_path)
    FormationRunner(memory=memory, metrics=_metrics(memory), enabled=lambda: True).run_once()
    snap = memory.get("s").snapshot  # type: ignore[union-attr]
    query = embed(query_text(random.Random(3), "cooking"))
    direct = episodic(snap, query, 10)
    candidates = semantic_candidates(snap, query)
    assert len(candidates.rows) > 10
    semantic_only = blend(snap, query, 10, 1.0, direct, candidates)
    assert "concept" in semantic_only.provenance
    assert {topic_of[int(snap.ids[r])] for r in semantic_only.rows} == {"cooking"}
    assert (semantic_only.concept_positions >= 0).all()
    no_weight = blend(snap, query, 10, 0.0, direct, candidates)
    assert np.allclose(np.sort(no_weight.scores), np.sort(direct.scores), atol=1e-6)


def test_episodes_and_concepts_survive_a_reopen(tmp_path: Path) -> None:
    memory, _ = _filled(tmp_path)
    FormationRunner(memory=memory, metrics=_metrics(memory), enabled=lambda: True).run_once()
    before = memory.get("s")
    assert before is not None
    integrity = before.store.integrity()
    snap = before.snapshot
    memory.close()

    again = MemoryService(tmp_path).get("s")
    assert again is not None
    reopened = again.snapshot
    assert again.store.integrity() == integrity
    assert reopened.n == snap.n and np.array_equal(reopened.vectors, snap.vectors)
    assert np.array_equal(reopened.concepts.ids, snap.concepts.ids)
    assert np.array_equal(reopened.concept_of, snap.concept_of)
    assert again.formation_watermark == int(snap.ids[-1])


def test_integrity_checksum_sees_any_change(tmp_path: Path) -> None:
    memory, _ = _filled(tmp_path, per_topic=5, topics=1)
    space = memory.get("s")
    assert space is not None
    first = space.store.integrity()
    space.remember([("one more", "{}")])
    second = space.store.integrity()
    assert second.episodes == first.episodes + 1 and second.checksum != first.checksum


def test_active_spaces_forget_after_the_window() -> None:
    active = ActiveSpaces(window_s=0.05)
    active.seen("treatment", "a")
    active.seen("treatment", "a")
    active.seen("control", "b")
    assert active.counts() == {"control": 1, "treatment": 1}
    import time

    time.sleep(0.06)
    assert active.counts() == {"control": 0, "treatment": 0}


def test_chaos_spec_validation() -> None:
    spec = ChaosSpec.from_json({"latency_ms": 80, "duration_s": 5})
    assert spec == ChaosSpec(latency_ms=80.0, error_rate=0.0, duration_s=5.0)
    for bad in ({"latency_ms": True}, {"error_rate": 1.5}, {"duration_s": -1}, [], {"x": 1}):
        with pytest.raises(ChaosError):
            ChaosSpec.from_json(bad)
