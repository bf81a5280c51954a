"""Deterministic text embeddings: signed feature hashing of words and character trigrams.

Small and dependency-free on purpose: the staging service needs vectors whose cosine similarity
tracks shared vocabulary, identical across processes and restarts, not a language model.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import numpy.typing as npt

DIM = 256
_WORD = re.compile(r"[a-z0-9]+")
# Words carry more meaning than their trigrams; weight them up so topic words dominate.
_WORD_WEIGHT = 2.0

Vector = npt.NDArray[np.float32]


def _features(text: str) -> list[tuple[str, float]]:
    features: list[tuple[str, float]] = []
    for word in _WORD.findall(text.lower()):
        features.append(("w:" + word, _WORD_WEIGHT))
        padded = f"^{word}$"
        features.extend(("g:" + padded[i : i + 3], 1.0) for i in range(len(padded) - 2))
    return features


def embed(text: str) -> Vector:
    """Unit-length float32 vector of ``DIM`` dimensions; the zero vector for text without words."""
    vec = np.zeros(DIM, dtype=np.float32)
    for feature, weight in _features(text):
        # crc32, not hash(): Python's string hash is salted per process.
        h = zlib.crc32(feature.encode())
        vec[h % DIM] += weight if (h >> 31) & 1 else -weight
    norm = float(np.linalg.norm(vec))
    if norm > 0.0:
        vec /= norm
    return vec


def embed_many(texts: list[str]) -> npt.NDArray[np.float32]:
    """Row-stacked ``embed`` of each text, shape ``(len(texts), DIM)``."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        out[i] = embed(text)
    return out
