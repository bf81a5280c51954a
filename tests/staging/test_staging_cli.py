"""`python -m staging ...` in subprocesses, as an operator (or the README main job) runs it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import requests

from staging.flags import write_initial_flag_file
from staging.stack import REPO_ROOT, StackState


def _staging(workdir: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "staging", "--workdir", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO_ROOT,
    )


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def test_up_env_seed_traffic_status_down(tmp_path: Path) -> None:
    flags = tmp_path / "given-flags.json"
    write_initial_flag_file(flags, {"dual_memory_types": True, "blended_recall": 100.0})
    workdir = tmp_path / "stack"
    up = _staging(workdir, "up", "--flags", str(flags), "--formation-interval", "0.5")
    assert up.returncode == 0, up.stderr
    state_path = workdir / "state.json"
    try:
        assert stat.S_IMODE(state_path.stat().st_mode) == 0o600
        state = StackState.from_json(json.loads(state_path.read_text()))
        assert _running(state.service_pid) and _running(state.prometheus_pid)
        assert state.engram_url.startswith("http://127.0.0.1:")
        assert len(state.admin_token) >= 32
        assert state.flags_path == str(flags)  # used as given, not rewritten
        config = Path(state.prometheus_config).read_text()
        assert f"{REPO_ROOT}/monitoring/prometheus/*.rules.yml" in config
        rules = requests.get(f"{state.prometheus_url}/api/v1/rules", timeout=5)
        assert rules.json()["status"] == "success"

        env = _staging(workdir, "env")
        assert env.returncode == 0
        exported = dict(
            line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines()
        )
        assert exported == {
            "ROLLOUT_PROMETHEUS_URL": state.prometheus_url,
            "ROLLOUT_FLAGS": state.engram_url,
            "ROLLOUT_FLAGS_TOKEN": state.admin_token,
            "ENGRAM_URL": state.engram_url,
        }
        file_env = _staging(workdir, "env", "--flag-backend", "file")
        assert f"export ROLLOUT_FLAGS=flagd-file:{state.flags_path}" in file_env.stdout

        seeded = _staging(workdir, "seed", "--episodes", "300", "--spaces", "6")
        assert seeded.returncode == 0, seeded.stderr
        assert json.loads(seeded.stdout) == {"episodes": 300, "spaces": 6}
        traffic = _staging(workdir, "traffic", "--duration", "1s", "--rps", "40")
        assert traffic.returncode == 0, traffic.stderr
        summary = json.loads(traffic.stdout)
        assert summary["requests"] >= 30 and summary["failures"] == 0

        answer = requests.post(
            f"{state.engram_url}/api/v1/spaces/space-0000/recall", json={"query": "x y"}, timeout=5
        ).json()
        assert answer["mode"] == "blended" and answer["results"]

        status = _staging(workdir, "status")
        assert status.returncode == 0
        body = json.loads(status.stdout)
        assert body["prometheus"]["engram_up"] is True
        assert body["service"]["status"]["episodes"] >= 300

        again = _staging(workdir, "up")
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = _staging(workdir, "down")
    assert down.returncode == 0
    assert not _running(state.service_pid) and not _running(state.prometheus_pid)
    assert not state_path.exists()
    assert _staging(workdir, "status").returncode == 1
    # Data stays for the next `up`: the store is durable, only the processes are gone.
    assert (workdir / "data" / "spaces" / "space-0000.db").exists()
