"""Soak runs: Locust load against a target while its memory, CPU and restarts are watched.

Locust runs in child processes (``python -m pytest_rollout.load.driver``) so its gevent
monkey-patching never touches this process, which may be pytest itself.  This process reads the
driver's per-interval statistics, samples the target's RSS/CPU on its own thread, prints a progress
line every so often, and keeps only post-warm-up figures for the verdicts.

Typical use (what the ``soak`` fixture wraps)::

    result = SoakRunner(tmp_path).run(SoakConfig(target="http://127.0.0.1:8080",
                                                 locustfile=Path("locustfile.py"),
                                                 users=20, duration_s=20, warmup_s=5,
                                                 target_pid=pid))
    result.check_no_crash(gate)
    result.check_no_leak(limit_pct_per_hour=1.0, gate=gate)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pytest_rollout.gate import json_safe
from pytest_rollout.instants import rfc3339
from pytest_rollout.load.leak import (
    InsufficientData,
    LeakEstimate,
    LeakVerdict,
    estimate_leak,
    judge_leak,
)
from pytest_rollout.load.sampling import (
    MetricsEndpointSampler,
    ProcessSample,
    ProcSampler,
    PrometheusSampler,
    SampleError,
    Sampler,
)
from pytest_rollout.net import free_port
from pytest_rollout.outcomes import inconclusive

if TYPE_CHECKING:
    from pytest_rollout.gate import GateRecord

SCHEMA = 1
# A process start time read twice differs by float noise only; a restart moves it by seconds.
_RESTART_TOLERANCE_S = 0.5
_MAX_LOGGED_SAMPLE_ERRORS = 100


class SoakError(RuntimeError):
    """The load generator itself failed (bad locustfile, workers missing, driver crashed)."""


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

    def summary(self) -> dict[str, Any]:
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
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(json_safe(self.to_dict()), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)  # a reader never sees half a file

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
        if abs(b.start_time - a.start_time) > _RESTART_TOLERANCE_S or b.cpu_seconds < a.cpu_seconds:
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
        if segments and abs(segments[-1][-1].start_time - s.start_time) <= _RESTART_TOLERANCE_S:
            segments[-1].append(s)
        else:
            segments.append([s])
    return max(segments, key=len, default=[])


def _fmt_hms(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _driver_env() -> dict[str, str]:
    env = dict(os.environ)
    # The driver must import this package even when it is used from a source checkout.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _ResourceWatcher(threading.Thread):
    """Samples the target on its own thread, so a slow scrape never delays reading Locust."""

    def __init__(self, sampler: Sampler, interval_s: float) -> None:
        super().__init__(name="soak-resource-sampler", daemon=True)
        self.sampler = sampler
        self.interval_s = interval_s
        self.samples: list[ProcessSample] = []
        self.restarts: list[Restart] = []
        self.errors: list[dict[str, Any]] = []
        self.error_count = 0
        self.gone: str | None = None
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._last_start: float | None = None

    def take(self) -> None:
        try:
            sample = self.sampler.sample()
        except SampleError as exc:
            with self._lock:
                self.error_count += 1
                if len(self.errors) < _MAX_LOGGED_SAMPLE_ERRORS:
                    self.errors.append({"t": time.time(), "error": str(exc)})
            # A local PID that vanished never comes back; a URL may (the target restarting).
            if isinstance(self.sampler, ProcSampler):
                self.gone = str(exc)
                self._stop_event.set()
            return
        with self._lock:
            last = self._last_start
            if last is not None and abs(sample.start_time - last) > _RESTART_TOLERANCE_S:
                self.restarts.append(Restart(sample.t, last, sample.start_time))
            self._last_start = sample.start_time
            self.samples.append(sample)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            self.take()
            next_at += self.interval_s
            self._stop_event.wait(max(0.0, next_at - time.monotonic()))

    def latest(self) -> ProcessSample | None:
        with self._lock:
            return self.samples[-1] if self.samples else None

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


class SoakRunner:
    """Runs soaks; ``workdir`` receives Locust's logs, ``progress`` the progress lines."""

    def __init__(self, workdir: Path, progress: IO[str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.progress = progress if progress is not None else sys.stderr

    def _say(self, line: str) -> None:
        self.progress.write(f"[rollout soak] {line}\n")
        self.progress.flush()

    def _driver_cmd(self, config: SoakConfig, role: str, port: int) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "pytest_rollout.load.driver",
            "--role",
            role,
            "--locustfile",
            str(Path(config.locustfile).resolve()),
            "--master-port",
            str(port),
            "--report-interval",
            str(min(1.0, config.interval_s)),
        ]
        if role != "worker":
            cmd += [
                "--host",
                config.target,
                "--users",
                str(config.users),
                "--spawn-rate",
                str(config.spawn_rate),
                "--run-time",
                str(config.duration_s),
                "--interval",
                str(config.interval_s),
                "--expect-workers",
                str(config.workers + config.remote_workers),
                "--expect-workers-timeout",
                str(config.expect_workers_timeout_s),
                "--master-bind-host",
                config.master_bind_host,
            ]
        return cmd

    def run(self, config: SoakConfig, out: Path | None = None) -> SoakResult:
        """Run the soak to the end (or Ctrl-C) and return its result; also write ``out``."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        distributed = config.workers + config.remote_workers > 0
        port = config.master_port or free_port()
        env = _driver_env()

        sampler = config.sampler()
        watcher = _ResourceWatcher(sampler, config.sample_interval_s) if sampler else None
        if watcher is not None:
            watcher.take()  # the start time before any load: a restart is measured against it

        logs: list[IO[bytes]] = []
        procs: list[subprocess.Popen[bytes]] = []
        role = "master" if distributed else "local"
        master_log: IO[bytes] = open(self.workdir / f"locust-{role}.log", "wb")  # noqa: SIM115
        logs.append(master_log)
        driver = subprocess.Popen(
            self._driver_cmd(config, role, port),
            stdout=subprocess.PIPE,
            stderr=master_log,
            env=env,
            cwd=self.workdir,
        )
        procs.append(driver)
        for index in range(config.workers):
            log: IO[bytes] = open(self.workdir / f"locust-worker-{index}.log", "wb")  # noqa: SIM115
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    self._driver_cmd(config, "worker", port),
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    env=env,
                    cwd=self.workdir,
                )
            )
        self._say(
            f"{config.users} users on {config.target} for {_fmt_hms(config.duration_s)} "
            f"(warm-up {_fmt_hms(config.warmup_s)}), "
            + (f"master + {config.workers} local worker(s)" if distributed else "1 Locust process")
            + (
                f" + {config.remote_workers} remote on {config.master_bind_host}:{port}"
                if config.remote_workers
                else ""
            )
            + (f"; sampling {sampler.describe()}" if sampler else "; no resource sampling")
        )

        started_at = time.time()
        intervals: list[IntervalStats] = []
        histogram: Counter[int] = Counter()
        errors: list[dict[str, Any]] = []
        stop_reason = "driver ended without a reason"
        completed = False
        warmup_end = started_at + config.warmup_s
        last_progress = time.monotonic()
        # A driver that hangs (a locustfile stuck in on_stop, a lost master) must not hang us.
        watchdog = threading.Timer(
            config.duration_s + config.expect_workers_timeout_s + 60.0, driver.terminate
        )
        watchdog.daemon = True
        watchdog.start()
        assert driver.stdout is not None
        try:
            for raw in driver.stdout:
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue  # a stray print from the locustfile
                kind = event.get("event")
                if kind == "started":
                    started_at = float(event["t"])
                    warmup_end = started_at + config.warmup_s
                    if watcher is not None:
                        watcher.start()
                elif kind == "interval":
                    interval = self._interval(event, warmup_end)
                    intervals.append(interval)
                    if not interval.warmup:
                        histogram.update({int(k): int(v) for k, v in event["rt"].items()})
                    if time.monotonic() - last_progress >= config.progress_every_s:
                        last_progress = time.monotonic()
                        self._say(self._progress_line(config, started_at, intervals, watcher))
                elif kind == "errors":
                    errors = sorted(event["errors"], key=lambda e: -int(e["occurrences"]))
                elif kind == "done":
                    stop_reason = str(event["reason"])
                    completed = stop_reason == "run time reached"
                if watcher is not None and watcher.gone:
                    stop_reason = f"target went away: {watcher.gone}"
                    driver.terminate()
        except KeyboardInterrupt:
            stop_reason = "interrupted (Ctrl-C)"
            driver.terminate()
        finally:
            watchdog.cancel()
            if watcher is not None and watcher.is_alive():
                watcher.stop()
            rc = self._reap(procs, config)
            driver.stdout.close()
            for log in logs:
                log.close()
            if sampler is not None and hasattr(sampler, "close"):
                sampler.close()
        if rc != 0 and completed:
            completed = False
            stop_reason = f"Locust driver exited with status {rc}"
        if not intervals and not completed:
            tail = (self.workdir / f"locust-{role}.log").read_text(errors="replace")[-2000:]
            raise SoakError(f"load generator failed ({stop_reason}, exit {rc}):\n{tail}")

        run_end = started_at + config.duration_s + config.sample_interval_s / 2
        result = SoakResult(
            config=config,
            started_at=started_at,
            ended_at=time.time(),
            warmup_end=warmup_end,
            completed=completed,
            stop_reason=stop_reason,
            intervals=intervals,
            resources=[
                ResourceSample(s.t, s.rss_bytes, s.cpu_seconds, s.start_time, s.t < warmup_end)
                for s in (watcher.samples if watcher else [])
                if s.t <= run_end  # not the idle tail while Locust shuts down
            ],
            restarts=watcher.restarts if watcher else [],
            sample_errors=watcher.errors if watcher else [],
            sample_error_count=watcher.error_count if watcher else 0,
            target_gone=watcher.gone if watcher else None,
            errors=errors,
            measured_histogram=dict(histogram),
            resolution_bytes=sampler.resolution_bytes if sampler else 4096.0,
        )
        summary = result.summary()
        self._say(
            f"done ({stop_reason}): {summary['requests']} requests, {summary['failures']} failed, "
            f"{_fmt_num(summary['rps'])} req/s, p99 {_fmt_num(summary['p99_ms'])} ms, "
            f"{len(result.restarts)} restart(s)"
        )
        if out is not None:
            result.write(out)
        return result

    @staticmethod
    def _interval(event: dict[str, Any], warmup_end: float) -> IntervalStats:
        counts = {int(k): int(v) for k, v in event["rt"].items()}
        t0, t1 = float(event["t0"]), float(event["t1"])
        requests = int(event["requests"])
        return IntervalStats(
            t0=t0,
            t1=t1,
            warmup=t0 < warmup_end,  # an interval that overlaps the warm-up is warm-up
            requests=requests,
            failures=int(event["failures"]),
            rps=requests / (t1 - t0) if t1 > t0 else 0.0,
            p50_ms=percentile_from_counts(counts, 0.50),
            p95_ms=percentile_from_counts(counts, 0.95),
            p99_ms=percentile_from_counts(counts, 0.99),
            users=int(event["users"]),
            workers=int(event["workers"]),
        )

    @staticmethod
    def _progress_line(
        config: SoakConfig,
        started_at: float,
        intervals: list[IntervalStats],
        watcher: _ResourceWatcher | None,
    ) -> str:
        elapsed = time.time() - started_at
        last = intervals[-1]
        line = (
            f"{_fmt_hms(elapsed)}/{_fmt_hms(config.duration_s)} "
            f"{'warm-up ' if last.warmup else ''}users {last.users} workers {last.workers} "
            f"{last.rps:.0f} req/s p50 {_fmt_num(last.p50_ms)} ms p99 {_fmt_num(last.p99_ms)} ms "
            f"failures {sum(i.failures for i in intervals)}"
        )
        sample = watcher.latest() if watcher else None
        if sample is not None:
            line += f" rss {sample.rss_bytes / 1e6:.1f} MB"
        if watcher is not None and watcher.restarts:
            line += f" RESTARTS {len(watcher.restarts)}"
        return line

    @staticmethod
    def _reap(procs: list[subprocess.Popen[bytes]], config: SoakConfig) -> int:
        """Wait for the driver and workers; kill what hangs.  Returns the driver's exit status."""
        grace = 15.0 + config.interval_s
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        return procs[0].returncode if procs else 0


def _fmt_num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def run_workers(
    locustfile: Path, master_host: str, master_port: int, count: int, workdir: Path
) -> int:
    """Run ``count`` Locust workers for a master on another machine until it quits.

    The same locustfile must be on both machines; the master tells workers the target and users.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    env = _driver_env()
    cmd = [
        sys.executable, "-m", "pytest_rollout.load.driver", "--role", "worker",
        "--locustfile", str(Path(locustfile).resolve()),
        "--master-host", master_host, "--master-port", str(master_port),
    ]  # fmt: skip
    procs = []
    logs: list[IO[bytes]] = []
    for index in range(count):
        log: IO[bytes] = open(workdir / f"locust-worker-{index}.log", "wb")  # noqa: SIM115
        logs.append(log)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env))
    sys.stderr.write(f"[rollout soak] {count} worker(s) joined {master_host}:{master_port}\n")
    try:
        codes = [proc.wait() for proc in procs]
    except KeyboardInterrupt:
        for proc in procs:
            proc.terminate()
        codes = [proc.wait() for proc in procs]
    finally:
        for log in logs:
            log.close()
    return max((abs(c) for c in codes), default=0)
