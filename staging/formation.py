"""Concept formation: cluster new episodes by cosine similarity into concepts with bindings.

A cycle looks at a bounded batch of episodes not yet considered (plus the recent leftovers that
did not cluster last time), binds those close to an existing concept's centroid to it, and forms
new concepts from dense groups of the rest. The batch bound keeps every cycle short whatever the
backlog, which is what the phase-1 "formation p99 < 100 ms" criterion measures.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from staging.memory import FormationResult, MemoryService, SpaceMemory
from staging.metrics import ServiceMetrics
from staging.storage import ConceptUpdate, NewConcept

log = logging.getLogger("staging.formation")
_LABEL_WORD = re.compile(r"[a-z]{4,}")


@dataclass(frozen=True)
class FormationParams:
    similarity_threshold: float = 0.25  # two episodes are neighbours at or above this cosine
    coherence_threshold: float = 0.45  # mean member-to-centroid cosine a concept needs
    attach_threshold: float = 0.4  # an episode this close to a concept's centroid joins it
    min_cluster_size: int = 5
    max_concepts_per_cycle: int = 16
    batch_size: int = 1024  # episodes looked at per space per cycle
    max_leftover: int = 512  # unclustered episodes carried to the next cycle


@dataclass(frozen=True)
class Plan:
    new: list[NewConcept]
    updates: list[ConceptUpdate]
    leftover: npt.NDArray[np.int64]  # episode ids that joined nothing


def _unit(vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _label(texts: list[str]) -> str:
    """The three most frequent words of the members: a human handle for a concept."""
    counts = collections.Counter(w for t in texts for w in _LABEL_WORD.findall(t.lower()))
    return " ".join(word for word, _ in counts.most_common(3))


def plan_cycle(
    space: SpaceMemory, candidate_rows: npt.NDArray[np.int64], params: FormationParams
) -> Plan:
    """Decide attachments and new concepts for ``candidate_rows``; touches no state."""
    snap = space.snapshot
    vectors = snap.vectors[candidate_rows]
    ids = snap.ids[candidate_rows]
    concepts = snap.concepts
    updates: list[ConceptUpdate] = []
    free = np.ones(len(candidate_rows), dtype=bool)

    if concepts.count:
        sims = vectors @ concepts.centroids.T
        best = sims.argmax(axis=1)
        best_sim = sims[np.arange(len(best)), best]
        attach = best_sim >= params.attach_threshold
        for position in np.unique(best[attach]):
            chosen = attach & (best == position)
            size = len(concepts.members[position])
            strengths = best_sim[chosen].astype(np.float32)
            coherence = (float(concepts.coherence[position]) * size + float(strengths.sum())) / (
                size + len(strengths)
            )
            updates.append(
                ConceptUpdate(
                    concept_id=int(concepts.ids[position]),
                    coherence=coherence,
                    size=size + len(strengths),
                    members=ids[chosen],
                    strengths=strengths,
                )
            )
        free &= ~attach

    new: list[NewConcept] = []
    rest = np.flatnonzero(free)
    if len(rest) >= params.min_cluster_size:
        sub = vectors[rest]
        neighbours = (sub @ sub.T) >= params.similarity_threshold
        unassigned = np.ones(len(rest), dtype=bool)
        may_seed = np.ones(len(rest), dtype=bool)
        while len(new) < params.max_concepts_per_cycle:
            degree = (neighbours & unassigned[None, :]).sum(axis=1)
            degree[~(unassigned & may_seed)] = 0
            seed = int(degree.argmax())
            if degree[seed] < params.min_cluster_size:
                break
            may_seed[seed] = False
            centroid = _unit(sub[neighbours[seed] & unassigned].sum(axis=0))
            # One refinement step: neighbours of the seed may share only filler words with it;
            # membership is decided by closeness to the group's centroid instead.
            members = unassigned & ((sub @ centroid) >= params.attach_threshold)
            if members.sum() < params.min_cluster_size:
                continue
            centroid = _unit(sub[members].sum(axis=0))
            strengths = (sub[members] @ centroid).astype(np.float32)
            coherence = float(strengths.mean())
            if coherence < params.coherence_threshold:
                continue
            member_idx = np.flatnonzero(members)
            order = np.argsort(-strengths, kind="stable")
            new.append(
                NewConcept(
                    centroid=centroid.astype(np.float32),
                    coherence=coherence,
                    label=_label([space.texts[int(candidate_rows[rest[i]])] for i in member_idx]),
                    members=ids[rest[member_idx]][order],
                    strengths=strengths[order],
                )
            )
            unassigned &= ~members
        free[rest[~unassigned]] = False
    return Plan(new=new, updates=updates, leftover=ids[free])


@dataclass
class FormationRunner:
    """Runs formation cycles over every space in a background thread while ``enabled()``."""

    memory: MemoryService
    metrics: ServiceMetrics
    enabled: Callable[[], bool]
    params: FormationParams = field(default_factory=FormationParams)
    interval_s: float = 2.0
    _leftover: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="concept-formation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.enabled():
                    self.run_once()
            except Exception:  # the loop must outlive any single bad cycle
                log.exception("formation loop failed")

    def run_once(self) -> int:
        """One cycle over every space; returns the number of concepts formed."""
        formed = 0
        for space in self.memory.spaces():
            if self._stop.is_set():
                break
            started = time.perf_counter()
            try:
                result = self._cycle(space)
            except Exception:
                self.metrics.concept_formation_errors.inc()
                log.exception("formation cycle failed for space %s", space.name)
                continue
            if result is None:
                continue
            self.metrics.concept_formation_duration.observe(time.perf_counter() - started)
            formed += len(result.new)
            self.metrics.concepts_formed.inc(len(result.new))
            bound = sum(len(c.members) for c in result.new)
            bound += sum(len(u.members) for u in result.updates)
            self.metrics.bindings_created.inc(bound)
        return formed

    def _cycle(self, space: SpaceMemory) -> FormationResult | None:
        snap = space.snapshot
        leftover = self._leftover.get(space.name, np.zeros(0, dtype=np.int64))
        first_new = int(np.searchsorted(snap.ids, space.formation_watermark, side="right"))
        room = max(self.params.batch_size - len(leftover), self.params.batch_size // 2)
        new_rows = np.arange(first_new, min(snap.n, first_new + room), dtype=np.int64)
        if len(new_rows) == 0:
            return None  # nothing new since the last cycle: not a cycle worth timing
        rows = np.concatenate([np.searchsorted(snap.ids, leftover).astype(np.int64), new_rows])
        plan = plan_cycle(space, rows, self.params)
        result = FormationResult(
            new=plan.new, updates=plan.updates, watermark=int(snap.ids[new_rows[-1]])
        )
        space.apply_formation(result)
        self._leftover[space.name] = plan.leftover[-self.params.max_leftover :]
        return result
