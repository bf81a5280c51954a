"""Holm's step-down correction for a family of criteria tested together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Holm:
    rejected: tuple[bool, ...]  # in input order
    adjusted: tuple[float, ...]  # Holm-adjusted p-values, in input order
    alpha: float


def holm(p_values: Sequence[float], alpha: float = 0.05) -> Holm:
    """Reject H0_i when its Holm-adjusted p-value is below alpha (family-wise error <= alpha)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return Holm(tuple(a < alpha for a in adjusted), tuple(adjusted), alpha)


def holm_alpha(rank: int, family_size: int, alpha: float) -> float:
    """Level for the hypothesis with the ``rank``-th smallest p-value (0-based)."""
    return alpha / (family_size - rank)
