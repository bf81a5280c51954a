"""Test access to a real local Alertmanager (Debian's ``prometheus-alertmanager``).

It routes every alert labelled ``rollout_action="abort"`` to one webhook receiver (``rollout
serve``'s ``/v1/alertmanager``, or the small ``WebhookReceiver`` here) and drops the rest, the
routing docs/integrations.md tells operators to set up.  Group wait and interval are 1 s so a
firing alert is delivered at once.  Always on 127.0.0.1, clustering off, its own storage dir,
stopped by its own PID.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from pytest_rollout.net import free_port
from pytest_rollout.promserver import PrometheusServer, wait_ready

ALERTMANAGER = os.environ.get("ROLLOUT_ALERTMANAGER_BIN", "/usr/bin/prometheus-alertmanager")


class AlertmanagerServer(PrometheusServer):
    """A running Alertmanager; ``url`` is its HTTP API (``/api/v2/alerts``, ``/-/ready``)."""

    LOG_NAME: ClassVar[str] = "alertmanager.log"


def require_binary() -> None:
    if not shutil.which(ALERTMANAGER):
        raise RuntimeError(
            f"{ALERTMANAGER} not found: install Debian's package with "
            "`apt-get install -y --no-install-recommends prometheus-alertmanager` "
            "(or run scripts/setup.sh)"
        )


def config_yaml(
    webhook_url: str,
    *,
    token: str | None = None,
    repeat_interval: str = "1m",
) -> str:
    """Abort alerts to ``webhook_url`` (with a bearer ``token`` if given); the rest nowhere."""
    auth = (
        f"        http_config:\n          authorization:\n            type: Bearer\n"
        f"            credentials: {json.dumps(token)}\n"
        if token
        else ""
    )
    return (
        "route:\n"
        "  receiver: discard\n"
        "  group_by: ['alertname', 'phase']\n"
        "  group_wait: 1s\n"
        "  group_interval: 1s\n"
        f"  repeat_interval: {repeat_interval}\n"
        "  routes:\n"
        "    - receiver: rollout-serve\n"
        "      matchers: ['rollout_action=\"abort\"']\n"
        "receivers:\n"
        "  - name: discard\n"
        "  - name: rollout-serve\n"
        "    webhook_configs:\n"
        f"      - url: {json.dumps(webhook_url)}\n"
        "        send_resolved: false\n" + auth
    )


def start(
    workdir: Path,
    webhook_url: str,
    *,
    token: str | None = None,
    repeat_interval: str = "1m",
    ready_timeout_s: float = 30.0,
) -> AlertmanagerServer:
    """Start Alertmanager on a free loopback port, routing abort alerts to ``webhook_url``."""
    require_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    config.write_text(config_yaml(webhook_url, token=token, repeat_interval=repeat_interval))
    port = free_port()
    log = (workdir / AlertmanagerServer.LOG_NAME).open("ab")
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip port: a single local instance
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    server = AlertmanagerServer(f"http://127.0.0.1:{port}", port, process.pid, workdir, process)
    wait_ready(server, "alertmanager", "/-/ready", ready_timeout_s, poll_s=0.1)
    return server


def prometheus_config(
    *,
    targets: list[str],
    rule_files: list[str],
    alertmanager: AlertmanagerServer,
    interval: str,
    scrape_interval: str | None = None,
) -> str:
    """A Prometheus config scraping ``targets`` as job engram and alerting to ``alertmanager``;
    rules evaluate every ``interval`` (scrapes too, unless ``scrape_interval`` is given)."""
    rules = "".join(f"  - {json.dumps(r)}\n" for r in rule_files)
    target_list = ", ".join(json.dumps(t) for t in targets)
    scrape = scrape_interval or interval
    return (
        f"global:\n  scrape_interval: {scrape}\n  evaluation_interval: {interval}\n"
        f"rule_files:\n{rules}"
        "alerting:\n  alertmanagers:\n    - static_configs:\n"
        f"        - targets: ['127.0.0.1:{alertmanager.port}']\n"
        "scrape_configs:\n  - job_name: engram\n    static_configs:\n"
        f"      - targets: [{target_list}]\n"
    )


@dataclass
class Delivery:
    at: float  # time.time() when it arrived
    path: str
    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass
class WebhookReceiver:
    """A loopback HTTP server that keeps every POSTed JSON body (a stand-in for rollout serve)."""

    url: str
    server: ThreadingHTTPServer
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, timeout_s: float) -> Delivery:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if self.deliveries:
                    return self.deliveries[0]
            time.sleep(0.05)
        raise TimeoutError(f"no webhook delivery to {self.url} within {timeout_s:g} s")


@contextmanager
def webhook_receiver(path: str = "/v1/alertmanager") -> Iterator[WebhookReceiver]:
    holder: list[WebhookReceiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver = holder[0]
            with receiver.lock:
                receiver.deliveries.append(
                    Delivery(time.time(), self.path, dict(self.headers), json.loads(body))
                )
            self.send_response(200 if self.path == path else 404)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}{path}", server)
    holder.append(receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Exporter:
    """A loopback /metrics endpoint whose samples the test sets (``{series: value}``)."""

    target: str  # host:port, for a scrape config
    samples: dict[str, float]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, series: str, value: float) -> None:
        with self.lock:
            self.samples[series] = value

    def text(self) -> bytes:
        with self.lock:
            return "".join(f"{k} {v!r}\n" for k, v in sorted(self.samples.items())).encode()


@contextmanager
def exporter(samples: dict[str, float]) -> Iterator[Exporter]:
    holder: list[Exporter] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = holder[0].text()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Exporter(f"127.0.0.1:{server.server_address[1]}", dict(samples)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
