"""The Locust traffic model runs for real (in a subprocess: Locust monkey-patches with gevent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from staging.stack import REPO_ROOT, Stack


def _episodes(url: str, prefix: str) -> int:
    spaces = requests.get(f"{url}/api/v1/dual_memory/integrity", timeout=10).json()["spaces"]
    return sum(s["episodes"] for name, s in spaces.items() if name.startswith(prefix))


def test_locustfile_drives_recalls_and_writes_without_failures(
    staging_stack: Stack, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "ENGRAM_SPACES": "25",
        "ENGRAM_SPACE_PREFIX": "locust",
        "ENGRAM_MIRROR_URL": staging_stack.baseline_url,
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(REPO_ROOT / "staging/locustfile.py"),
            "--headless",
            "-u",
            "8",
            "-r",
            "8",
            "-t",
            "3s",
            "--reset-stats",
            "--host",
            staging_stack.engram_url,
            "--json",
            "--skip-log",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    stats = {entry["name"]: entry for entry in json.loads(run.stdout)}
    recall = stats["/api/v1/spaces/[space]/recall"]
    assert recall["num_requests"] > 50 and recall["num_failures"] == 0
    writes = stats.get("/api/v1/spaces/[space]/episodes", {"num_requests": 0})
    assert writes.get("num_failures", 0) == 0
    # 5-10 % writes, give or take what a 3 s sample allows.
    assert 0.01 < writes["num_requests"] / (writes["num_requests"] + recall["num_requests"]) < 0.2
    # The twin got the writes too (outside the statistics); a user stopped between its request
    # and the copy leaves at most one write per user behind.
    shadow = _episodes(staging_stack.engram_url, "locust-")
    twin = _episodes(staging_stack.baseline_url, "locust-")
    assert twin > 0 and 0 <= shadow - twin <= 8, (shadow, twin)
    assert not any(name.startswith("mirror") for name in stats)


def test_locustfile_refuses_a_host_that_is_not_loopback(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(REPO_ROOT / "staging/locustfile.py"),
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "5s",
            "--host",
            "http://192.0.2.1:80",
            "--json",
            "--skip-log",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert "loopback only" in run.stderr
    assert all(entry["num_requests"] == 0 for entry in json.loads(run.stdout or "[]"))
