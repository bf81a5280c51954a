"""Ranking: episodic kNN and the concept pathway that blended recall mixes in.

Pure functions over a ``Snapshot``: the HTTP layer decides which pathway a request gets, applies
chaos and the semantic timeout, and records metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from staging.memory import Snapshot

# Concepts the semantic pathway expands per query, and members taken from each (strongest first):
# bounds blended recall's extra work whatever the size of a space.
MAX_CONCEPTS_EXPANDED = 3
MAX_MEMBERS_PER_CONCEPT = 256
# A concept this far from the query adds noise, not recall.
MIN_CONCEPT_SIMILARITY = 0.2

Provenance = Literal["episode", "concept"]


@dataclass(frozen=True)
class Ranked:
    rows: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    provenance: tuple[Provenance, ...]
    concept_positions: npt.NDArray[np.int32]  # -1 where the episode is bound to no concept

    @staticmethod
    def empty() -> Ranked:
        return Ranked(
            rows=np.zeros(0, dtype=np.int64),
            scores=np.zeros(0, dtype=np.float32),
            provenance=(),
            concept_positions=np.zeros(0, dtype=np.int32),
        )


@dataclass(frozen=True)
class SemanticCandidates:
    rows: npt.NDArray[np.int64]
    concept_similarity: npt.NDArray[np.float32]  # query vs every concept centroid


def _top(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    if len(scores) <= k:
        return np.argsort(-scores, kind="stable").astype(np.int64)
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part], kind="stable")].astype(np.int64)


def _bound_concepts(snap: Snapshot, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    positions = snap.concept_of[rows].copy()
    positions[positions >= snap.concepts.count] = -1  # bound after this snapshot: not visible yet
    return positions


def episodic(snap: Snapshot, query: npt.NDArray[np.float32], k: int) -> Ranked:
    """The k episodes most cosine-similar to the query."""
    if snap.n == 0:
        return Ranked.empty()
    sims = snap.vectors @ query
    rows = _top(sims, k)
    provenance: tuple[Provenance, ...] = tuple("episode" for _ in range(len(rows)))
    return Ranked(
        rows=rows,
        scores=sims[rows],
        provenance=provenance,
        concept_positions=_bound_concepts(snap, rows),
    )


def semantic_candidates(snap: Snapshot, query: npt.NDArray[np.float32]) -> SemanticCandidates:
    """Members of the concepts nearest the query: the concept-expanded candidate set."""
    concepts = snap.concepts
    if concepts.count == 0:
        return SemanticCandidates(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    similarity = concepts.centroids @ query
    chosen = [
        int(p)
        for p in _top(similarity, MAX_CONCEPTS_EXPANDED)
        if similarity[p] >= MIN_CONCEPT_SIMILARITY
    ]
    if not chosen:
        return SemanticCandidates(np.zeros(0, dtype=np.int64), similarity)
    rows = np.concatenate([concepts.members[p][:MAX_MEMBERS_PER_CONCEPT] for p in chosen])
    return SemanticCandidates(rows=np.unique(rows[rows < snap.n]), concept_similarity=similarity)


def blend(
    snap: Snapshot,
    query: npt.NDArray[np.float32],
    k: int,
    semantic_weight: float,
    episodic_hits: Ranked,
    semantic: SemanticCandidates,
) -> Ranked:
    """Merge episodic hits with concept-expanded candidates.

    rank = (1 - w) * similarity(query, episode) + w * similarity(query, episode's concept);
    an episode bound to no concept has no semantic evidence, so its own similarity stands in.
    The returned scores are the episodes' own similarities (their confidence).
    """
    w = float(np.clip(semantic_weight, 0.0, 1.0))
    rows = np.union1d(episodic_hits.rows, semantic.rows).astype(np.int64)
    if len(rows) == 0:
        return episodic_hits
    own = snap.vectors[rows] @ query
    positions = _bound_concepts(snap, rows)
    concept_score = own.copy()
    bound = positions >= 0
    if bound.any() and len(semantic.concept_similarity):
        concept_score[bound] = semantic.concept_similarity[positions[bound]]
    scores = ((1.0 - w) * own + w * concept_score).astype(np.float32)
    order = _top(scores, k)
    direct = set(episodic_hits.rows.tolist())
    chosen = rows[order]
    # Concepts decide which episodes come back and in what order; the confidence reported for
    # each is still how well that episode matches the query, as in episodic recall, so the two
    # cohorts' confidence is comparable (a centroid's similarity is not an episode's).
    return Ranked(
        rows=chosen,
        scores=own[order].astype(np.float32),
        provenance=tuple("episode" if int(r) in direct else "concept" for r in chosen),
        concept_positions=positions[order],
    )
