"""The toy target and its locustfile, shared by the load tests (conftest.py holds only fixtures)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOY_TARGET = HERE / "toy_target.py"
TOY_LOCUSTFILE = HERE / "locustfile_toy.py"


@dataclass
class RunningTarget:
    port: int
    pid: int
    proc: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class TargetFactory:
    """Starts toy targets and stops every one of them (by its own PID) at teardown."""

    def __init__(self) -> None:
        self.started: list[RunningTarget] = []

    def start(
        self, *, port: int = 0, leak_bytes: int = 0, delay_ms: float = 0.0, jitter_ms: float = 0.0
    ) -> RunningTarget:
        cmd = [
            sys.executable, str(TOY_TARGET), "--port", str(port), "--leak-bytes", str(leak_bytes),
            "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=5)
            raise RuntimeError(f"toy target did not start (exit {proc.returncode})")
        info = json.loads(line)
        target = RunningTarget(port=int(info["port"]), pid=int(info["pid"]), proc=proc)
        self.started.append(target)
        return target

    def stop_all(self) -> None:
        for target in self.started:
            target.stop()
            if target.proc.stdout is not None:
                target.proc.stdout.close()
