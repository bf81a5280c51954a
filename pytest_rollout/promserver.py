"""Run a real local Prometheus (Debian's /usr/bin/prometheus) for tests, examples and rehearsals.

Two shapes: *backfilled* from OpenMetrics text (known truth, any point in the past) and
*scraping* live targets.  Always on 127.0.0.1, always stopped by its own PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import requests

from pytest_rollout.net import free_port

PROMETHEUS = os.environ.get("ROLLOUT_PROMETHEUS_BIN", "/usr/bin/prometheus")
PROMTOOL = os.environ.get("ROLLOUT_PROMTOOL_BIN", "/usr/bin/promtool")


def require_binaries() -> None:
    for binary in (PROMETHEUS, PROMTOOL):
        if not shutil.which(binary):
            raise RuntimeError(
                f"{binary} not found: install Debian's package with "
                "`apt-get install -y --no-install-recommends prometheus` (or run .ci/run)"
            )


@dataclass
class PrometheusServer:
    url: str
    port: int
    pid: int
    workdir: Path
    process: subprocess.Popen[bytes]
    # Where the server's own output goes (other PromQL backends in tests name their own log).
    LOG_NAME: ClassVar[str] = "prometheus.log"

    def stop(self) -> None:
        """Stop exactly this server, by its PID."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def query(self, query: str, at: float | None = None) -> list[dict[str, object]]:
        params: dict[str, str | float] = {"query": query}
        if at is not None:
            params["time"] = at
        response = requests.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        response.raise_for_status()
        result: list[dict[str, object]] = response.json()["data"]["result"]
        return result

    def wait_for_data(self, query: str, timeout_s: float = 30.0) -> None:
        """Poll until ``query`` returns data (the first scrape lands seconds after /-/ready)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.query(query):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise TimeoutError(
            f"no data for {query!r} from {self.url} after {timeout_s:.0f}s; "
            f"see {self.workdir / self.LOG_NAME}"
        )


def start(
    workdir: Path,
    *,
    config_yaml: str,
    tsdb: Path | None = None,
    retention: str = "3650d",
    extra_args: Sequence[str] = ("--web.enable-lifecycle",),
    ready_timeout_s: float = 30.0,
) -> PrometheusServer:
    """Start Prometheus with the given config on a free loopback port and wait until ready."""
    require_binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(config_yaml)
    tsdb = tsdb or workdir / "tsdb"
    port = free_port()
    log = (workdir / "prometheus.log").open("ab")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={tsdb}",
            f"--storage.tsdb.retention.time={retention}",
            f"--web.listen-address=127.0.0.1:{port}",
            *extra_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    server = PrometheusServer(f"http://127.0.0.1:{port}", port, process.pid, workdir, process)
    wait_ready(server, "prometheus", "/-/ready", ready_timeout_s, poll_s=0.1)
    return server


def wait_ready(
    server: PrometheusServer, name: str, probe: str, timeout_s: float, *, poll_s: float
) -> None:
    """Until ``GET {url}{probe}`` answers 200; a process that exits or never gets ready is an
    error naming its log (and a server that never got ready is stopped first)."""
    log = server.workdir / server.LOG_NAME
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{name} exited with {server.process.returncode}; see {log}")
        try:
            if requests.get(f"{server.url}{probe}", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(poll_s)
    server.stop()
    raise TimeoutError(f"{name} on port {server.port} not ready after {timeout_s:.0f}s")


def backfill(openmetrics_text: str, workdir: Path) -> Path:
    """Build TSDB blocks from OpenMetrics text (timestamps in seconds, ending in ``# EOF``)."""
    require_binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "backfill.om"
    text = (
        openmetrics_text
        if openmetrics_text.rstrip().endswith("# EOF")
        else openmetrics_text.rstrip("\n") + "\n# EOF\n"
    )
    source.write_text(text)
    tsdb = workdir / "tsdb"
    result = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(tsdb)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"promtool backfill failed: {result.stderr.strip()[-2000:]}")
    return tsdb


def start_backfilled(openmetrics_text: str, workdir: Path) -> PrometheusServer:
    """A Prometheus serving exactly the given history (no scraping, no live data)."""
    tsdb = backfill(openmetrics_text, workdir)
    return start(workdir, config_yaml="global:\n  scrape_interval: 1m\n", tsdb=tsdb)


def start_scraping(
    targets: Iterable[str],
    workdir: Path,
    *,
    scrape_interval: str = "1s",
    job: str = "engram",
    rule_files: Sequence[str] = (),
) -> PrometheusServer:
    """A Prometheus scraping ``host:port`` targets (plain HTTP, /metrics) under one job."""
    target_list = ", ".join(f"'{t}'" for t in targets)
    rules = "".join(f"  - '{r}'\n" for r in rule_files)
    config = (
        f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
        + (f"rule_files:\n{rules}" if rules else "")
        + f"scrape_configs:\n  - job_name: '{job}'\n    static_configs:\n"
        f"      - targets: [{target_list}]\n"
    )
    return start(workdir, config_yaml=config, retention="1d")
