"""Chaos drills: extra latency or errors on the blended (treatment) recall path, until expiry.

Only the blended path is touched, so a drill shows up as a treatment-vs-control regression, which
is exactly what the canary gates must catch.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass

MAX_LATENCY_MS = 10_000.0
MAX_DURATION_S = 86_400.0


class ChaosError(ValueError):
    """A chaos request that cannot be applied."""


@dataclass(frozen=True)
class ChaosSpec:
    latency_ms: float
    error_rate: float
    duration_s: float

    @staticmethod
    def from_json(body: object) -> ChaosSpec:
        if not isinstance(body, dict):
            raise ChaosError("body must be a JSON object")
        unknown = set(body) - {"latency_ms", "error_rate", "duration_s"}
        if unknown:
            raise ChaosError(f"unknown fields: {', '.join(sorted(unknown))}")
        latency = _number(body, "latency_ms", 0.0, 0.0, MAX_LATENCY_MS)
        error_rate = _number(body, "error_rate", 0.0, 0.0, 1.0)
        duration = _number(body, "duration_s", 60.0, 0.0, MAX_DURATION_S)
        if duration <= 0:
            raise ChaosError("duration_s must be > 0")
        return ChaosSpec(latency_ms=latency, error_rate=error_rate, duration_s=duration)


def _number(body: dict[str, object], key: str, default: float, low: float, high: float) -> float:
    raw = body.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ChaosError(f"{key} must be a number")
    if not low <= raw <= high:
        raise ChaosError(f"{key} must be within {low:g}..{high:g}, got {raw!r}")
    return float(raw)


@dataclass(frozen=True)
class _Active:
    spec: ChaosSpec
    expires_monotonic: float
    expires_unix: float


class Chaos:
    def __init__(self, seed: int | None = None) -> None:
        self._active: _Active | None = None
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def start(self, spec: ChaosSpec) -> None:
        with self._lock:
            self._active = _Active(
                spec=spec,
                expires_monotonic=time.monotonic() + spec.duration_s,
                expires_unix=time.time() + spec.duration_s,
            )

    def clear(self) -> None:
        with self._lock:
            self._active = None

    def current(self) -> ChaosSpec | None:
        active = self._active
        if active is None or time.monotonic() >= active.expires_monotonic:
            return None
        return active.spec

    def describe(self) -> dict[str, object]:
        active = self._active
        spec = self.current()
        if active is None or spec is None:
            return {"active": False}
        return {
            "active": True,
            "latency_ms": spec.latency_ms,
            "error_rate": spec.error_rate,
            "expires_at": active.expires_unix,
            "remaining_s": round(max(0.0, active.expires_monotonic - time.monotonic()), 3),
        }

    def should_fail(self, spec: ChaosSpec) -> bool:
        with self._lock:
            return spec.error_rate > 0 and self._rng.random() < spec.error_rate
