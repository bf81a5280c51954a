"""Test access to a real local VictoriaMetrics (Debian's ``victoria-metrics``), the second PromQL
backend the end-to-end tests run against.

The same shapes as ``pytest_rollout.promserver``: *backfilled* from the OpenMetrics text a
Prometheus backfill gets, or *scraping* live targets. Always on 127.0.0.1, its own data dir,
stopped by its own PID. Starting one takes about 0.2 s, so data sets that would collide get a
server each rather than a shared one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import requests

from pytest_rollout import promserver
from pytest_rollout.net import free_port
from pytest_rollout.promserver import PrometheusServer, wait_ready

VICTORIA_METRICS = os.environ.get("ROLLOUT_VICTORIA_METRICS_BIN", "/usr/bin/victoria-metrics")

# The backends every backfilled end-to-end test runs against (they are the test ids too).
BACKENDS = ("prometheus", "victoriametrics")


class VictoriaMetricsServer(PrometheusServer):
    """A running VictoriaMetrics: its Prometheus-compatible API is at ``url`` like Prometheus'."""

    LOG_NAME: ClassVar[str] = "victoria-metrics.log"


def require_binary() -> None:
    if not shutil.which(VICTORIA_METRICS):
        raise RuntimeError(
            f"{VICTORIA_METRICS} not found: install Debian's package with "
            "`apt-get install -y --no-install-recommends victoria-metrics` (or run .ci/run)"
        )


def start(
    workdir: Path,
    *,
    latency_offset: str | None = "0s",
    extra_args: Sequence[str] = (),
    ready_timeout_s: float = 30.0,
) -> VictoriaMetricsServer:
    """Start VictoriaMetrics on a free loopback port with its own data dir; wait for /health.

    ``latency_offset="0s"`` shows the newest samples at once; VictoriaMetrics' default (None
    here: the flag is not passed) hides the last 30 s from queries near "now".
    """
    require_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (workdir / VictoriaMetricsServer.LOG_NAME).open("ab")
    offset = [f"-search.latencyOffset={latency_offset}"] if latency_offset is not None else []
    process = subprocess.Popen(
        [
            VICTORIA_METRICS,
            f"-storageDataPath={workdir / 'data'}",
            "-retentionPeriod=100y",
            f"-httpListenAddr=127.0.0.1:{port}",
            *offset,
            *extra_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    server = VictoriaMetricsServer(f"http://127.0.0.1:{port}", port, process.pid, workdir, process)
    wait_ready(server, "victoria-metrics", "/health", ready_timeout_s, poll_s=0.05)
    return server


def prometheus_text(openmetrics_text: str) -> str:
    """OpenMetrics backfill text as VictoriaMetrics imports it: no ``#`` lines, and each
    sample's timestamp in milliseconds (OpenMetrics has seconds; VictoriaMetrics would read
    them as milliseconds, i.e. January 1970, and drop them as out of retention)."""
    out = []
    for number, line in enumerate(openmetrics_text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        # Label values may hold spaces; the value and the timestamp are the last two fields.
        series_value, sep, ts = line.rpartition(" ")
        if not sep or not series_value.rstrip().rpartition(" ")[1]:
            raise ValueError(f"line {number} has no timestamp, a backfill needs one: {line!r}")
        out.append(f"{series_value} {round(float(ts) * 1000)}")
    return "\n".join(out) + "\n"


def load(server: PrometheusServer, openmetrics_text: str) -> None:
    """Import the history and flush it, so the next query sees all of it."""
    response = requests.post(
        f"{server.url}/api/v1/import/prometheus",
        data=prometheus_text(openmetrics_text).encode(),
        timeout=120,
    )
    if response.status_code != 204:
        raise RuntimeError(
            f"victoria-metrics import answered HTTP {response.status_code}: {response.text[:500]}"
        )
    requests.get(f"{server.url}/internal/force_flush", timeout=60).raise_for_status()


def start_backfilled(openmetrics_text: str, workdir: Path) -> VictoriaMetricsServer:
    """A VictoriaMetrics serving exactly the given history (no scraping, no live data)."""
    server = start(workdir)
    try:
        load(server, openmetrics_text)
    except BaseException:
        server.stop()
        raise
    return server


def start_scraping(
    targets: Iterable[str], workdir: Path, *, scrape_interval: str = "1s", job: str = "engram"
) -> VictoriaMetricsServer:
    """A VictoriaMetrics scraping ``host:port`` targets (plain HTTP, /metrics) under one job."""
    workdir.mkdir(parents=True, exist_ok=True)
    target_list = ", ".join(f"'{t}'" for t in targets)
    config = workdir / "scrape.yml"
    config.write_text(
        f"global:\n  scrape_interval: {scrape_interval}\n"
        f"scrape_configs:\n  - job_name: '{job}'\n    static_configs:\n"
        f"      - targets: [{target_list}]\n"
    )
    return start(workdir, extra_args=[f"-promscrape.config={config}"])


def backfilled(backend: str, openmetrics_text: str, workdir: Path) -> PrometheusServer:
    """The named backend (one of BACKENDS) serving exactly the given history."""
    if backend == "prometheus":
        return promserver.start_backfilled(openmetrics_text, workdir)
    if backend == "victoriametrics":
        return start_backfilled(openmetrics_text, workdir)
    raise ValueError(f"unknown PromQL backend {backend!r}; known: {', '.join(BACKENDS)}")


@contextmanager
def serving(backend: str, openmetrics_text: str, workdir: Path) -> Iterator[PrometheusServer]:
    """The backfilled backend for the ``with`` block, then stopped by its PID."""
    server = backfilled(backend, openmetrics_text, workdir)
    try:
        yield server
    finally:
        server.stop()
