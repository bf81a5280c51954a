"""Real loopback servers and flag files for the flag tests (no mocks: real sockets, real files)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pytest_rollout.flags.base import FlagValueError
from pytest_rollout.flags.flagd_format import SCHEMA_URL, cohort_definition
from pytest_rollout.flags.flagd_store import apply_changes, read_flags
from pytest_rollout.flags.http import ADMIN_PATH

TOKEN = "s3cret-token-for-tests-only"


def flag_document(percent: float = 0) -> dict[str, Any]:
    """The dual-memory flags: a boolean, a cohort and a number, plus one flag we never manage."""
    return {
        "$schema": SCHEMA_URL,
        "flags": {
            "concept_formation": {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
            },
            "blended_recall": cohort_definition(percent),
            "semantic_weight": {
                "state": "ENABLED",
                "variants": {"value": 0.3},
                "defaultVariant": "value",
            },
            "recall_mode": {
                "state": "ENABLED",
                "variants": {"fast": "fast", "exact": "exact"},
                "defaultVariant": "fast",
                "metadata": {"owner": "memory-team"},
            },
        },
    }


def write_flag_file(path: Path, document: dict[str, Any] | None = None) -> Path:
    path.write_text(json.dumps(document or flag_document(), indent=2), encoding="utf-8")
    return path


@dataclass
class AdminServerState:
    """What the loopback admin server saw; tests assert on it."""

    flag_file: Path
    token: str = TOKEN
    requests: list[dict[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0
    lie_on_get: bool = False  # PUT answers the new state but GET keeps showing the old one
    stale: dict[str, Any] | None = None
    reject_with: str | None = None  # answer every PUT with 400 and this error


def _state_json(flag_file: Path) -> dict[str, Any]:
    return {"flags": {n: s.to_json() for n, s in sorted(read_flags(flag_file).items())}}


class _AdminHandler(BaseHTTPRequestHandler):
    server: _AdminServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)  # the client may have given up (timeout tests)

    def _authorised(self) -> bool:
        state = self.server.state
        self.server.state.requests.append(
            {"method": self.command, "authorization": self.headers.get("Authorization")}
        )
        if state.delay_s:
            time.sleep(state.delay_s)
        if self.headers.get("Authorization") != f"Bearer {state.token}":
            self._send(401, {"error": "missing or wrong bearer token"})
            return False
        return True

    def do_GET(self) -> None:
        if self.path != ADMIN_PATH:
            self._send(404, {"error": "not found"})
            return
        if not self._authorised():
            return
        state = self.server.state
        if state.lie_on_get and state.stale is not None:
            self._send(200, state.stale)
            return
        self._send(200, _state_json(state.flag_file))

    def do_PUT(self) -> None:
        if self.path != ADMIN_PATH:
            self._send(404, {"error": "not found"})
            return
        if not self._authorised():
            return
        state = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length))
            state.requests[-1]["body"] = body
            if state.reject_with is not None:
                raise FlagValueError(state.reject_with)
            if state.lie_on_get:
                state.stale = _state_json(state.flag_file)
            apply_changes(state.flag_file, body["flags"])
        except (ValueError, KeyError, TypeError) as exc:
            message = str(exc) if isinstance(exc, FlagValueError) else f"bad request: {exc!r}"
            self._send(400, {"error": message})
            return
        self._send(200, _state_json(state.flag_file))


class _AdminServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: AdminServerState) -> None:
        super().__init__(("127.0.0.1", 0), _AdminHandler)
        self.state = state


@contextmanager
def serve(server: ThreadingHTTPServer) -> Iterator[str]:
    """Serve on a free loopback port in a thread; shut down and close on exit."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def admin_server(state: AdminServerState) -> Iterator[str]:
    with serve(_AdminServer(state)) as url:
        yield url


class _WebhookHandler(BaseHTTPRequestHandler):
    server: _WebhookServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.received.append(
            {"path": self.path, "body": json.loads(self.rfile.read(length))}
        )
        status = self.server.status
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"no")


class _WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int) -> None:
        super().__init__(("127.0.0.1", 0), _WebhookHandler)
        self.status = status
        self.received: list[dict[str, Any]] = []


@contextmanager
def webhook_server(status: int = 200) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = _WebhookServer(status)
    with serve(server) as url:
        yield url, server.received
