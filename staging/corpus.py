"""Synthetic but clusterable text for seeding, traffic and benchmarks.

Each episode mixes words of one topic with filler, so episodes of a topic are similar to each other
and concept formation has real clusters to find; queries use topic words only.
"""

from __future__ import annotations

import random

TOPICS: dict[str, tuple[str, ...]] = {
    "cooking": (
        "garlic",
        "simmer",
        "tomato",
        "basil",
        "skillet",
        "oven",
        "dough",
        "broth",
        "pepper",
        "roast",
    ),
    "hiking": (
        "trail",
        "summit",
        "ridge",
        "boots",
        "backpack",
        "switchback",
        "campsite",
        "altitude",
        "compass",
        "valley",
    ),
    "databases": (
        "index",
        "query",
        "transaction",
        "replica",
        "schema",
        "vacuum",
        "postgres",
        "sqlite",
        "btree",
        "journal",
    ),
    "music": (
        "guitar",
        "chord",
        "tempo",
        "melody",
        "rehearsal",
        "drummer",
        "bassline",
        "vinyl",
        "harmony",
        "concert",
    ),
    "gardening": (
        "compost",
        "seedling",
        "mulch",
        "tomatoes",
        "pruning",
        "greenhouse",
        "soil",
        "watering",
        "perennial",
        "trellis",
    ),
    "finance": (
        "invoice",
        "budget",
        "ledger",
        "dividend",
        "mortgage",
        "payroll",
        "audit",
        "expense",
        "interest",
        "portfolio",
    ),
    "travel": (
        "airport",
        "passport",
        "luggage",
        "hostel",
        "itinerary",
        "train",
        "visa",
        "boarding",
        "layover",
        "museum",
    ),
    "fitness": (
        "squat",
        "deadlift",
        "cardio",
        "stretching",
        "protein",
        "treadmill",
        "sprint",
        "kettlebell",
        "recovery",
        "rowing",
    ),
    "kubernetes": (
        "pod",
        "deployment",
        "ingress",
        "helm",
        "namespace",
        "kubelet",
        "configmap",
        "rollout",
        "daemonset",
        "autoscaler",
    ),
    "astronomy": (
        "telescope",
        "nebula",
        "galaxy",
        "comet",
        "eclipse",
        "orbit",
        "saturn",
        "meteor",
        "constellation",
        "observatory",
    ),
    "parenting": (
        "toddler",
        "bedtime",
        "daycare",
        "diaper",
        "lullaby",
        "playground",
        "tantrum",
        "homework",
        "pediatrician",
        "stroller",
    ),
    "cycling": (
        "derailleur",
        "saddle",
        "cadence",
        "peloton",
        "chainring",
        "helmet",
        "climb",
        "puncture",
        "sprocket",
        "velodrome",
    ),
}
FILLER: tuple[str, ...] = (
    "today",
    "again",
    "remember",
    "noted",
    "with",
    "after",
    "before",
    "quick",
    "long",
    "good",
    "maybe",
    "later",
    "friend",
    "morning",
    "evening",
    "weekend",
    "plan",
    "idea",
    "note",
    "check",
)


def episode_text(rng: random.Random, topic: str | None = None) -> str:
    """One remembered sentence: five topic words, three filler words and a number."""
    topic = topic or rng.choice(list(TOPICS))
    words = rng.sample(TOPICS[topic], 5) + rng.sample(FILLER, 3)
    rng.shuffle(words)
    return " ".join(words) + f" #{rng.randrange(10_000)}"


def query_text(rng: random.Random, topic: str | None = None) -> str:
    """A recall query: three words of one topic."""
    topic = topic or rng.choice(list(TOPICS))
    return " ".join(rng.sample(TOPICS[topic], 3))


def space_names(count: int, prefix: str = "space") -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(count)]


def zipf_weights(count: int, exponent: float = 1.1) -> list[float]:
    """Zipf-skewed activity: space i is (i+1)^-s as active as the first."""
    return [1.0 / (i + 1) ** exponent for i in range(count)]
