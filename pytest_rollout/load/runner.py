"""Soak runs: Locust load against a target while its memory, CPU and restarts are watched.

Locust runs in child processes (``python -m pytest_rollout.load.driver``) so its gevent
monkey-patching never touches this process, which may be pytest itself.  This module starts and
reaps those processes; :mod:`.events` reads the driver's per-interval statistics and prints a
progress line every so often, :mod:`.watcher` samples the target's RSS/CPU on its own thread, and
:mod:`.result` keeps only post-warm-up figures for the verdicts.

Typical use (what the ``soak`` fixture wraps)::

    result = SoakRunner(tmp_path).run(SoakConfig(target="http://127.0.0.1:8080",
                                                 locustfile=Path("locustfile.py"),
                                                 users=20, duration_s=20, warmup_s=5,
                                                 target_pid=pid))
    result.check_no_crash(gate)
    result.check_no_leak(limit_pct_per_hour=1.0, gate=gate)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import IO

from pytest_rollout.durations import format_duration
from pytest_rollout.load.events import DriverEvents, format_hms, format_number
from pytest_rollout.load.result import SoakResult
from pytest_rollout.load.soak_config import SoakConfig
from pytest_rollout.load.watcher import ResourceWatcher
from pytest_rollout.net import free_port

# SoakConfig and SoakResult stay importable from here, where gates and docs have imported them.
__all__ = ["SoakConfig", "SoakError", "SoakResult", "SoakRunner", "run_workers"]


class SoakError(RuntimeError):
    """The load generator itself failed (bad locustfile, workers missing, driver crashed)."""


def _driver_env() -> dict[str, str]:
    env = dict(os.environ)
    # The driver must import this package even when it is used from a source checkout.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


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
        port = config.master_port or free_port()
        sampler = config.sampler()
        watcher = ResourceWatcher(sampler, config.sample_interval_s) if sampler else None
        # The stack unwinds in reverse: stop the watchdog and the watcher, reap the processes,
        # close their logs, close the sampler.
        with ExitStack() as stack:
            if watcher is not None:
                stack.callback(watcher.close_sampler)
                watcher.take()  # the start time before any load: a restart is measured against it
            logs = [
                stack.enter_context(open(self.workdir / name, "wb")) for name in _log_names(config)
            ]
            # Entered after the logs, so the processes are reaped before their logs are closed.
            procs = stack.enter_context(_ProcessGroup(grace_s=15.0 + config.interval_s))
            driver = self._start_processes(config, port, procs, logs)
            self._say(self._plan_line(config, port, watcher))
            if watcher is not None:
                stack.callback(watcher.stop)
            events = self._follow(config, driver, watcher, stack)
        result = self._result(config, events, watcher, driver.returncode)
        summary = result.summary()
        self._say(
            f"done ({result.stop_reason}): {summary['requests']} requests, "
            f"{summary['failures']} failed, {format_number(summary['rps'])} req/s, "
            f"p99 {format_number(summary['p99_ms'])} ms, {len(result.restarts)} restart(s)"
        )
        if out is not None:
            result.write(out)
        return result

    def _follow(
        self,
        config: SoakConfig,
        driver: subprocess.Popen[bytes],
        watcher: ResourceWatcher | None,
        stack: ExitStack,
    ) -> DriverEvents:
        """Read the driver's events until it ends, the target goes away, or Ctrl-C."""
        events = DriverEvents(config, watcher, self._say, stop_driver=driver.terminate)
        # A driver that hangs (a locustfile stuck in on_stop, a lost master) must not hang us.
        watchdog = threading.Timer(
            config.duration_s + config.expect_workers_timeout_s + 60.0, driver.terminate
        )
        watchdog.daemon = True
        watchdog.start()
        stack.callback(watchdog.cancel)
        assert driver.stdout is not None
        try:
            events.read(driver.stdout)
        except KeyboardInterrupt:
            events.stop_reason = "interrupted (Ctrl-C)"
            driver.terminate()
        return events

    def _start_processes(
        self, config: SoakConfig, port: int, procs: _ProcessGroup, logs: Sequence[IO[bytes]]
    ) -> subprocess.Popen[bytes]:
        """Start the driver (local or master) and the local workers, each logging to its file
        of :func:`_log_names`.  Returns the driver, whose stdout carries the events."""
        env = _driver_env()
        master_log, *worker_logs = logs
        driver = procs.start(
            self._driver_cmd(config, _driver_role(config), port),
            stdout=subprocess.PIPE,
            stderr=master_log,
            env=env,
            cwd=self.workdir,
        )
        for log in worker_logs:
            procs.start(
                self._driver_cmd(config, "worker", port),
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                cwd=self.workdir,
            )
        return driver

    @staticmethod
    def _plan_line(config: SoakConfig, port: int, watcher: ResourceWatcher | None) -> str:
        distributed = config.workers + config.remote_workers > 0
        return (
            f"{config.users} users on {config.target} for {format_hms(config.duration_s)} "
            f"(warm-up {format_hms(config.warmup_s)}), "
            + (f"master + {config.workers} local worker(s)" if distributed else "1 Locust process")
            + (
                f" + {config.remote_workers} remote on {config.master_bind_host}:{port}"
                if config.remote_workers
                else ""
            )
            + (f"; sampling {watcher.sampler.describe()}" if watcher else "; no resource sampling")
        )

    def _result(
        self,
        config: SoakConfig,
        events: DriverEvents,
        watcher: ResourceWatcher | None,
        rc: int,
    ) -> SoakResult:
        """The result of a finished run; SoakError when the load generator produced nothing."""
        stop_reason, completed = events.stop_reason, events.completed
        if rc != 0 and completed:
            completed = False
            stop_reason = f"Locust driver exited with status {rc}"
        if not events.intervals and not completed:
            tail = (self.workdir / _log_names(config)[0]).read_text(errors="replace")[-2000:]
            raise SoakError(f"load generator failed ({stop_reason}, exit {rc}):\n{tail}")

        run_end = events.started_at + config.duration_s + config.sample_interval_s / 2
        return SoakResult(
            config=config,
            started_at=events.started_at,
            ended_at=time.time(),
            warmup_end=events.warmup_end,
            completed=completed,
            stop_reason=stop_reason,
            intervals=events.intervals,
            resources=watcher.resource_samples(events.warmup_end, run_end) if watcher else [],
            restarts=watcher.restarts if watcher else [],
            sample_errors=watcher.errors if watcher else [],
            sample_error_count=watcher.error_count if watcher else 0,
            target_gone=watcher.gone if watcher else None,
            errors=events.errors,
            measured_histogram=dict(events.histogram),
            resolution_bytes=watcher.sampler.resolution_bytes if watcher else 4096.0,
        )


