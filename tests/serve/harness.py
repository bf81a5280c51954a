"""A real ``rollout serve`` (uvicorn on 127.0.0.1, its warm worker) over copied example gates."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_rollout.net import free_port
from tests.serve.clients import Answer, request

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3rve-t0ken-never-shown"

# The example config plus what a rollback needs: the phase's rollback state.
ROLLBACK_TABLE = """
[phases.phase2.rollback]
blended_recall = 0
"""


def example_gates(where: Path) -> Path:
    """examples/ gates and rollout.toml, with phase 2's rollback state."""
    gates = where / "gates"
    gates.mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "test_canary.py", gates / "test_canary.py")
    toml = (ROOT / "examples" / "rollout.toml").read_text() + ROLLBACK_TABLE
    (gates / "rollout.toml").write_text(toml)
    return gates


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    state_dir: Path

    def stop(self) -> None:
        """SIGTERM by PID (uvicorn shuts down, its worker zygote follows), SIGKILL after 10 s."""
        if self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def post(self, path: str, body: object = None, *, token: str | None = TOKEN) -> Answer:
        data = json.dumps(body).encode() if body is not None else None
        return request(self.url + path, body=data, token=token)

    def get(self, path: str) -> Answer:
        return request(self.url + path, method="GET")


def start_serve(
    gates: Path,
    workdir: Path,
    pytest_args: list[str],
    *,
    env: dict[str, str] | None = None,
    extra: list[str] | None = None,
) -> Server:
    port = free_port()
    log = workdir / "serve.log"
    state = workdir / "state"
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ROLLOUT_SERVE_TOKEN": TOKEN,
        "ROLLOUT_ACTOR": "serve-test",
        **(env or {}),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest_rollout",
                "serve",
                "--gates",
                str(gates),
                "--port",
                str(port),
                "--state-dir",
                str(state),
                *(extra or []),
                "--",
                *pytest_args,
            ],
            cwd=workdir,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log, state)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            process.wait()
            raise RuntimeError(f"rollout serve exited {process.returncode}: {log.read_text()}")
        try:
            if request(server.url + "/healthz", method="GET", timeout_s=2).status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"rollout serve did not answer /healthz in 60 s: {log.read_text()}")
