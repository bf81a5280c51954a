"""Sample a target process's memory, CPU time and start time while it is under load.

Three sources, one shape (:class:`ProcessSample`):

- :class:`ProcSampler`: a local PID through ``/proc`` (no exporter needed);
- :class:`MetricsEndpointSampler`: the target's own Prometheus ``/metrics`` page;
- :class:`PrometheusSampler`: an instant query against any PromQL HTTP API.

The Prometheus-style sources read the client libraries' standard ``process_resident_memory_bytes``,
``process_cpu_seconds_total`` and ``process_start_time_seconds``; a changed start time is a restart.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Protocol

import requests

# /proc/PID/stat reports CPU time and start time in clock ticks, RSS in pages.
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcessSample:
    t: float  # unix seconds when the sample was taken
    rss_bytes: float
    cpu_seconds: float  # cumulative CPU time (user + system)
    start_time: float  # unix seconds the process started; a different value means a restart


class SampleError(Exception):
    """The target could not be sampled (gone, unreachable, metric missing)."""


class Sampler(Protocol):
    #: Smallest RSS change the source can show (bytes); sets the leak estimate's resolution.
    resolution_bytes: float

    def sample(self) -> ProcessSample: ...

    def describe(self) -> str: ...


class ProcSampler:
    """Read ``/proc/PID/stat`` of a local process."""

    resolution_bytes: float = float(_PAGE)

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._boot_time = _boot_time()

    def describe(self) -> str:
        return f"/proc/{self.pid}"

    def sample(self) -> ProcessSample:
        try:
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as fh:
                raw = fh.read()
        except OSError as exc:
            raise SampleError(f"process {self.pid} is gone ({exc.strerror})") from exc
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        fields = raw[raw.rindex(")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])
        start_ticks, rss_pages = int(fields[19]), int(fields[21])
        if fields[0] == "Z":
            raise SampleError(f"process {self.pid} exited (zombie)")
        return ProcessSample(
            t=time.time(),
            rss_bytes=float(rss_pages * _PAGE),
            cpu_seconds=(utime + stime) / _CLK_TCK,
            start_time=self._boot_time + start_ticks / _CLK_TCK,
        )


def _boot_time() -> float:
    with open("/proc/stat", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise SampleError("no btime in /proc/stat")  # pragma: no cover - every Linux has it


_PROCESS_METRICS = (
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_start_time_seconds",
)


class MetricsEndpointSampler:
    """Scrape a target's Prometheus text endpoint (e.g. ``http://host:port/metrics``)."""

    resolution_bytes: float = float(_PAGE)

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def describe(self) -> str:
        return self.url

    def sample(self) -> ProcessSample:
        try:
            response = self._session.get(self.url, timeout=self.timeout_s)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise SampleError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        values = _parse_process_metrics(response.text)
        missing = [name for name in _PROCESS_METRICS if name not in values]
        if missing:
            raise SampleError(f"{self.url} does not export {', '.join(missing)}")
        return ProcessSample(
            t=time.time(),
            rss_bytes=values["process_resident_memory_bytes"],
            cpu_seconds=values["process_cpu_seconds_total"],
            start_time=values["process_start_time_seconds"],
        )

    def close(self) -> None:
        self._session.close()


def _parse_process_metrics(text: str) -> dict[str, float]:
    """The unlabelled ``process_*`` samples of a text exposition (cheap: no full parser needed)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("process_"):
            continue
        name, _, rest = line.partition(" ")
        if name in _PROCESS_METRICS:
            found[name] = float(rest.split()[0])
    return found


class PrometheusSampler:
    """Instant queries against a PromQL HTTP API for one target's process metrics.

    ``selector`` must pick exactly one process, e.g. ``{job="engram",instance="10.0.0.7:8080"}``.
    The sample time is the evaluation instant Prometheus reports, so samples repeat until the next
    scrape: sample no faster than the scrape interval.
    """

    resolution_bytes: float = float(_PAGE)

    def __init__(self, base_url: str, selector: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.selector = selector
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def describe(self) -> str:
        return f"{self.base_url} {self.selector}"

    def _query(self, expr: str) -> tuple[float, float]:
        try:
            response = self._session.get(
                f"{self.base_url}/api/v1/query", params={"query": expr}, timeout=self.timeout_s
            )
            response.raise_for_status()
            result = response.json()["data"]["result"]
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise SampleError(f"{self.base_url}: {expr}: {exc}") from exc
        if len(result) != 1:
            raise SampleError(f"{expr} matched {len(result)} series, need exactly 1")
        t, value = result[0]["value"]
        return float(t), float(value)

    def sample(self) -> ProcessSample:
        t, rss = self._query(f"process_resident_memory_bytes{self.selector}")
        _, cpu = self._query(f"process_cpu_seconds_total{self.selector}")
        _, start = self._query(f"process_start_time_seconds{self.selector}")
        return ProcessSample(t=t, rss_bytes=rss, cpu_seconds=cpu, start_time=start)

    def close(self) -> None:
        self._session.close()
