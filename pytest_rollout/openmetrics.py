"""Write OpenMetrics text for Prometheus backfill: known-truth histories for tests and examples.

Timestamps are written in **seconds** (``promtool`` silently misreads milliseconds).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

# The latency buckets of the metric contract (design.md), in seconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0065,
    0.008,
    0.01,
    0.0125,
    0.015,
    0.0175,
    0.02,
    0.025,
    0.03,
    0.035,
    0.04,
    0.045,
    0.05,
    0.06,
    0.07,
    0.08,
    0.1,
    0.125,
    0.15,
    0.2,
    0.3,
    0.5,
    1.0,
    2.5,
)


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    escaped = (
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + ",".join(escaped) + "}"


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


@dataclass
class OpenMetricsWriter:
    """Collects metric families and renders one OpenMetrics document."""

    _families: dict[str, tuple[str, list[str]]] = field(default_factory=dict)

    def _family(self, name: str, kind: str) -> list[str]:
        if name not in self._families:
            self._families[name] = (kind, [])
        return self._families[name][1]

    def gauge(
        self, name: str, labels: Mapping[str, str], times: Sequence[float], values: Iterable[float]
    ) -> None:
        lines = self._family(name, "gauge")
        for t, v in zip(times, values, strict=True):
            lines.append(f"{name}{_labels(labels)} {float(v)!r} {int(t)}")

    def counter(
        self,
        name: str,
        labels: Mapping[str, str],
        times: Sequence[float],
        increments: Iterable[float],
        restarts: Collection[int] = (),
    ) -> None:
        """A counter from per-step increments (cumulated here); at each step index in
        ``restarts`` the process restarted, so the counter starts again from that step's
        increment (a counter reset, as a real restart leaves it)."""
        lines = self._family(name, "counter")
        total = 0.0
        for i, (t, inc) in enumerate(zip(times, increments, strict=True)):
            total = (0.0 if i in restarts else total) + float(inc)
            lines.append(f"{name}_total{_labels(labels)} {total!r} {int(t)}")

    def histogram(
        self,
        name: str,
        labels: Mapping[str, str],
        times: Sequence[float],
        observations: Sequence[NDArray[np.float64]],
        buckets: Sequence[float] = LATENCY_BUCKETS,
        restarts: Collection[int] = (),
    ) -> None:
        """A histogram from the raw observations of each step (cumulated here; ``restarts``
        as for :meth:`counter`)."""
        lines = self._family(name, "histogram")
        bounds = np.array([*buckets, float("inf")])
        cumulative = np.zeros(len(bounds))
        total_sum = 0.0
        for i, (t, obs) in enumerate(zip(times, observations, strict=True)):
            if i in restarts:
                cumulative, total_sum = np.zeros(len(bounds)), 0.0
            counts = np.histogram(obs, bins=np.concatenate(([-np.inf], bounds)))[0]
            cumulative += np.cumsum(counts)
            total_sum += float(np.sum(obs))
            ts = int(t)
            for bound, count in zip(bounds, cumulative, strict=True):
                le_labels = {**labels, "le": _le(bound)}
                lines.append(f"{name}_bucket{_labels(le_labels)} {int(count)} {ts}")
            lines.append(f"{name}_sum{_labels(labels)} {total_sum!r} {ts}")
            lines.append(f"{name}_count{_labels(labels)} {int(cumulative[-1])} {ts}")

    def render(self) -> str:
        out: list[str] = []
        for name, (kind, lines) in self._families.items():
            out.append(f"# TYPE {name} {kind}")
            out.extend(lines)
        out.append("# EOF")
        return "\n".join(out) + "\n"
