"""`python -m staging ...` in subprocesses, as an operator (or the README main job) runs it."""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from staging.flags import write_initial_flag_file
from staging.stack import REPO_ROOT, Stack, StackState, wait_for_exec
from staging.testing import process_running, run_staging_cli


def test_up_env_seed_traffic_status_down(tmp_path: Path) -> None:
    flags = tmp_path / "given-flags.json"
    write_initial_flag_file(flags, {"dual_memory_types": True, "blended_recall": 100.0})
    workdir = tmp_path / "stack"
    up = run_staging_cli(workdir, "up", "--flags", str(flags), "--formation-interval", "0.5")
    assert up.returncode == 0, up.stderr
    state_path = workdir / "state.json"
    try:
        assert stat.S_IMODE(state_path.stat().st_mode) == 0o600
        state = StackState.from_json(json.loads(state_path.read_text()))
        assert process_running(state.service_pid) and process_running(state.prometheus_pid)
        assert process_running(state.baseline_pid)  # the twin runs by default
        assert state.engram_url.startswith("http://127.0.0.1:")
        assert len(state.admin_token) >= 32
        assert state.flags_path == str(flags)  # used as given, not rewritten
        config = Path(state.prometheus_config).read_text()
        assert f"{REPO_ROOT}/monitoring/prometheus/*.rules.yml" in config
        rules = requests.get(f"{state.prometheus_url}/api/v1/rules", timeout=5)
        assert rules.json()["status"] == "success"

        env = run_staging_cli(workdir, "env")
        assert env.returncode == 0
        exported = dict(
            line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines()
        )
        token_path = workdir.resolve() / "admin_token"
        assert exported == {
            "ROLLOUT_PROMETHEUS_URL": state.prometheus_url,
            "ROLLOUT_FLAGS": state.engram_url,
            "ROLLOUT_FLAGS_TOKEN": f'"$(cat -- {shlex.quote(str(token_path))})"',
            "ENGRAM_URL": state.engram_url,
            "ENGRAM_BASELINE_URL": state.baseline_url,
        }
        file_env = run_staging_cli(workdir, "env", "--flag-backend", "file")
        assert f"export ROLLOUT_FLAGS=flagd-file:{state.flags_path}" in file_env.stdout

        seeded = run_staging_cli(workdir, "seed", "--episodes", "300", "--spaces", "6")
        assert seeded.returncode == 0, seeded.stderr
        assert json.loads(seeded.stdout) == {"episodes": 300, "spaces": 6}
        traffic = run_staging_cli(workdir, "traffic", "--duration", "1s", "--rps", "40")
        assert traffic.returncode == 0, traffic.stderr
        summary = json.loads(traffic.stdout)
        assert summary["requests"] >= 30 and summary["failures"] == 0
        assert summary["mirrored"] == summary["requests"] and summary["mirror_failures"] == 0
        # Seed and traffic reached the twin alike; the given flag file reached the service only.
        twin = requests.get(f"{state.baseline_url}/api/v1/dual_memory/status", timeout=5).json()
        assert twin["episodes"] == body_episodes(state.engram_url) >= 300
        assert twin["flags"]["dual_memory_types"] is False

        answer = requests.post(
            f"{state.engram_url}/api/v1/spaces/space-0000/recall", json={"query": "x y"}, timeout=5
        ).json()
        assert answer["mode"] == "blended" and answer["results"]

        status = run_staging_cli(workdir, "status")
        assert status.returncode == 0
        body = json.loads(status.stdout)
        assert body["prometheus"]["engram_up"] is True
        assert body["service"]["status"]["episodes"] >= 300

        again = run_staging_cli(workdir, "up")
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = run_staging_cli(workdir, "down")
    assert down.returncode == 0
    assert not process_running(state.service_pid) and not process_running(state.prometheus_pid)
    assert not process_running(state.baseline_pid)
    assert f"stopped baseline pid {state.baseline_pid}" in down.stdout
    assert not state_path.exists()
    assert not token_path.exists()  # the token goes with the stack
    assert run_staging_cli(workdir, "status").returncode == 1
    # `down` is idempotent: the second one has nothing to stop and says so.
    second = run_staging_cli(workdir, "down")
    assert second.returncode == 0, second.stderr
    assert "nothing was running" in second.stdout
    # Data stays for the next `up`: the store is durable, only the processes are gone.
    assert (workdir / "data" / "spaces" / "space-0000.db").exists()


def body_episodes(url: str) -> int:
    episodes: int = requests.get(f"{url}/api/v1/dual_memory/status", timeout=5).json()["episodes"]
    return episodes


def _recorded(workdir: Path) -> StackState:
    return StackState.from_json(json.loads((workdir / "state.json").read_text()))


def _wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while process_running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process_running(pid), f"pid {pid} still runs"


def _stop_if_still_ours(pid: int, cmdline: bytes) -> None:
    """Test cleanup by PID: an orphan left by a failing `up` must not outlive the test."""
    try:
        if Path(f"/proc/{pid}/cmdline").read_bytes() != cmdline:
            return
    except OSError:
        return
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)


