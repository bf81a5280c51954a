"""What a soak runs: target, locustfile, users, timing, and where the target's RSS/CPU come from.

Validated when built by hand; rebuilt unchecked from a results JSON (see :meth:`from_dict`), whose
locustfile may not exist on the machine that reads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from pytest_rollout.load.sampling import (
    MetricsEndpointSampler,
    ProcSampler,
    PrometheusSampler,
    Sampler,
)


@dataclass(frozen=True)
class SoakConfig:
    target: str  # base URL the Locust users hit
    locustfile: Path
    users: int = 10
    spawn_rate: float = 10.0
    duration_s: float = 60.0  # total run time, warm-up included
    warmup_s: float = 0.0  # excluded from every figure
    workers: int = 0  # 0: one local Locust process; N: a master and N workers on loopback
    remote_workers: int = 0  # extra workers the master waits for (other machines)
    master_bind_host: str = "127.0.0.1"  # "0.0.0.0" to let remote workers in
    master_port: int | None = None  # None: a free port
    expect_workers_timeout_s: float = 60.0
    interval_s: float = 1.0  # resolution of the per-interval latency/RPS series
    sample_interval_s: float = 1.0  # how often the target's RSS/CPU is sampled
    progress_every_s: float = 60.0
    # Where the target's RSS/CPU come from (first one set wins): a local PID, its /metrics page,
    # or a Prometheus server and a selector matching exactly one process.
    target_pid: int | None = None
    target_metrics_url: str | None = None
    prometheus_url: str | None = None
    prometheus_selector: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.users < 1:
            problems.append(f"users must be >= 1, got {self.users}")
        if self.spawn_rate <= 0:
            problems.append(f"spawn rate must be > 0, got {self.spawn_rate}")
        if self.duration_s <= 0:
            problems.append(f"duration must be > 0, got {self.duration_s}")
        if not 0 <= self.warmup_s < self.duration_s:
            problems.append(f"warm-up {self.warmup_s} s must be >= 0 and < the duration")
        if self.workers < 0 or self.remote_workers < 0:
            problems.append("worker counts must be >= 0")
        if self.interval_s <= 0 or self.sample_interval_s <= 0:
            problems.append("intervals must be > 0")
        if self.prometheus_url and not self.prometheus_selector:
            problems.append("prometheus_url needs prometheus_selector (one process)")
        if not Path(self.locustfile).is_file():
            problems.append(f"locustfile {self.locustfile} does not exist")
        if problems:
            raise ValueError("; ".join(problems))

    def sampler(self) -> Sampler | None:
        if self.target_pid is not None:
            return ProcSampler(self.target_pid)
        if self.target_metrics_url:
            return MetricsEndpointSampler(self.target_metrics_url)
        if self.prometheus_url and self.prometheus_selector:
            return PrometheusSampler(self.prometheus_url, self.prometheus_selector)
        return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["locustfile"] = str(self.locustfile)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SoakConfig:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["locustfile"] = Path(kwargs["locustfile"])
        return _unchecked(cls, kwargs)


def _unchecked(cls: type[SoakConfig], kwargs: dict[str, Any]) -> SoakConfig:
    """Rebuild a recorded config without re-validating paths that may not exist here."""
    obj = object.__new__(cls)
    for name, value in kwargs.items():
        object.__setattr__(obj, name, value)
    return obj
