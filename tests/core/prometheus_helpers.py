"""Known-truth history for the real Prometheus servers, and fake Prometheus APIs that misbehave
on purpose: shared by the core tests and the fault matrix (conftest.py holds only fixtures)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from pytest_rollout.openmetrics import OpenMetricsWriter

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


@dataclass
class FakePrometheus:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)

    def at(self, mode: str) -> str:
        return f"{self.url}/{mode}"


BAD_QUERY_ERROR = "1:5: parse error: unclosed left parenthesis"


def fake_handler(state: FakePrometheus) -> type[BaseHTTPRequestHandler]:
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
                self._send(200, vector_answer("0.001"))
            elif mode == "garbage":
                self._send(
                    200, b"<html>this is not the API you are looking for</html>", "text/html"
                )
            elif mode == "nodata":
                self._send(200, json.dumps({"status": "success"}).encode())
            else:  # "ok" and anything else: one healthy series
                self._send(200, vector_answer("0.001"))

    return Handler


def vector_answer(value: str) -> bytes:
    return json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": {"job": "rt"}, "value": [time.time(), value]}],
            },
        }
    ).encode()


E2E_TOML = """
    [rollout]
    default_environment = "e2e"

    [environments.e2e]
    timeout = "5s"
    retries = 0
"""


@dataclass(frozen=True)
class TlsPrometheus:
    url: str
    ca_bundle: (
        str  # the self-signed certificate itself, PEM: what ROLLOUT_PROMETHEUS_CA_BUNDLE takes
    )


def self_signed_cert(directory: Any) -> tuple[str, str]:
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
