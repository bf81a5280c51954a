"""Fixtures of the plugin-core tests: real Prometheus servers, a fault-injecting fake one."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import hypothesis  # noqa: F401  (imported once here: in-process pytester runs re-import it otherwise)
import pytest

import pytest_rollout.metrics.prometheus  # noqa: F401  (same: keep it out of every inner run)
from pytest_rollout.net import free_port
from pytest_rollout.openmetrics import OpenMetricsWriter
from pytest_rollout.promserver import (
    PrometheusServer,
    start,
    start_backfilled,
    start_scraping,
)

# --------------------------------------------------------------------------------------------
# real Prometheus servers (session-scoped: each costs seconds to start)

# Known truth of the backfilled history: two hours of one-minute samples ending at END.
END = (int(time.time()) // 3600) * 3600 - 3600
STEP_S = 60
ERROR_RATIO = 0.001
P99_DELTA_S = 0.035  # over the 20 ms abort threshold of the gates
REQUESTS_PER_S = 1.0  # per group
EARLY_END_S = 180  # rt_ended_early stops 3 minutes before END


def known_truth_history() -> str:
    times = list(range(END - 2 * 3600, END + 1, STEP_S))
    writer = OpenMetricsWriter()
    writer.gauge("rt_error_ratio", {"job": "rt"}, times, [ERROR_RATIO] * len(times))
    writer.gauge("rt_p99_delta_seconds", {"job": "rt"}, times, [P99_DELTA_S] * len(times))
    writer.gauge("rt_idle", {"job": "rt"}, times, [0.0] * len(times))
    for group in ("control", "treatment"):
        writer.counter(
            "rt_requests",
            {"job": "rt", "group": group},
            times,
            [REQUESTS_PER_S * STEP_S] * len(times),
        )
    early = [t for t in times if t <= END - EARLY_END_S]
    writer.gauge("rt_ended_early", {"job": "rt"}, early, [1.0] * len(early))
    return writer.render()


@pytest.fixture(scope="session")
def backfilled_prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = start_backfilled(known_truth_history(), tmp_path_factory.mktemp("prom-backfilled"))
    try:
        yield server
    finally:
        server.stop()


EXPORTER = """
import sys, time
from prometheus_client import Counter, Gauge, start_http_server

Gauge("rt_live_error_ratio", "error ratio").set(0.002)
Gauge("rt_live_p99_delta_seconds", "p99 delta").set(0.045)
requests = Counter("rt_live_requests", "requests", ["group"])
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
while True:
    requests.labels("control").inc(10)
    requests.labels("treatment").inc(10)
    time.sleep(0.1)
"""


@pytest.fixture(scope="session")
def live_prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A Prometheus scraping a prometheus_client exporter every second."""
    workdir = tmp_path_factory.mktemp("prom-live")
    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-c", EXPORTER, str(port)], stdin=subprocess.DEVNULL
    )
    server = None
    try:
        server = start_scraping([f"127.0.0.1:{port}"], workdir, scrape_interval="1s")
        server.wait_for_data("rt_live_error_ratio", timeout_s=30)
        # rate() at an instant pinned up to a second earlier needs a few scrapes behind it
        server.wait_for_data("count_over_time(rt_live_requests_total[10s]) >= 3", timeout_s=30)
        yield server
    finally:
        if server is not None:
            server.stop()
        exporter.terminate()
        exporter.wait(timeout=10)


@pytest.fixture(scope="session")
def stopped_prom_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of a Prometheus that ran and was stopped: nothing listens there any more."""
    server = start(
        tmp_path_factory.mktemp("prom-stopped"), config_yaml="global:\n  scrape_interval: 1m\n"
    )
    server.stop()
    return server.url


# --------------------------------------------------------------------------------------------
# a fake Prometheus HTTP API that misbehaves on purpose (the first path segment picks how)


@dataclass
class FakePrometheus:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)

    def at(self, mode: str) -> str:
        return f"{self.url}/{mode}"


BAD_QUERY_ERROR = "1:5: parse error: unclosed left parenthesis"


def _fake_handler(state: FakePrometheus) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (the timeout fault): that is the point

        def do_GET(self) -> None:  # noqa: N802
            mode = self.path.split("/")[1]
            state.seen.append(
                {
                    "mode": mode,
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                }
            )
            if mode == "http500":
                self._send(500, b"internal server error", "text/plain")
            elif mode == "badquery":
                self._send(
                    400,
                    json.dumps(
                        {"status": "error", "errorType": "bad_data", "error": BAD_QUERY_ERROR}
                    ).encode(),
                )
            elif mode == "slow":
                time.sleep(3)
                self._send(200, _vector("0.001"))
            elif mode == "garbage":
                self._send(
                    200, b"<html>this is not the API you are looking for</html>", "text/html"
                )
            elif mode == "nodata":
                self._send(200, json.dumps({"status": "success"}).encode())
            else:  # "ok" and anything else: one healthy series
                self._send(200, _vector("0.001"))

    return Handler


def _vector(value: str) -> bytes:
    return json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": {"job": "rt"}, "value": [time.time(), value]}],
            },
        }
    ).encode()


@pytest.fixture(scope="session")
def fake_prom() -> Iterator[FakePrometheus]:
    state = FakePrometheus(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _fake_handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="fake-prometheus", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


E2E_TOML = """
    [rollout]
    default_environment = "e2e"

    [environments.e2e]
    timeout = "5s"
    retries = 0
"""


@pytest.fixture(scope="session")
def refused_url() -> Iterator[str]:
    """A loopback URL that refuses connections: the port is held (bound, never listening), so no
    other process on this shared machine can start a server there while the tests run."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture(scope="session")
def hanging_url() -> Iterator[str]:
    """A loopback URL that accepts connections and never answers: a hung Prometheus. The kernel
    completes the handshake into the listen backlog; nothing ever accepts or reads."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@dataclass(frozen=True)
class TlsPrometheus:
    url: str
    ca_bundle: (
        str  # the self-signed certificate itself, PEM: what ROLLOUT_PROMETHEUS_CA_BUNDLE takes
    )


def _self_signed_cert(directory: Any) -> tuple[str, str]:
    """A certificate for 127.0.0.1 signed by its own key, written as PEM (cert path, key path)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pytest-rollout test Prometheus")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "prometheus.crt"
    key_path = directory / "prometheus.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="session")
def tls_prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsPrometheus]:
    """The healthy fake Prometheus API over HTTPS, with a self-signed certificate."""
    import ssl

    cert, key = _self_signed_cert(tmp_path_factory.mktemp("tls-prom"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    state = FakePrometheus(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _fake_handler(state))
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    state.url = f"https://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="tls-prometheus", daemon=True)
    thread.start()
    try:
        yield TlsPrometheus(url=state.at("ok"), ca_bundle=cert)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
