"""What a soak measured: per-interval load figures, RSS/CPU samples, restarts; the gate checks
over the post-warm-up window (crash, leak) and the results JSON.

Pure: nothing here starts a process or samples a target (that is :mod:`.runner` and
:mod:`.watcher`), so a 24 h soak run elsewhere is judged from its JSON with :meth:`SoakResult.load`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from pytest_rollout.files import write_text_atomically
from pytest_rollout.gate import json_safe
from pytest_rollout.instants import rfc3339
from pytest_rollout.load.leak import (
    InsufficientData,
    LeakEstimate,
    LeakVerdict,
    estimate_leak,
    judge_leak,
)
from pytest_rollout.load.soak_config import SoakConfig
from pytest_rollout.outcomes import inconclusive

if TYPE_CHECKING:
    from pytest_rollout.gate import GateRecord

SCHEMA = 1
# A process start time read twice differs by float noise only; a restart moves it by seconds.
RESTART_TOLERANCE_S = 0.5


@dataclass(frozen=True)
class IntervalStats:
    t0: float
    t1: float
    warmup: bool
    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    users: int
    workers: int


@dataclass(frozen=True)
class ResourceSample:
    t: float
    rss_bytes: float
    cpu_seconds: float
    start_time: float
    warmup: bool


@dataclass(frozen=True)
class Restart:
    t: float
    previous_start_time: float
    start_time: float


def percentile_from_counts(counts: dict[int, int], q: float) -> float | None:
    """Smallest response time (ms) with at least ``q`` of the requests at or below it.

    ``counts`` is Locust's ``{rounded_ms: requests}`` histogram (exact below 100 ms, 10 ms steps
    below 1 s, 100 ms steps above), so results have that resolution.
    """
    total = sum(counts.values())
    if total == 0:
        return None
    need = q * total
    running = 0
    for ms in sorted(counts):
        running += counts[ms]
        if running >= need:
            return float(ms)
    return float(max(counts))  # pragma: no cover - float rounding only


class SoakSummary(TypedDict):
    """The post-warm-up figures of :meth:`SoakResult.summary` (None: nothing to compute it from)."""

    measured_s: float
    requests: int
    failures: int
    failure_ratio: float | None
    rps: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    cpu_cores_mean: float | None
    rss_start_bytes: float | None
    rss_end_bytes: float | None
    rss_samples: int
    restarts: int
    workers: int


@dataclass
class SoakResult:
    """Everything a soak run measured; JSON round-trips through :meth:`to_dict`/:meth:`load`."""

    config: SoakConfig
    started_at: float  # unix seconds the load started
    ended_at: float
    warmup_end: float
    completed: bool
    stop_reason: str
    intervals: list[IntervalStats] = field(default_factory=list)
    resources: list[ResourceSample] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)
    sample_errors: list[dict[str, Any]] = field(default_factory=list)
    sample_error_count: int = 0
    target_gone: str | None = None  # why the target stopped answering to the sampler for good
    errors: list[dict[str, Any]] = field(default_factory=list)  # Locust's failure categories
    measured_histogram: dict[int, int] = field(default_factory=dict)  # post-warm-up, ms -> count
    resolution_bytes: float = 4096.0

    # ---- figures over the post-warm-up window -------------------------------------------
    def measured_intervals(self) -> list[IntervalStats]:
        return [i for i in self.intervals if not i.warmup]

    def summary(self) -> SoakSummary:
        measured = self.measured_intervals()
        requests = sum(i.requests for i in measured)
        failures = sum(i.failures for i in measured)
        span = (measured[-1].t1 - measured[0].t0) if measured else 0.0
        samples = [s for s in self.resources if not s.warmup]
        cpu = _cpu_cores(samples)
        return {
            "measured_s": span,
            "requests": requests,
            "failures": failures,
            "failure_ratio": failures / requests if requests else None,
            "rps": requests / span if span > 0 else None,
            "p50_ms": percentile_from_counts(self.measured_histogram, 0.50),
            "p95_ms": percentile_from_counts(self.measured_histogram, 0.95),
            "p99_ms": percentile_from_counts(self.measured_histogram, 0.99),
            "cpu_cores_mean": cpu,
            "rss_start_bytes": samples[0].rss_bytes if samples else None,
            "rss_end_bytes": samples[-1].rss_bytes if samples else None,
            "rss_samples": len(samples),
            "restarts": len(self.restarts),
            "workers": max((i.workers for i in measured), default=0),
        }

    def leak_estimate(self, confidence: float = 0.95) -> LeakEstimate:
        """RSS trend over the post-warm-up samples of the longest run without a restart."""
        segment = _longest_segment([s for s in self.resources if not s.warmup], self.restarts)
        return estimate_leak(
            [s.t for s in segment],
            [s.rss_bytes for s in segment],
            confidence=confidence,
            resolution_bytes=self.resolution_bytes,
        )

    # ---- gate checks ---------------------------------------------------------------------
    def leak_verdict(
        self, limit_pct_per_hour: float = 1.0, confidence: float = 0.95
    ) -> LeakVerdict:
        if not self.resources:
            inconclusive("no RSS samples: give the soak a target PID, /metrics URL or Prometheus")
        try:
            estimate = self.leak_estimate(confidence)
        except InsufficientData as exc:
            inconclusive(f"cannot estimate the RSS trend: {exc}; soak longer or sample more often")
        return judge_leak(estimate, limit_pct_per_hour)

    def check_no_leak(
        self,
        limit_pct_per_hour: float = 1.0,
        gate: GateRecord | None = None,
        confidence: float = 0.95,
    ) -> LeakVerdict:
        """Pass when the RSS slope's upper bound is under the limit; AssertionError on a leak;
        inconclusive when the run is too short to tell."""
        verdict = self.leak_verdict(limit_pct_per_hour, confidence)
        est = verdict.estimate
        if gate is not None:
            gate.observe(
                metric="soak RSS growth",
                observed=est.slope_pct_per_hour,
                threshold=limit_pct_per_hour,
                unit="%/h",
                n={"samples": est.n},
                ci=est.ci_pct_per_hour,
                explanation=f"{verdict.reason}; {est.method}",
            )
            gate.series["rss_bytes"] = [[s.t, s.rss_bytes] for s in self.resources]
        if verdict.outcome == "fail":
            raise AssertionError(verdict.reason)
        if verdict.outcome == "inconclusive":
            inconclusive(verdict.reason)
        return verdict

    def check_no_crash(
        self, gate: GateRecord | None = None, max_failure_ratio: float | None = None
    ) -> None:
        """Fail on a target restart, a target that went away, or (if given) too many failed
        requests; inconclusive when the run did not complete or measured nothing."""
        summary = self.summary()
        if gate is not None:
            gate.observe(
                metric="soak restarts",
                observed=float(len(self.restarts)),
                threshold=0.0,
                n={"requests": summary["requests"], "samples": summary["rss_samples"]},
                explanation=f"{summary['failures']} failed requests, "
                f"{self.sample_error_count} failed samples; stop: {self.stop_reason}",
            )
            gate.series["rps"] = [[i.t1, i.rps] for i in self.intervals]
        if self.restarts:
            first = self.restarts[0]
            when = rfc3339(first.t)
            raise AssertionError(
                f"target restarted {len(self.restarts)} time(s) during the soak, first seen at "
                f"{when} (start time {first.previous_start_time:.0f} -> {first.start_time:.0f}); "
                "check its logs and exit status"
            )
        if self.target_gone:
            raise AssertionError(f"target went away during the soak: {self.target_gone}")
        if not self.completed:
            inconclusive(f"soak did not complete: {self.stop_reason}")
        if summary["requests"] == 0:
            inconclusive("soak measured no requests after warm-up; check the locustfile and host")
        ratio = summary["failure_ratio"]
        if max_failure_ratio is not None and ratio is not None and ratio > max_failure_ratio:
            top = self.errors[0]["error"] if self.errors else "see results JSON"
            raise AssertionError(
                f"{summary['failures']} of {summary['requests']} requests failed "
                f"({ratio:.3%} > {max_failure_ratio:.3%}); most common: {top}"
            )

    # ---- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        leak: dict[str, Any]
        try:
            leak = self.leak_estimate().to_dict()
        except InsufficientData as exc:
            leak = {"error": str(exc)}
        return {
            "schema": SCHEMA,
            "kind": "soak",
            "config": self.config.to_dict(),
            "started_at": self.started_at,
            "started_at_utc": rfc3339(self.started_at),
            "ended_at": self.ended_at,
            "warmup_end": self.warmup_end,
            "completed": self.completed,
            "stop_reason": self.stop_reason,
            "summary": self.summary(),
            "leak": leak,
            "intervals": [asdict(i) for i in self.intervals],
            "resources": [asdict(s) for s in self.resources],
            "restarts": [asdict(r) for r in self.restarts],
            "sample_errors": self.sample_errors,
            "sample_error_count": self.sample_error_count,
            "target_gone": self.target_gone,
            "errors": self.errors,
            "measured_histogram_ms": {
                str(k): v for k, v in sorted(self.measured_histogram.items())
            },
            "resolution_bytes": self.resolution_bytes,
        }

    def write(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(json_safe(self.to_dict()), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SoakResult:
        if data.get("schema") != SCHEMA or data.get("kind") != "soak":
            raise ValueError("not a soak results file (schema 1, kind soak)")
        return cls(
            config=SoakConfig.from_dict(data["config"]),
            started_at=data["started_at"],
            ended_at=data["ended_at"],
            warmup_end=data["warmup_end"],
            completed=data["completed"],
            stop_reason=data["stop_reason"],
            intervals=[IntervalStats(**i) for i in data["intervals"]],
            resources=[ResourceSample(**s) for s in data["resources"]],
            restarts=[Restart(**r) for r in data["restarts"]],
            sample_errors=data["sample_errors"],
            sample_error_count=data["sample_error_count"],
            target_gone=data["target_gone"],
            errors=data["errors"],
            measured_histogram={int(k): v for k, v in data["measured_histogram_ms"].items()},
            resolution_bytes=data.get("resolution_bytes", 4096.0),
        )

    @classmethod
    def load(cls, path: Path) -> SoakResult:
        """Read a results JSON, e.g. from a 24 h ``rollout soak`` that ran outside pytest."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _cpu_cores(samples: list[ResourceSample]) -> float | None:
    """Mean CPU use in cores between the first and last sample (restart-free stretches only)."""
    used = 0.0
    span = 0.0
    for a, b in zip(samples, samples[1:], strict=False):
        if abs(b.start_time - a.start_time) > RESTART_TOLERANCE_S or b.cpu_seconds < a.cpu_seconds:
            continue
        used += b.cpu_seconds - a.cpu_seconds
        span += b.t - a.t
    return used / span if span > 0 else None


def _longest_segment(
    samples: list[ResourceSample], restarts: list[Restart]
) -> list[ResourceSample]:
    if not restarts:
        return samples
    segments: list[list[ResourceSample]] = []
    for s in samples:
        if segments and abs(segments[-1][-1].start_time - s.start_time) <= RESTART_TOLERANCE_S:
            segments[-1].append(s)
        else:
            segments.append([s])
    return max(segments, key=len, default=[])
