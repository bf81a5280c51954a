"""Fault-injecting loopback servers the matrix needs beyond the ones other suites already have."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.flags.helpers import AdminServerState, _AdminHandler, _AdminServer, serve

VECTOR = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {"job": "rt"}, "value": [0, "0.001"]}]},
}


class _PromHandler(BaseHTTPRequestHandler):
    """``/truncated/...``: a 200 JSON answer cut off mid-body; anything else: one healthy value."""

    def log_message(self, format: str, *args: Any) -> None:  # keep the matrix output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({**VECTOR}).encode()
        if self.path.startswith("/truncated/"):
            body = body[: len(body) // 2]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def self_signed_cert(workdir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no trust store knows."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextmanager
def prometheus_faults(workdir: Path, *, tls: bool) -> Iterator[str]:
    """Serve :class:`_PromHandler` on 127.0.0.1, over HTTPS with an untrusted cert if ``tls``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PromHandler)
    server.daemon_threads = True
    if tls:
        cert, key = self_signed_cert(workdir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    with serve(server) as url:
        yield url.replace("http://", "https://") if tls else url


class _HangingPutHandler(_AdminHandler):
    """The admin API that answers reads at once and sits on writes past the client's timeout,
    then applies them anyway: the write may have taken effect though nobody was told."""

    server: _HangingPutServer

    def do_PUT(self) -> None:  # noqa: N802
        time.sleep(self.server.hang_s)
        super().do_PUT()


class _HangingPutServer(_AdminServer):
    def __init__(self, state: AdminServerState, hang_s: float) -> None:
        super().__init__(state)
        self.RequestHandlerClass = _HangingPutHandler
        self.hang_s = hang_s


@contextmanager
def hanging_put_admin_server(state: AdminServerState, hang_s: float) -> Iterator[str]:
    with serve(_HangingPutServer(state, hang_s)) as url:
        yield url
