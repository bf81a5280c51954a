"""Durable store of one memory space: a SQLite database in WAL mode.

One file per space keeps spaces independent (a broken or huge space does not slow the others) and
makes "data survives restarts" a property of SQLite, not of this code. ``synchronous=NORMAL`` in WAL
mode loses nothing on a process crash (kill -9); only a power loss can drop the last commits.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from staging.embeddings import DIM

_SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at REAL NOT NULL,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS concepts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    centroid BLOB NOT NULL,
    coherence REAL NOT NULL,
    size INTEGER NOT NULL,
    label TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS bindings (
    episode_id INTEGER NOT NULL REFERENCES episodes(id),
    concept_id INTEGER NOT NULL REFERENCES concepts(id),
    strength REAL NOT NULL,
    PRIMARY KEY (episode_id, concept_id)
);
CREATE INDEX IF NOT EXISTS bindings_by_concept ON bindings(concept_id, strength DESC);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class NewEpisode:
    text: str
    metadata_json: str
    vector: npt.NDArray[np.float32]


@dataclass(frozen=True)
class StoredEpisodes:
    ids: npt.NDArray[np.int64]
    texts: list[str]
    metadata_json: list[str]
    vectors: npt.NDArray[np.float32]


@dataclass(frozen=True)
class NewConcept:
    centroid: npt.NDArray[np.float32]
    coherence: float
    label: str
    members: npt.NDArray[np.int64]  # episode ids
    strengths: npt.NDArray[np.float32]


@dataclass(frozen=True)
class ConceptUpdate:
    concept_id: int
    coherence: float
    size: int
    members: npt.NDArray[np.int64]  # newly bound episode ids
    strengths: npt.NDArray[np.float32]


@dataclass(frozen=True)
class StoredConcept:
    concept_id: int
    centroid: npt.NDArray[np.float32]
    coherence: float
    size: int
    label: str
    members: npt.NDArray[np.int64]  # episode ids, strongest binding first
    strengths: npt.NDArray[np.float32]


@dataclass(frozen=True)
class Integrity:
    episodes: int
    checksum: str


class SpaceStore:
    """All SQL of one space.

    Thread-safe: the event loop writes episodes while the formation thread writes concepts.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def insert_episodes(self, episodes: Sequence[NewEpisode]) -> list[int]:
        """Insert all or nothing, in one transaction; returns the new ids in order."""
        now = time.time()
        ids: list[int] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for ep in episodes:
                    cur = self._db.execute(
                        "INSERT INTO episodes (text, metadata, created_at, vector)"
                        " VALUES (?, ?, ?, ?)",
                        (ep.text, ep.metadata_json, now, ep.vector.astype(np.float32).tobytes()),
                    )
                    assert cur.lastrowid is not None
                    ids.append(cur.lastrowid)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ids

    def load_episodes(self) -> StoredEpisodes:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, text, metadata, vector FROM episodes ORDER BY id"
            ).fetchall()
        vectors = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float32)
        return StoredEpisodes(
            ids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
            texts=[r[1] for r in rows],
            metadata_json=[r[2] for r in rows],
            vectors=vectors.reshape(len(rows), DIM).copy(),
        )

    def save_formation(
        self, new: Sequence[NewConcept], updates: Sequence[ConceptUpdate], watermark: int
    ) -> list[int]:
        """Store one formation cycle atomically; returns ids of the new concepts."""
        now = time.time()
        concept_ids: list[int] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for c in new:
                    cur = self._db.execute(
                        "INSERT INTO concepts (centroid, coherence, size, label, created_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (
                            c.centroid.astype(np.float32).tobytes(),
                            c.coherence,
                            len(c.members),
                            c.label,
                            now,
                        ),
                    )
                    assert cur.lastrowid is not None
                    concept_ids.append(cur.lastrowid)
                    self._bind(cur.lastrowid, c.members, c.strengths)
                for u in updates:
                    self._db.execute(
                        "UPDATE concepts SET coherence = ?, size = ? WHERE id = ?",
                        (u.coherence, u.size, u.concept_id),
                    )
                    self._bind(u.concept_id, u.members, u.strengths)
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('formation_watermark', ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (str(watermark),),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return concept_ids

    def _bind(
        self, concept_id: int, members: npt.NDArray[np.int64], strengths: npt.NDArray[np.float32]
    ) -> None:
        self._db.executemany(
            "INSERT OR IGNORE INTO bindings (episode_id, concept_id, strength) VALUES (?, ?, ?)",
            [(int(e), concept_id, float(s)) for e, s in zip(members, strengths, strict=True)],
        )

    def load_concepts(self) -> list[StoredConcept]:
        with self._lock:
            concepts = self._db.execute(
                "SELECT id, centroid, coherence, size, label FROM concepts ORDER BY id"
            ).fetchall()
            bindings = self._db.execute(
                "SELECT concept_id, episode_id, strength FROM bindings"
                " ORDER BY concept_id, strength DESC"
            ).fetchall()
        by_concept: dict[int, list[tuple[int, float]]] = {}
        for concept_id, episode_id, strength in bindings:
            by_concept.setdefault(concept_id, []).append((episode_id, strength))
        out: list[StoredConcept] = []
        for cid, centroid, coherence, size, label in concepts:
            members = by_concept.get(cid, [])
            out.append(
                StoredConcept(
                    concept_id=cid,
                    centroid=np.frombuffer(centroid, dtype=np.float32).copy(),
                    coherence=coherence,
                    size=size,
                    label=label,
                    members=np.array([m[0] for m in members], dtype=np.int64),
                    strengths=np.array([m[1] for m in members], dtype=np.float32),
                )
            )
        return out

    def formation_watermark(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM meta WHERE key = 'formation_watermark'"
            ).fetchone()
        return int(row[0]) if row else 0

    def integrity(self) -> Integrity:
        """Count and SHA-256 over every episode's id, text and metadata, read back from disk."""
        digest = hashlib.sha256()
        count = 0
        with self._lock:
            cursor = self._db.execute("SELECT id, text, metadata FROM episodes ORDER BY id")
            for episode_id, text, metadata in cursor:
                # Length-prefixed fields: no two different episode lists hash the same framing.
                for field in (str(episode_id), text, metadata):
                    raw = field.encode()
                    digest.update(len(raw).to_bytes(4, "big"))
                    digest.update(raw)
                count += 1
        return Integrity(episodes=count, checksum="sha256:" + digest.hexdigest())
