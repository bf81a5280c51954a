"""``rollout soak --join``: workers for a master on another machine (here: another process on
127.0.0.1), and what happens when no master answers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from pytest_rollout.net import free_port
from tests.load.helpers import TOY_LOCUSTFILE, TargetFactory

SOAK = [sys.executable, "-m", "pytest_rollout", "soak", "--locustfile", str(TOY_LOCUSTFILE)]


def test_join_without_a_master_gives_up_after_the_timeout_naming_the_address(
    tmp_path: Path,
) -> None:
    # measured: a worker for an absent master printed "1 worker(s) joined" at once and then
    # waited (Locust retries for 5 minutes), so a typo in HOST:PORT looked like a running soak
    port = free_port()
    started = time.monotonic()
    done = subprocess.run(
        [*SOAK, "--join", f"127.0.0.1:{port}", "--expect-workers-timeout", "3s",
         "--out", str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    took = time.monotonic() - started
    assert done.returncode == 3, done.stderr
    assert took < 30, f"gave up after {took:.0f} s, not about 3 s"
    assert "joined" not in done.stderr
    assert f"no master answered at 127.0.0.1:{port} within 3s" in done.stderr
    assert "--expect-workers-timeout" in done.stderr and "--remote-workers" in done.stderr


def test_a_joined_worker_carries_the_masters_load(
    toy_targets: TargetFactory, tmp_path: Path
) -> None:
    target = toy_targets.start()
    port = free_port()
    out = tmp_path / "master.json"
    master = subprocess.Popen(
        [*SOAK, "--target", target.url, "--users", "4", "--spawn-rate", "40", "--duration", "8s",
         "--interval", "1s", "--sample-interval", "1s", "--target-pid", str(target.pid),
         "--remote-workers", "1", "--master-port", str(port), "--expect-workers-timeout", "30s",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        worker = subprocess.run(
            [*SOAK, "--join", f"127.0.0.1:{port}", "--expect-workers-timeout", "30s",
             "--out", str(tmp_path / "worker.json")],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        stdout, stderr = master.communicate(timeout=60)
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()
    assert worker.returncode == 0, worker.stderr
    assert f"1 worker(s) joined the master at 127.0.0.1:{port}" in worker.stderr
    assert master.returncode in (0, 1), stdout + stderr  # a verdict, not a load failure (3)
    summary = json.loads(out.read_text())["summary"]
    assert summary["requests"] > 0, summary
