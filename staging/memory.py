"""In-memory index of every memory space, backed by one SpaceStore each.

Recall reads an immutable ``Snapshot`` without taking a lock: writers fill preallocated rows past
the published count and then publish a new snapshot (one attribute assignment), so a reader sees
either the old or the new row count, never a half-written row.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from staging.embeddings import DIM, embed
from staging.storage import (
    ConceptUpdate,
    NewConcept,
    NewEpisode,
    SpaceStore,
    StoredConcept,
)

SPACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_INITIAL_CAPACITY = 1024


@dataclass(frozen=True)
class Concepts:
    """Concepts of one space; ``members[i]`` are row positions, strongest binding first."""

    ids: npt.NDArray[np.int64]
    centroids: npt.NDArray[np.float32]
    coherence: npt.NDArray[np.float32]
    labels: tuple[str, ...]
    members: tuple[npt.NDArray[np.int64], ...]

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def bindings(self) -> int:
        return sum(len(m) for m in self.members)

    @staticmethod
    def empty() -> Concepts:
        return Concepts(
            ids=np.zeros(0, dtype=np.int64),
            centroids=np.zeros((0, DIM), dtype=np.float32),
            coherence=np.zeros(0, dtype=np.float32),
            labels=(),
            members=(),
        )


@dataclass(frozen=True)
class Snapshot:
    """A consistent read view: the first ``n`` rows and the concepts published with them.

    ``concept_of[row]`` is the position in ``concepts`` the episode is bound to, or -1. It is
    written in place by formation, so a reader must ignore positions >= ``concepts.count``.
    """

    n: int
    ids: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    concept_of: npt.NDArray[np.int32]
    concepts: Concepts


@dataclass(frozen=True)
class FormationResult:
    new: Sequence[NewConcept]
    updates: Sequence[ConceptUpdate]
    watermark: int


class SpaceMemory:
    """One space: the durable store plus its vectors, texts and concepts in memory."""

    def __init__(self, name: str, store: SpaceStore) -> None:
        self.name = name
        self.store = store
        self._write_lock = threading.Lock()
        stored = store.load_episodes()
        n = len(stored.ids)
        capacity = max(_INITIAL_CAPACITY, 1 << max(n, 1).bit_length())
        self._ids = np.zeros(capacity, dtype=np.int64)
        self._vectors = np.zeros((capacity, DIM), dtype=np.float32)
        self._concept_of = np.full(capacity, -1, dtype=np.int32)
        self._ids[:n] = stored.ids
        self._vectors[:n] = stored.vectors
        # Append-only lists: a reader indexes only rows below its snapshot's n.
        self.texts: list[str] = stored.texts
        self.metadata_json: list[str] = stored.metadata_json
        concepts = self._concepts_from_store(store.load_concepts(), n)
        self.formation_watermark = store.formation_watermark()
        self.snapshot = self._publish(n, concepts)

    def _concepts_from_store(self, stored: list[StoredConcept], n: int) -> Concepts:
        members: list[npt.NDArray[np.int64]] = []
        for position, concept in enumerate(stored):
            rows = np.searchsorted(self._ids[:n], concept.members).astype(np.int64)
            members.append(rows)
            self._concept_of[rows] = position
        if not stored:
            return Concepts.empty()
        return Concepts(
            ids=np.array([c.concept_id for c in stored], dtype=np.int64),
            centroids=np.stack([c.centroid for c in stored]).astype(np.float32),
            coherence=np.array([c.coherence for c in stored], dtype=np.float32),
            labels=tuple(c.label for c in stored),
            members=tuple(members),
        )

    def _publish(self, n: int, concepts: Concepts) -> Snapshot:
        snap = Snapshot(
            n=n,
            ids=self._ids[:n],
            vectors=self._vectors[:n],
            concept_of=self._concept_of[:n],
            concepts=concepts,
        )
        self.snapshot = snap
        return snap

    def remember(self, items: Sequence[tuple[str, str]]) -> list[int]:
        """Store (text, metadata JSON) pairs durably, then make them recallable; returns ids."""
        vectors = [embed(text) for text, _ in items]
        episodes = [
            NewEpisode(text=t, metadata_json=m, vector=v)
            for (t, m), v in zip(items, vectors, strict=True)
        ]
        with self._write_lock:
            ids = self.store.insert_episodes(episodes)
            n = self.snapshot.n
            self._ensure_capacity(n + len(ids))
            self._ids[n : n + len(ids)] = ids
            self._vectors[n : n + len(ids)] = np.stack(vectors)
            self.texts.extend(t for t, _ in items)
            self.metadata_json.extend(m for _, m in items)
            self._publish(n + len(ids), self.snapshot.concepts)
        return ids

    def _ensure_capacity(self, needed: int) -> None:
        capacity = len(self._ids)
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        # Fresh buffers: readers holding the old snapshot keep reading the old ones.
        ids = np.zeros(capacity, dtype=np.int64)
        vectors = np.zeros((capacity, DIM), dtype=np.float32)
        concept_of = np.full(capacity, -1, dtype=np.int32)
        n = self.snapshot.n
        ids[:n] = self._ids[:n]
        vectors[:n] = self._vectors[:n]
        concept_of[:n] = self._concept_of[:n]
        self._ids, self._vectors, self._concept_of = ids, vectors, concept_of

    def apply_formation(self, result: FormationResult) -> list[int]:
        """Persist one formation cycle, then publish its concepts; returns the new concept ids."""
        if not result.new and not result.updates:
            # Nothing formed or bound: advance the watermark in memory only. A transaction and
            # a new snapshot per idle space per cycle cost shadow mode most of its CPU; after a
            # restart these episodes are simply looked at again (like the leftovers).
            with self._write_lock:
                self.formation_watermark = max(self.formation_watermark, result.watermark)
            return []
        with self._write_lock:
            new_ids = self.store.save_formation(result.new, result.updates, result.watermark)
            snap = self.snapshot
            old = snap.concepts
            ids = snap.ids
            members = list(old.members)
            coherence = old.coherence.copy()
            position_of = {int(cid): pos for pos, cid in enumerate(old.ids)}
            for update in result.updates:
                pos = position_of[update.concept_id]
                rows = np.searchsorted(ids, update.members).astype(np.int64)
                members[pos] = np.concatenate([members[pos], rows])
                coherence[pos] = update.coherence
            new_rows = [np.searchsorted(ids, c.members).astype(np.int64) for c in result.new]
            concepts = Concepts(
                ids=np.concatenate([old.ids, np.array(new_ids, dtype=np.int64)]),
                centroids=np.concatenate(
                    [old.centroids, *(c.centroid[None, :] for c in result.new)]
                ).astype(np.float32),
                coherence=np.concatenate(
                    [coherence, np.array([c.coherence for c in result.new], dtype=np.float32)]
                ),
                labels=old.labels + tuple(c.label for c in result.new),
                members=tuple(members + new_rows),
            )
            # Concepts first, then the per-row positions that point into them.
            self._publish(snap.n, concepts)
            for update in result.updates:
                self._concept_of[np.searchsorted(ids, update.members)] = position_of[
                    update.concept_id
                ]
            for offset, rows in enumerate(new_rows):
                self._concept_of[rows] = old.count + offset
            self.formation_watermark = result.watermark
        return new_ids

    def metadata(self, row: int) -> dict[str, object]:
        value: dict[str, object] = json.loads(self.metadata_json[row])
        return value


@dataclass
class MemoryTotals:
    episodes: int = 0
    concepts: int = 0
    bindings: int = 0
    coherence_sum: float = 0.0
    spaces: int = 0

    @property
    def mean_coherence(self) -> float:
        return self.coherence_sum / self.concepts if self.concepts else 0.0


@dataclass
class MemoryService:
    """Every space under ``data_dir/spaces``; spaces are created by their first write."""

    data_dir: Path
    _spaces: dict[str, SpaceMemory] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.space_dir.mkdir(parents=True, exist_ok=True)
        # Load everything at start: gauges such as engram_episodes must never dip after a restart.
        for path in sorted(self.space_dir.glob("*.db")):
            if SPACE_NAME.match(path.stem):
                self._spaces[path.stem] = SpaceMemory(path.stem, SpaceStore(path))

    @property
    def space_dir(self) -> Path:
        return self.data_dir / "spaces"

    def get(self, name: str) -> SpaceMemory | None:
        return self._spaces.get(name)

    def get_or_create(self, name: str) -> SpaceMemory:
        if not SPACE_NAME.match(name):
            raise ValueError(f"invalid space name {name!r}")
        space = self._spaces.get(name)
        if space is not None:
            return space
        with self._lock:
            space = self._spaces.get(name)
            if space is None:
                space = SpaceMemory(name, SpaceStore(self.space_dir / f"{name}.db"))
                self._spaces[name] = space
        return space

    def spaces(self) -> Iterator[SpaceMemory]:
        # A copy: spaces may be added while a caller iterates.
        yield from list(self._spaces.values())

    def totals(self) -> MemoryTotals:
        totals = MemoryTotals()
        for space in self.spaces():
            snap = space.snapshot
            totals.spaces += 1
            totals.episodes += snap.n
            totals.concepts += snap.concepts.count
            totals.bindings += snap.concepts.bindings
            totals.coherence_sum += float(snap.concepts.coherence.sum())
        return totals

    def close(self) -> None:
        for space in self.spaces():
            space.store.close()