def _driver_role(config: SoakConfig) -> str:
    return "master" if config.workers + config.remote_workers > 0 else "local"


def _log_names(config: SoakConfig) -> list[str]:
    """The driver's log, then one per local worker."""
    return [f"locust-{_driver_role(config)}.log"] + [
        f"locust-worker-{index}.log" for index in range(config.workers)
    ]


class _ProcessGroup:
    """Child processes reaped together on exit: each gets until a shared deadline, is then
    terminated, then killed, so a hung Locust never outlives the run."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        cmd: list[str],
        *,
        stdout: int,
        stderr: IO[bytes],
        env: dict[str, str],
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=env, cwd=cwd)
        self.procs.append(proc)
        return proc

    def __enter__(self) -> _ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        deadline = time.monotonic() + self.grace_s
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for proc in self.procs:
            if proc.stdout is not None:
                proc.stdout.close()


def run_workers(
    locustfile: Path,
    master_host: str,
    master_port: int,
    count: int,
    workdir: Path,
    connect_timeout_s: float = 120.0,
) -> int:
    """Run ``count`` Locust workers for a master on another machine until it quits.

    The same locustfile must be on both machines; the master tells workers the target and users.
    Returns 3 when a worker has not reached the master within ``connect_timeout_s`` (Locust
    itself would retry for minutes, looking like a running soak) or exits before reaching it.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    env = _driver_env()
    cmd = [
        sys.executable, "-m", "pytest_rollout.load.driver", "--role", "worker",
        "--locustfile", str(Path(locustfile).resolve()),
        "--master-host", master_host, "--master-port", str(master_port),
    ]  # fmt: skip
    address = f"{master_host}:{master_port}"
    with ExitStack() as stack:
        logs = [
            stack.enter_context(open(workdir / f"locust-worker-{index}.log", "wb"))
            for index in range(count)
        ]
        # Only reaps workers left behind by an error: they are waited for below.
        workers = stack.enter_context(_ProcessGroup(grace_s=0.0))
        procs = [workers.start(cmd, stdout=subprocess.PIPE, stderr=log, env=env) for log in logs]
        joined = [_ready_event(proc) for proc in procs]
        problem = _wait_joined(procs, joined, connect_timeout_s, address, logs)
        if problem:
            for proc in procs:
                proc.terminate()
            sys.stderr.write(f"rollout soak: {problem}\n")
            return 3
        sys.stderr.write(f"[rollout soak] {count} worker(s) joined the master at {address}\n")
        try:
            codes = [proc.wait() for proc in procs]
        except KeyboardInterrupt:
            for proc in procs:
                proc.terminate()
            codes = [proc.wait() for proc in procs]
    return max((abs(c) for c in codes), default=0)


def _ready_event(proc: subprocess.Popen[bytes]) -> threading.Event:
    """Set when the worker's driver says it is ``ready``: Locust's worker runner exists only
    once the master answered.  The thread drains the driver's stdout to its end."""
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if b'"event":"ready"' in line:
                ready.set()

    threading.Thread(target=read, name=f"locust-worker-{proc.pid}", daemon=True).start()
    return ready


def _wait_joined(
    procs: Sequence[subprocess.Popen[bytes]],
    joined: Sequence[threading.Event],
    timeout_s: float,
    address: str,
    logs: Sequence[IO[bytes]],
) -> str:
    """Wait until every worker reached the master: "" then, else why not and what to do."""
    deadline = time.monotonic() + timeout_s
    while not all(event.is_set() for event in joined):
        for proc, event, log in zip(procs, joined, logs, strict=True):
            # (the reader may not have seen a "ready" written just before the exit: wait for it)
            if proc.poll() is not None and not event.wait(1.0):
                return (
                    f"a worker exited ({proc.returncode}) before reaching the master at "
                    f"{address}; see {log.name}"
                )
        if time.monotonic() > deadline:
            waited = format_duration(timeout_s)
            return (
                f"no master answered at {address} within {waited} (--expect-workers-timeout): "
                "start the master first (`rollout soak --remote-workers N --master-bind 0.0.0.0 "
                "--master-port PORT ...`), or check HOST:PORT and the firewall between them"
            )
        time.sleep(0.1)
    return ""