def test_env_prints_a_reference_to_the_token_and_eval_still_exports_it(
    staging_stack: Stack,
) -> None:
    # Credentials never appear in output: `env` is typed in terminals and logged by CI jobs.
    env = run_staging_cli(staging_stack.workdir, "env")
    assert env.returncode == 0, env.stderr
    assert staging_stack.admin_token not in env.stdout + env.stderr
    assert stat.S_IMODE(staging_stack.token_path.stat().st_mode) == 0o600

    # ... while `eval "$(python -m staging env)"` gives the shell the real values.
    script = (
        'eval "$("$PYTHON" -m staging --workdir "$WORKDIR" env)" && '
        'printf "%s\\n" "$ROLLOUT_FLAGS_TOKEN" "$ROLLOUT_FLAGS" "$ENGRAM_URL" '
        '"$ROLLOUT_PROMETHEUS_URL"'
    )
    shell = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHON": sys.executable,
            "WORKDIR": str(staging_stack.workdir),
        },
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines() == [
        staging_stack.admin_token,
        staging_stack.engram_url,
        staging_stack.engram_url,
        staging_stack.prometheus_url,
    ]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_traffic_stopped_by_a_signal_still_prints_its_summary(
    staging_stack: Stack, signum: signal.Signals
) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "staging", "--workdir", str(staging_stack.workdir), "traffic"]
        + ["--duration", "5m", "--rps", "20", "--spaces", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    ) as traffic:
        assert traffic.stdout is not None and traffic.stderr is not None
        try:
            # The start line comes once the handlers are in place; a signal before it kills.
            started, _, _ = select.select([traffic.stderr], [], [], 30)
            assert started, "traffic printed no start line on stderr within 30 s"
            assert "stops it early" in traffic.stderr.readline()
            time.sleep(1.5)
            traffic.send_signal(signum)
            traffic.wait(timeout=30)
            stdout, stderr = traffic.stdout.read(), traffic.stderr.read()
        finally:
            if traffic.poll() is None:
                traffic.kill()
    assert traffic.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["stopped_by"] == signum.name
    assert summary["requests"] >= 10 and summary["failures"] == 0
    assert summary["duration_s"] < 30  # stopped, not run for its 5 minutes
    assert "Traceback" not in stderr


@pytest.mark.parametrize("killed", ["service", "prometheus"])
def test_up_after_a_crash_stops_the_recorded_survivor_first(tmp_path: Path, killed: str) -> None:
    workdir = tmp_path / "stack"
    first = run_staging_cli(workdir, "up")
    assert first.returncode == 0, first.stderr
    old = _recorded(workdir)
    pids = {"service": old.service_pid, "prometheus": old.prometheus_pid}
    cmdlines = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids.values()}
    survivor = pids["prometheus" if killed == "service" else "service"]
    new: StackState | None = None
    try:
        os.kill(pids[killed], signal.SIGKILL)
        _wait_gone(pids[killed])

        again = run_staging_cli(workdir, "up")
        assert again.returncode == 0, again.stderr
        # The survivor holds the same TSDB / databases: it must be gone before the new pair.
        assert not process_running(survivor)
        assert f"stopped {'prometheus' if killed == 'service' else 'service'} pid {survivor}" in (
            again.stdout
        )
        new = _recorded(workdir)
        assert process_running(new.service_pid) and process_running(new.prometheus_pid)
        assert {new.service_pid, new.prometheus_pid}.isdisjoint(pids.values())
    finally:
        down = run_staging_cli(workdir, "down")
        for pid, cmdline in cmdlines.items():
            _stop_if_still_ours(pid, cmdline)
    assert down.returncode == 0, down.stderr
    assert new is not None
    assert not process_running(new.service_pid) and not process_running(new.prometheus_pid)


def test_up_does_not_stop_a_process_that_reuses_a_recorded_pid(tmp_path: Path) -> None:
    """Same PID, same command line, another process (a later start): not ours to stop."""
    workdir = tmp_path / "stack"
    workdir.mkdir()
    config = workdir / "prometheus.yml"
    # Looks like the recorded Prometheus to a command-line check, but started after the record.
    impostor = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", f"--config.file={config}"]
    )
    try:
        wait_for_exec(impostor.pid, impostor)
        state = {
            "workdir": str(workdir),
            "engram_url": "http://127.0.0.1:9",
            "engram_port": 9,
            "prometheus_url": "http://127.0.0.1:9",
            "prometheus_port": 9,
            "flags_path": str(workdir / "flags.json"),
            "data_dir": str(workdir / "data"),
            "admin_token": "x" * 32,
            "service_pid": 0,
            "prometheus_pid": impostor.pid,
            "service_log": str(workdir / "engram.log"),
            "prometheus_log": str(workdir / "prometheus.log"),
            "prometheus_config": str(config),
            "semantic_timeout_ms": 200.0,
            "formation_interval_s": 10.0,
            "started_at": 0.0,
            "service_start_time": 0,
            "prometheus_start_time": 1,  # clock ticks after boot: long before the impostor
        }
        (workdir / "state.json").write_text(json.dumps(state))
        up = run_staging_cli(workdir, "up")
        try:
            assert up.returncode == 0, up.stderr
            assert impostor.poll() is None, "up signalled a process it did not start"
            assert "stopped" not in up.stdout
        finally:
            assert run_staging_cli(workdir, "down").returncode == 0
    finally:
        impostor.kill()
        impostor.wait(timeout=10)


@pytest.mark.parametrize(
    "content", ["", '{"service_pid": 12', "[]", '{"workdir": "w"}'], ids=str.strip
)
def test_a_corrupt_state_file_is_a_clear_error_not_a_traceback(
    tmp_path: Path, content: str
) -> None:
    workdir = tmp_path / "stack"
    workdir.mkdir()
    state_path = workdir / "state.json"
    state_path.write_text(content)
    for command in (
        ["status"],
        ["down"],
        ["up"],
        ["env"],
        ["backup", "--out", str(tmp_path / "b")],
    ):
        result = run_staging_cli(workdir, *command)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, command
        assert f"state file {state_path}" in result.stderr, command
        assert "remove it" in result.stderr, command
    # Nothing was started, nothing was rewritten: the operator decides.
    assert state_path.read_text() == content
    assert not (workdir / "prometheus.yml").exists()
