"""`python -m staging ...` in subprocesses, as an operator (or the README main job) runs it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import requests

from staging.flags import write_initial_flag_file
from staging.stack import REPO_ROOT, StackState
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
        assert exported == {
            "ROLLOUT_PROMETHEUS_URL": state.prometheus_url,
            "ROLLOUT_FLAGS": state.engram_url,
            "ROLLOUT_FLAGS_TOKEN": state.admin_token,
            "ENGRAM_URL": state.engram_url,
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
    assert not state_path.exists()
    assert run_staging_cli(workdir, "status").returncode == 1
    # Data stays for the next `up`: the store is durable, only the processes are gone.
    assert (workdir / "data" / "spaces" / "space-0000.db").exists()
