"""Load episodes quickly over HTTP (batched POSTs), without Locust: for tests and demos."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import requests

from staging.corpus import episode_text, space_names, zipf_weights

BATCH = 500


@dataclass(frozen=True)
class SeedSummary:
    episodes: int
    per_space: dict[str, int]


def seed(
    base_url: str,
    *,
    episodes: int,
    spaces: int,
    prefix: str = "space",
    skew: float = 1.1,
    rng_seed: int = 0,
    timeout_s: float = 30.0,
) -> SeedSummary:
    """POST ``episodes`` synthetic episodes over ``spaces`` spaces, Zipf-skewed like traffic."""
    if episodes < 0 or spaces < 1:
        raise ValueError("need episodes >= 0 and spaces >= 1")
    rng = random.Random(rng_seed)
    names = space_names(spaces, prefix)
    counts = Counter(rng.choices(names, weights=zipf_weights(spaces, skew), k=episodes))
    with requests.Session() as http:
        for name, count in sorted(counts.items()):
            for start in range(0, count, BATCH):
                items: list[dict[str, Any]] = [
                    {"text": episode_text(rng), "metadata": {"source": "seed", "n": start + i}}
                    for i in range(min(BATCH, count - start))
                ]
                response = http.post(
                    f"{base_url}/api/v1/spaces/{name}/episodes",
                    json={"episodes": items},
                    timeout=timeout_s,
                )
                response.raise_for_status()
    return SeedSummary(episodes=episodes, per_space=dict(counts))
