"""The HTTP routes of ``rollout serve`` (Starlette). Paths are part of the contract: docs/serve.md.

Argo Rollouts' Web provider reads ``$.decision`` from a 200 answer (any non-2xx is an Error that
aborts the rollout, so HOLD and ABORT are 200 on /v1/phases/...); Flagger reads only the status
(<= 202 passes), so its gate answers 403 unless GO.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from pytest_rollout.instants import parse_instant
from pytest_rollout.serve.alerts import AlertHandler
from pytest_rollout.serve.evaluate import Evaluator, ServeState

MAX_BODY = 64 * 1024
ENV_TOKEN = "ROLLOUT_SERVE_TOKEN"
Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """A request the server refuses; ``status`` and a message that says what to send instead."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_json(request: Request) -> Any:
    """The body as JSON (None when empty), at most MAX_BODY bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise BadRequest(413, f"request body over {MAX_BODY} bytes; send a smaller JSON body")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY:  # a chunked body announces no length
            raise BadRequest(413, f"request body over {MAX_BODY} bytes; send a smaller JSON body")
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"the request body is not valid JSON: {exc}") from None


def _instant(body: Any, key: str) -> str | None:
    """``at``/``since`` of an evaluate body, validated here so a typo is a 400, not a HOLD."""
    if not isinstance(body, dict) or body.get(key) is None:
        return None
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRequest(400, f'"{key}" must be an RFC 3339 time or unix seconds, not {value!r}')
    text = str(value)
    try:
        parse_instant(text)
    except ValueError as exc:
        raise BadRequest(400, f'"{key}": {exc}') from None
    return text


def build_app(state: ServeState, evaluator: Evaluator, token: str | None) -> Starlette:
    alerts = AlertHandler(state)
    state.load_latest()

    def guarded(handler: Handler, *, post: bool = True) -> Handler:
        async def wrapped(request: Request) -> Response:
            if post and token is not None:
                given = request.headers.get("authorization", "")
                expected = f"Bearer {token}"
                if not hmac.compare_digest(given.encode(), expected.encode()):
                    return _error(401, f"missing or wrong bearer token (see {ENV_TOKEN})")
            try:
                return await handler(request)
            except BadRequest as exc:
                return _error(exc.status, exc.message)

        return wrapped

    def phase_of(request: Request) -> str:
        phase = str(request.path_params["phase"])
        if not state.knows_phase(phase):
            known = ", ".join(state.config.known_phases)
            raise BadRequest(404, f"no phase {phase!r} in {state.config.source} (known: {known})")
        return phase

    async def evaluate(request: Request) -> Response:
        phase = phase_of(request)
        body = await read_json(request)
        if body is not None and not isinstance(body, dict):
            raise BadRequest(400, 'the body must be a JSON object: {"at": ..., "since": ...}')
        answer = await evaluator.evaluate(phase, _instant(body, "at"), _instant(body, "since"))
        return JSONResponse(answer)  # 200 whatever the decision: Argo aborts on non-2xx

    async def flagger_gate(request: Request) -> Response:
        phase = phase_of(request)
        await read_json(request)  # Flagger's body names its canary; the path names our phase
        answer = await evaluator.evaluate(phase, None, None)
        status = 200 if answer["decision"] == "GO" else 403
        return JSONResponse(answer, status_code=status)

    async def flagger_rollback(request: Request) -> Response:
        phase = phase_of(request)
        await read_json(request)
        latest = state.latest.get(phase)
        if alerts.is_firing(phase):
            return JSONResponse({"rollback": True, "reason": f"an abort alert for {phase} fires"})
        if latest is not None and latest.get("decision") == "ABORT":
            return JSONResponse({"rollback": True, "reason": latest.get("reason", "")})
        return JSONResponse({"rollback": False, "reason": "no ABORT"}, status_code=404)

    async def alertmanager(request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest(400, "the body must be Alertmanager's webhook JSON object")
        # Rollbacks block on the flag backend: off the event loop, one notification at a time.
        return JSONResponse(await asyncio.to_thread(alerts.handle, body))

    async def decision(request: Request) -> Response:
        phase = phase_of(request)
        latest = state.latest.get(phase)
        if latest is None:
            return _error(404, f"no decision for {phase} yet; POST /v1/phases/{phase}/evaluate")
        return JSONResponse(latest)

    def run_file(name: str, media_type: str) -> Handler:
        async def serve(request: Request) -> Response:
            run_id = str(request.path_params["run_id"])
            run_dir = state.run_dir(run_id)
            path = run_dir / name if run_dir is not None else None
            if path is None or not path.is_file():
                return _error(404, f"no {name} for run {run_id!r}")
            return FileResponse(path, media_type=media_type)

        return serve

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "phases": sorted(state.latest)})

    async def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        evaluator.worker.stop()

    routes = [
        Route("/v1/phases/{phase}/evaluate", guarded(evaluate), methods=["POST"]),
        Route("/v1/phases/{phase}/decision", guarded(decision, post=False), methods=["GET"]),
        Route("/v1/flagger/{phase}/gate", guarded(flagger_gate), methods=["POST"]),
        Route("/v1/flagger/{phase}/rollback", guarded(flagger_rollback), methods=["POST"]),
        Route("/v1/alertmanager", guarded(alertmanager), methods=["POST"]),
        Route("/v1/runs/{run_id}/report.html", run_file("report.html", "text/html")),
        Route("/v1/runs/{run_id}/record.json", run_file("record.json", "application/json")),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def take_token() -> str | None:
    """The bearer token, removed from the environment so no gate run inherits it."""
    return os.environ.pop(ENV_TOKEN, None) or None
