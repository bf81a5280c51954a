"""The local staging stack: the service, its baseline twin, a real Prometheus, and the flag file.

The service ("shadow" replica, ``engram_url``, ``data/``, ``flags.json``) is the one every gate,
flag change and drill acts on. Its twin ("baseline" replica, ``baseline_url``, ``baseline-data/``,
``baseline-flags.json``) runs the same code pinned to the phase 0 flags and gets the same
traffic (``python -m staging traffic`` mirrors every request), so phase 1 can measure what the
flags cost against a concurrent replica instead of a window saved days earlier.

``Stack.up(workdir)`` starts the processes on free loopback ports, waits until Prometheus holds
both replicas' first scrape, and records everything in ``workdir/state.json`` (mode 0600: it holds
the admin token, which ``workdir/admin_token``, also 0600, holds alone for shells to read). ``Stack.load(workdir).down()`` stops exactly the recorded PIDs, from any process.
A recorded PID is ours only while its command line and its start time are the recorded ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from pytest_rollout.net import free_port
from staging.flags import write_initial_flag_file

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = REPO_ROOT / ".staging"
STATE_FILE = "state.json"
TOKEN_FILE = "admin_token"
PROMETHEUS_BIN = "/usr/bin/prometheus"
RULES_GLOB = "monitoring/prometheus/*.rules.yml"
SCRAPE_JOB = "engram"
# The twin's own job: everything that selects job="engram" (alert rules, soak, saved baselines)
# keeps seeing the one service it saw before the twin existed.
BASELINE_JOB = "engram-baseline"
REPLICA_LABEL = "replica"
SHADOW, BASELINE = "shadow", "baseline"


class StackError(RuntimeError):
    """The stack could not be started, found or stopped."""


class NoStackRecorded(StackError):
    """The workdir has no state file: no stack was started there, or it was brought down."""


@dataclass(frozen=True)
class StackState:
    """Everything ``state.json`` records; what other programs need to reach the stack."""

    workdir: str
    engram_url: str
    engram_port: int
    prometheus_url: str
    prometheus_port: int
    flags_path: str
    data_dir: str
    admin_token: str
    service_pid: int
    prometheus_pid: int
    service_log: str
    prometheus_log: str
    prometheus_config: str
    semantic_timeout_ms: float
    formation_interval_s: float
    started_at: float
    # Start time of each PID (/proc/PID/stat, clock ticks after boot): a reused PID, even one
    # running the same command line, has another. 0 in state files written before they existed.
    service_start_time: int = 0
    prometheus_start_time: int = 0
    # The baseline twin; baseline_pid 0 (and "" paths) when the stack runs without it.
    baseline_url: str = ""
    baseline_port: int = 0
    baseline_data_dir: str = ""
    baseline_flags_path: str = ""
    baseline_log: str = ""
    baseline_pid: int = 0
    baseline_start_time: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: Any) -> StackState:
        """The state as recorded; ValueError saying what is wrong if it is not a state."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {type(data).__name__}")
        known = {f.name: f for f in fields(StackState)}
        problems = [f"unknown key {k!r}" for k in sorted(set(data) - set(known))]
        problems += [
            f"missing key {name!r}"
            for name, f in known.items()
            if name not in data and f.default is MISSING
        ]
        kinds = {"int": (int,), "float": (int, float), "str": (str,)}
        problems += [
            f"{name!r} is not {known[name].type}: {value!r}"
            for name, value in data.items()
            if name in known
            and (isinstance(value, bool) or not isinstance(value, kinds[str(known[name].type)]))
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return StackState(**data)


def prometheus_config(
    engram_port: int,
    repo_root: Path,
    baseline_port: int = 0,
    *,
    alertmanager: str = "",
    evaluation_interval: str = "1s",
    scrape_interval: str = "1s",
) -> str:
    """Scrape every second; load the alert rules that ``rollout render`` writes into the repo.

    Each replica's series carry ``replica`` as a target label. Of the twin only the process
    metrics are kept: its engram_* series (all spaces in control, its flags off) would otherwise
    join every sum the gates and alert rules take over the service. With ``alertmanager``
    (host:port) firing alerts go there; the intervals are for measuring alert latency at
    production settings (benchmarks/alert_to_rollback.py).
    """
    config = (
        "global:\n"
        f"  scrape_interval: {scrape_interval}\n"
        "  scrape_timeout: 1s\n"
        f"  evaluation_interval: {evaluation_interval}\n"
        "rule_files:\n"
        f"  - {json.dumps(str(repo_root / RULES_GLOB))}\n"
    )
    if alertmanager:
        config += (
            "alerting:\n"
            "  alertmanagers:\n"
            "    - static_configs:\n"
            f"        - targets: [{json.dumps(alertmanager)}]\n"
        )
    config += (
        "scrape_configs:\n"
        f"  - job_name: {SCRAPE_JOB}\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{engram_port}']\n"
        f"        labels: {{{REPLICA_LABEL}: {SHADOW}}}\n"
    )
    if baseline_port:
        config += (
            f"  - job_name: {BASELINE_JOB}\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{baseline_port}']\n"
            f"        labels: {{{REPLICA_LABEL}: {BASELINE}}}\n"
            "    metric_relabel_configs:\n"
            "      - source_labels: [__name__]\n"
            "        regex: 'process_.*'\n"
            "        action: keep\n"
        )
    return config


def _write_private(path: Path, text: str) -> None:
    """Atomically write a file only its owner can read (the state file holds the token)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_for_exec(pid: int, child: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    """Return once ``/proc/PID/cmdline`` shows the new program (or the child has exited).

    Popen returns when execve has passed its point of no return, but the kernel sets the new
    argument area a moment later: until then cmdline reads empty, and Stack's liveness check
    (which matches the cmdline, against PID reuse) took a healthy new service for "exited at
    start" in about 1 of 10 starts on this loaded 2-core machine.
    """
    deadline = time.monotonic() + timeout_s
    while child.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes():
                return
        time.sleep(0.001)


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat from field 3 (state) on; empty if the PID does not exist."""
    try:
        # The command name (field 2) is in parentheses and may itself hold spaces or ")".
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return []


def start_time(pid: int) -> int:
    """When ``pid`` started, in clock ticks after boot (stat field 22); 0 if it does not exist."""
    stat = _stat_fields(pid)
    return int(stat[19]) if stat else 0


def _alive(pid: int, marker: str, started: int = 0) -> bool:
    """True if ``pid`` runs and is still our process (PIDs get reused), not a zombie.

    Ours: its command line holds ``marker`` and, when recorded (``started`` != 0), it started at
    the recorded time.
    """
    stat = _stat_fields(pid)
    if not stat or stat[0] == "Z":
        return False
    if started and int(stat[19]) != started:
        return False
    return marker in _cmdline(pid)


def _stop(
    pid: int,
    marker: str,
    started: int,
    popen: subprocess.Popen[bytes] | None,
    grace_s: float,
) -> bool:
    """SIGTERM, SIGKILL after ``grace_s``; return once it is gone. False if it was not running."""
    if not _alive(pid, marker, started):
        if popen is not None:
            popen.wait(timeout=5)
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except PermissionError:
        raise StackError(
            f"not allowed to signal pid {pid} ({_cmdline(pid).strip()}): run `python -m "
            "staging down` as the user that started the stack"
        ) from None
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if popen is not None and popen.poll() is not None:
            return True
        if popen is None and not _alive(pid, marker, started):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if popen is not None:
        popen.wait(timeout=5)
        return True
    # Not our child: we cannot wait for it, but callers reuse its port and files right after.
    deadline = time.monotonic() + 5
    while _alive(pid, marker, started):
        if time.monotonic() > deadline:
            raise StackError(f"pid {pid} still runs 5 s after SIGKILL; stop it before going on")
        time.sleep(0.02)
    return True


def _processes_using(workdir: Path) -> list[str]:
    """``PID command`` of every process whose arguments name this workdir's files."""
    markers = (
        f"--config.file={workdir / 'prometheus.yml'} ",
        f"--data-dir {workdir / 'data'} ",
        f"--data-dir {workdir / 'baseline-data'} ",
    )
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            cmdline = _cmdline(int(proc.name))
            if any(marker in cmdline for marker in markers):
                found.append(f"{proc.name} {cmdline.strip()}")
    return found


def _unusable_state(path: Path, reason: str) -> StackError:
    """Fail closed: without the recorded PIDs nothing may be started or stopped on a guess."""
    users = _processes_using(path.parent)
    if users:
        what = (
            f"these processes still use {path.parent}: "
            + "; ".join(users)
            + ". Stop them by PID (kill PID), then remove it"
        )
    else:
        what = f"no process uses {path.parent} now: remove it"
    return StackError(
        f"state file {path} is unusable ({reason}). It records the stack's PIDs, so nothing was "
        f"started or stopped; {what} (rm {path}) and run `python -m staging up` again"
    )


class Stack:
    """A running staging stack. Use ``Stack.up(...)`` or ``Stack.load(workdir)``."""

    def __init__(self, state: StackState) -> None:
        self.state = state
        # Handles of children started by this process: waited for, so no zombies remain.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- reaching the stack ---------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        return Path(self.state.workdir)

    @property
    def engram_url(self) -> str:
        return self.state.engram_url

    @property
    def prometheus_url(self) -> str:
        return self.state.prometheus_url

    @property
    def baseline_url(self) -> str:
        """The twin's URL; "" when the stack runs without it."""
        return self.state.baseline_url

    @property
    def flags_path(self) -> Path:
        return Path(self.state.flags_path)

    @property
    def admin_token(self) -> str:
        return self.state.admin_token

    @property
    def state_path(self) -> Path:
        return self.workdir / STATE_FILE

    @property
    def token_path(self) -> Path:
        return self.workdir / TOKEN_FILE

    def write_token_file(self) -> Path:
        """(Re)write ``token_path`` (0600) with the admin token, unless it already holds it.

        Shells read the token from there (``python -m staging env``), so it never appears in
        output; a stack recorded before the file existed gets it on first use.
        """
        with contextlib.suppress(OSError):
            private = stat.S_IMODE(self.token_path.stat().st_mode) == 0o600
            if private and self.token_path.read_text(encoding="utf-8") == self.admin_token:
                return self.token_path
        try:
            _write_private(self.token_path, self.admin_token)
        except OSError as exc:
            raise StackError(
                f"cannot write the admin token file {self.token_path}: {exc}; make the workdir "
                "writable by you (or pass --workdir), then run the command again"
            ) from None
        return self.token_path

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def env(self, *, flag_backend: str = "http") -> dict[str, str]:
        """Environment for gates: ``flag_backend`` "http" (the admin API) or "file"."""
        flags = self.engram_url if flag_backend == "http" else f"flagd-file:{self.flags_path}"
        env = {
            "ROLLOUT_PROMETHEUS_URL": self.prometheus_url,
            "ROLLOUT_FLAGS": flags,
            "ROLLOUT_FLAGS_TOKEN": self.admin_token,
            "ENGRAM_URL": self.engram_url,
        }
        if self.baseline_url:
            env["ENGRAM_BASELINE_URL"] = self.baseline_url
        return env

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        workdir: Path | str = DEFAULT_WORKDIR,
        *,
        flags_file: Path | str | None = None,
        initial_flags: dict[str, bool | float] | None = None,
        repo_root: Path | str = REPO_ROOT,
        semantic_timeout_ms: float = 200.0,
        formation_interval_s: float = 10.0,
        timeout_s: float = 60.0,
        twin: bool = True,
        alertmanager: str = "",
        evaluation_interval: str = "1s",
        scrape_interval: str = "1s",
        say: Callable[[str], None] = print,
    ) -> Stack:
        """Start the stack in ``workdir`` and return once Prometheus holds a first scrape.

        ``flags_file`` is used as is; without it ``workdir/flags.json`` is (re)written with
        ``initial_flags`` over the defaults (all off, blended_recall 0 %, semantic_weight 0.3).
        With ``twin`` the baseline replica starts too, on ``workdir/baseline-flags.json``
        (rewritten with the defaults: phase 0's flags) and ``workdir/baseline-data``.
        ``alertmanager`` (host:port) and the intervals go into its Prometheus config.
        Data in ``workdir/data`` and ``workdir/baseline-data`` is kept across runs. Refuses while the recorded stack runs;
        if only one of its processes still runs, stops it first and tells ``say``.
        """
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        existing = workdir / STATE_FILE
        if existing.exists():
            old = cls.load(workdir)
            if old.running():
                raise StackError(
                    f"a stack is already running from {workdir} (state {existing}); use it, or "
                    "stop it first with `python -m staging down`"
                )
            # A half-dead stack (one process crashed): the survivor holds the same TSDB or
            # databases, so it is stopped (if still ours) before a new pair starts on them.
            for name, pid in old.down():
                say(f"stopped {name} pid {pid}, left running by the previous stack in {workdir}")
        if flags_file is None:
            flags_path = workdir / "flags.json"
            write_initial_flag_file(flags_path, initial_flags)
        else:
            flags_path = Path(flags_file).resolve()
            if not flags_path.is_file():
                raise StackError(f"flag file {flags_path} does not exist")
        data_dir = workdir / "data"
        data_dir.mkdir(exist_ok=True)
        engram_port, prometheus_port = free_port(), free_port()
        twin_state: dict[str, Any] = {}
        if twin:
            baseline_port = free_port()
            baseline_flags = workdir / "baseline-flags.json"
            write_initial_flag_file(baseline_flags)
            (workdir / "baseline-data").mkdir(exist_ok=True)
            twin_state = {
                "baseline_url": f"http://127.0.0.1:{baseline_port}",
                "baseline_port": baseline_port,
                "baseline_data_dir": str(workdir / "baseline-data"),
                "baseline_flags_path": str(baseline_flags),
                "baseline_log": str(workdir / "engram-baseline.log"),
            }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(
            prometheus_config(
                engram_port,
                Path(repo_root).resolve(),
                twin_state.get("baseline_port", 0),
                alertmanager=alertmanager,
                evaluation_interval=evaluation_interval,
                scrape_interval=scrape_interval,
            )
        )
        state = StackState(
            workdir=str(workdir),
            engram_url=f"http://127.0.0.1:{engram_port}",
            engram_port=engram_port,
            prometheus_url=f"http://127.0.0.1:{prometheus_port}",
            prometheus_port=prometheus_port,
            flags_path=str(flags_path),
            data_dir=str(data_dir),
            admin_token=secrets.token_urlsafe(32),
            service_pid=0,
            prometheus_pid=0,
            service_log=str(workdir / "engram.log"),
            prometheus_log=str(workdir / "prometheus.log"),
            prometheus_config=str(config_path),
            semantic_timeout_ms=semantic_timeout_ms,
            formation_interval_s=formation_interval_s,
            started_at=time.time(),
            **twin_state,
        )
        stack = cls(state)
        try:
            # Prometheus first: its first scrape takes seconds, the service starts meanwhile.
            stack._start_prometheus()
            stack._start_service()
            if twin:
                stack._start_baseline()
            stack._save()
            stack.wait_for_scrape(timeout_s)
        except BaseException:
            stack.down()
            raise
        return stack

    @classmethod
    def load(cls, workdir: Path | str = DEFAULT_WORKDIR) -> Stack:
        """The recorded stack; NoStackRecorded without a state file, StackError if unusable."""
        path = Path(workdir).resolve() / STATE_FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise NoStackRecorded(f"no staging stack recorded in {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise _unusable_state(path, f"cannot read it: {exc}") from None
        try:
            return cls(StackState.from_json(json.loads(text)))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise _unusable_state(path, str(exc) or "empty") from None

    def _save(self) -> None:
        _write_private(self.state_path, json.dumps(self.state.to_json(), indent=2) + "\n")
        self.write_token_file()

    def _replace(self, **changes: Any) -> None:
        self.state = StackState(**{**self.state.to_json(), **changes})

    def _spawn(self, argv: list[str], log_path: str, env: dict[str, str]) -> int:
        with open(log_path, "ab") as log:
            # A session of its own: the stack outlives `python -m staging up` and Ctrl-C there.
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        self._children[child.pid] = child
        wait_for_exec(child.pid, child)
        return child.pid

    def _service_marker(self, port: int | None = None) -> str:
        # Trailing space: /proc cmdline ends each argument, so port 80 does not match 8080.
        return f"staging.app --port {self.state.engram_port if port is None else port} "

    def _prometheus_marker(self) -> str:
        return f"--config.file={self.state.prometheus_config} "

    def _start_service(self, timeout_s: float = 30.0) -> None:
        """Start the service (the shadow replica) on its recorded port, data and flags."""
        state = self.state
        pid = self._launch(
            state.engram_port, state.data_dir, state.flags_path, state.service_log, timeout_s
        )
        self._replace(service_pid=pid, service_start_time=start_time(pid))

    def _start_baseline(self, timeout_s: float = 30.0) -> None:
        """Start the baseline twin on its own port, data directory and (phase 0) flag file."""
        state = self.state
        if not state.baseline_port:
            raise StackError(
                f"the stack in {state.workdir} runs without a baseline replica: bring it down "
                "and `python -m staging up` again (the twin is on by default)"
            )
        pid = self._launch(
            state.baseline_port,
            state.baseline_data_dir,
            state.baseline_flags_path,
            state.baseline_log,
            timeout_s,
        )
        self._replace(baseline_pid=pid, baseline_start_time=start_time(pid))

    def _launch(self, port: int, data_dir: str, flags_path: str, log: str, timeout_s: float) -> int:
        """Spawn one replica of the service and return its PID once it answers /health."""
        env = {
            # One BLAS thread: a recall is one memory-bound matrix-vector product, and a second
            # thread on a busy 2-core machine quadrupled its median (2 ms -> 8 ms at 50k).
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            **os.environ,
            "ENGRAM_ADMIN_TOKEN": self.admin_token,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        argv = [
            sys.executable,
            "-m",
            "staging.app",
            "--port",
            str(port),
            "--data-dir",
            data_dir,
            "--flags",
            flags_path,
            "--semantic-timeout-ms",
            str(self.state.semantic_timeout_ms),
            "--formation-interval",
            str(self.state.formation_interval_s),
        ]
        pid = self._spawn(argv, log, env)
        started, marker = start_time(pid), self._service_marker(port)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid, marker, started):
                raise StackError(f"service on port {port} exited at start; see {log}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    return pid
            time.sleep(0.05)
        raise StackError(f"service on port {port} not healthy after {timeout_s:g} s; see {log}")

    def _start_prometheus(self) -> None:
        tsdb = self.workdir / "prometheus-data"
        tsdb.mkdir(exist_ok=True)
        argv = [
            PROMETHEUS_BIN,
            f"--config.file={self.state.prometheus_config}",
            f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{self.state.prometheus_port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=2d",
        ]
        pid = self._spawn(argv, self.state.prometheus_log, dict(os.environ))
        self._replace(prometheus_pid=pid, prometheus_start_time=start_time(pid))

    def query(self, promql: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """Instant query against the stack's Prometheus; the ``result`` list."""
        response = requests.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=timeout_s
        )
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def wait_for_scrape(self, timeout_s: float = 60.0) -> None:
        """Block until Prometheus has scraped the service (up == 1 and an engram_ series) and,
        with the twin, its process metrics."""
        wanted = [f'up{{job="{SCRAPE_JOB}"}} == 1', f'engram_episodes{{job="{SCRAPE_JOB}"}}']
        if self.state.baseline_port:
            wanted.append(f'process_cpu_seconds_total{{{REPLICA_LABEL}="{BASELINE}"}}')
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._alive("prometheus"):
                raise StackError(f"prometheus exited; see {self.state.prometheus_log}")
            with contextlib.suppress(requests.RequestException, KeyError, ValueError):
                if all(self.query(q) for q in wanted):
                    return
            time.sleep(0.2)
        raise StackError(f"no scrape of {' and '.join(wanted)} within {timeout_s:g} s")

    def _recorded(self) -> dict[str, tuple[int, str, int]]:
        """Each recorded process: name -> (pid, command-line marker, start time)."""
        state = self.state
        recorded = {
            "service": (state.service_pid, self._service_marker(), state.service_start_time),
            "prometheus": (
                state.prometheus_pid,
                self._prometheus_marker(),
                state.prometheus_start_time,
            ),
        }
        if state.baseline_port:
            recorded[BASELINE] = (
                state.baseline_pid,
                self._service_marker(state.baseline_port),
                state.baseline_start_time,
            )
        return recorded

    def _alive(self, name: str) -> bool:
        pid, marker, started = self._recorded()[name]
        return _alive(pid, marker, started)

    def running(self) -> bool:
        return all(self._alive(name) for name in self._recorded())

    def status(self) -> dict[str, Any]:
        """Liveness of each recorded process and what the service and Prometheus answer."""
        out: dict[str, Any] = {
            "workdir": self.state.workdir,
            "service": {
                "pid": self.state.service_pid,
                "alive": self._alive("service"),
                "url": self.engram_url,
            },
            "prometheus": {
                "pid": self.state.prometheus_pid,
                "alive": self._alive("prometheus"),
                "url": self.prometheus_url,
            },
            "flags_path": self.state.flags_path,
        }
        if self.state.baseline_port:
            out[BASELINE] = {
                "pid": self.state.baseline_pid,
                "alive": self._alive(BASELINE),
                "url": self.baseline_url,
                "flags_path": self.state.baseline_flags_path,
            }
        try:
            answer = requests.get(f"{self.engram_url}/api/v1/dual_memory/status", timeout=2)
            out["service"]["status"] = answer.json()
        except (requests.RequestException, ValueError) as exc:
            out["service"]["error"] = str(exc)
        try:
            out["prometheus"]["engram_up"] = bool(self.query(f'up{{job="{SCRAPE_JOB}"}} == 1'))
        except (requests.RequestException, KeyError, ValueError) as exc:
            out["prometheus"]["error"] = str(exc)
        return out

    def restart_service(self, *, kill: bool = False, replica: str = SHADOW) -> None:
        """Stop a replica (SIGKILL if ``kill``, else SIGTERM) and start it on the same port;
        the other replica runs on untouched."""
        self.stop_replica(replica, kill=kill)
        self.start_replica(replica)

    def stop_replica(self, replica: str, *, kill: bool = False) -> None:
        """Stop one replica ("shadow", the service, or "baseline") by its recorded PID."""
        pid, marker, started = self._recorded()[self._replica_process(replica)]
        popen = self._children.pop(pid, None)
        if kill:
            if _alive(pid, marker, started):
                os.kill(pid, signal.SIGKILL)
            if popen is not None:
                popen.wait(timeout=10)
            else:
                while _alive(pid, marker, started):
                    time.sleep(0.02)
        else:
            _stop(pid, marker, started, popen, grace_s=10)

    def start_replica(self, replica: str) -> None:
        """Start one stopped replica again on its port, data directory and flag file."""
        if self._replica_process(replica) == "service":
            self._start_service()
        else:
            self._start_baseline()
        self._save()

    def _replica_process(self, replica: str) -> str:
        if replica == SHADOW:
            return "service"
        if replica == BASELINE and self.state.baseline_port:
            return BASELINE
        known = f"{SHADOW!r} or {BASELINE!r}" if self.state.baseline_port else repr(SHADOW)
        raise StackError(
            f"no replica {replica!r} in the stack in {self.state.workdir}: use {known}"
        )

    def down(self, grace_s: float = 10.0) -> list[tuple[str, int]]:
        """Stop exactly the recorded PIDs (after checking they are still ours), then forget.

        Returns the (name, pid) of each process it stopped; one that had already exited, or
        whose PID now belongs to another process, is left alone.
        """
        stopped = []
        for name, (pid, marker, started) in self._recorded().items():
            if pid and _stop(pid, marker, started, self._children.pop(pid, None), grace_s):
                stopped.append((name, pid))
        for path in (self.state_path, self.token_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return stopped

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()
