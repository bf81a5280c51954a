"""Bundled canary scenarios with known truth, backfilled into a real Prometheus.

Two hours of one-minute samples ending at ``END``: a control cohort and a treatment cohort
(10 % of spaces) of a memory service's recall path.
- ``healthy``:    treatment behaves like control                      -> GO
- ``regression``: treatment latency +60 ms on 5 % of its queries    -> ABORT (p99 trigger)
- ``stale``:      the service stopped reporting 20 minutes before END  -> HOLD
"""

from __future__ import annotations

import numpy as np

from pytest_rollout.openmetrics import OpenMetricsWriter

END = 1_795_000_000  # 2026-11-18T11:06:40Z, a fixed instant so runs are reproducible
STEP_S = 60
HISTORY_S = 2 * 3600
SCENARIOS = ("healthy", "regression", "stale")
RATES = {"control": 20.0, "treatment": 4.4}  # queries per second
ERROR_RATE = 0.001
SPACES = {"control": 900, "treatment": 100}  # distinct memory spaces per cohort


def generate(scenario: str, seed: int = 7) -> str:
    """OpenMetrics text for one scenario (deterministic for a given seed)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    rng = np.random.default_rng(seed)
    last = END - (20 * 60 if scenario == "stale" else 0)
    times = list(range(END - HISTORY_S, last + 1, STEP_S))
    writer = OpenMetricsWriter()
    for group, rate in RATES.items():
        observations = []
        errors = []
        for _ in times:
            n = rng.poisson(rate * STEP_S)
            latency = rng.lognormal(mean=np.log(0.004), sigma=0.55, size=n)
            if scenario == "regression" and group == "treatment":
                slow = rng.random(n) < 0.05
                latency[slow] += 0.060
            observations.append(latency)
            errors.append(rng.binomial(n, ERROR_RATE))
        writer.histogram(
            "engram_recall_duration_seconds",
            {
                "job": "engram",
                "group": group,
                "mode": "blended" if group == "treatment" else "episodic",
            },
            times,
            observations,
        )
        totals = [len(o) for o in observations]
        writer.counter(
            "engram_recall",
            {"job": "engram", "group": group, "outcome": "ok"},
            times,
            [t - e for t, e in zip(totals, errors, strict=True)],
        )
        writer.counter(
            "engram_recall", {"job": "engram", "group": group, "outcome": "error"}, times, errors
        )
        spaces = SPACES[group]
        writer.gauge(
            "engram_active_spaces",
            {"job": "engram", "group": group},
            times,
            rng.integers(spaces - 5, spaces + 5, size=len(times)),
        )
    return writer.render()
