"""The server's own metrics, in the Prometheus exposition format (GET /metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Gate runs take 0.3 s (no gates) to tens of seconds (a week of history); Flagger waits 10 s.
DURATION_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 60.0, 300.0)


@dataclass
class ServeMetrics:
    """One registry per server (not the global one), so tests can run several side by side."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.decision = Gauge(
            "rollout_decision",
            "The phase's latest decision as its exit code: 0 GO, 1 HOLD, 10 ABORT",
            ["phase"],
            registry=self.registry,
        )
        self.evaluations = Counter(
            "rollout_evaluations",
            "Gate runs by phase and decision",
            ["phase", "decision"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "rollout_evaluation_duration_seconds",
            "Wall time of one gate run, fork to decision",
            ["phase"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.rollbacks = Counter(
            "rollout_rollbacks",
            "Rollbacks by phase, source (alert: an Alertmanager abort alert; evaluate: the gate "
            "run's own --rollout-on-abort rollback) and result (verified or failed)",
            ["phase", "source", "result"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
