"""Fixtures of the plugin-core tests: real Prometheus and VictoriaMetrics servers, a
fault-injecting fake Prometheus."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import hypothesis  # noqa: F401  (imported once here: in-process pytester runs re-import it otherwise)
import pytest

import pytest_rollout.metrics.prometheus  # noqa: F401  (same: keep it out of every inner run)
from pytest_rollout.net import free_port
from pytest_rollout.promserver import (
    PrometheusServer,
    start,
    start_backfilled,
    start_scraping,
)
from tests import vm_harness
from tests.core.prometheus_helpers import (
    EXPORTER,
    FakePrometheus,
    TlsPrometheus,
    fake_handler,
    known_truth_history,
    self_signed_cert,
)


@pytest.fixture(scope="session")
def backfilled_prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = start_backfilled(known_truth_history(), tmp_path_factory.mktemp("prom-backfilled"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def backfilled_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """The same known-truth history, served by VictoriaMetrics."""
    workdir = tmp_path_factory.mktemp("vm-backfilled")
    with vm_harness.serving("victoriametrics", known_truth_history(), workdir) as server:
        yield server


@pytest.fixture(params=vm_harness.BACKENDS)
def backfilled(request: pytest.FixtureRequest) -> PrometheusServer:
    """The known-truth history on each PromQL backend in turn (one server each per session)."""
    name = "backfilled_prom" if request.param == "prometheus" else "backfilled_vm"
    server: PrometheusServer = request.getfixturevalue(name)
    return server


@pytest.fixture(scope="session")
def live_exporter() -> Iterator[str]:
    """A prometheus_client exporter on a free loopback port: its ``host:port``."""
    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-c", EXPORTER, str(port)], stdin=subprocess.DEVNULL
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        exporter.terminate()
        exporter.wait(timeout=10)


def _wait_for_live_data(server: PrometheusServer) -> None:
    server.wait_for_data("rt_live_error_ratio", timeout_s=30)
    # rate() at an instant pinned up to a second earlier needs a few scrapes behind it
    server.wait_for_data("count_over_time(rt_live_requests_total[10s]) >= 3", timeout_s=30)


@pytest.fixture(scope="session")
def live_prom(
    live_exporter: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """A Prometheus scraping the exporter every second."""
    server = start_scraping([live_exporter], tmp_path_factory.mktemp("prom-live"))
    try:
        _wait_for_live_data(server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def live_vm(
    live_exporter: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """A VictoriaMetrics scraping the same exporter every second."""
    server = vm_harness.start_scraping([live_exporter], tmp_path_factory.mktemp("vm-live"))
    try:
        _wait_for_live_data(server)
        yield server
    finally:
        server.stop()


@pytest.fixture(params=vm_harness.BACKENDS)
def live(request: pytest.FixtureRequest) -> PrometheusServer:
    """The live-scraping server of each PromQL backend in turn."""
    name = "live_prom" if request.param == "prometheus" else "live_vm"
    server: PrometheusServer = request.getfixturevalue(name)
    return server


@pytest.fixture(scope="session")
def stopped_prom_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of a Prometheus that ran and was stopped: nothing listens there any more."""
    server = start(
        tmp_path_factory.mktemp("prom-stopped"), config_yaml="global:\n  scrape_interval: 1m\n"
    )
    server.stop()
    return server.url


@pytest.fixture(scope="session")
def fake_prom() -> Iterator[FakePrometheus]:
    state = FakePrometheus(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), fake_handler(state))
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


@pytest.fixture(scope="session")
def tls_prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsPrometheus]:
    """The healthy fake Prometheus API over HTTPS, with a self-signed certificate."""
    import ssl

    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls-prom"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    state = FakePrometheus(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), fake_handler(state))
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
