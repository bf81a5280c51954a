"""The reference dual-memory service: Starlette routes over memory, flags, chaos and metrics.

Run it with ``python -m staging.app --port P --data-dir D --flags F`` (admin token from
``ENGRAM_ADMIN_TOKEN``); ``python -m staging up`` does that for you. One worker by design: the
in-memory index belongs to one process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# The flag file is written by the plugin's own writer: one implementation of the format.
from pytest_rollout.flags.base import (
    FlagBackendError,
    FlagError,
    FlagFormatError,
    FlagState,
    FlagValueError,
)
from pytest_rollout.flags.flagd_store import apply_changes, read_flags
from staging import validation
from staging.chaos import Chaos, ChaosError, ChaosSpec
from staging.embeddings import embed
from staging.flags import FlagReader
from staging.formation import FormationParams, FormationRunner
from staging.memory import MemoryService, Snapshot, SpaceMemory
from staging.metrics import ServiceMetrics
from staging.recall import Ranked, blend, episodic, semantic_candidates

log = logging.getLogger("staging.app")
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class ServiceConfig:
    data_dir: Path
    flags_path: Path
    admin_token: str
    semantic_timeout_s: float = 0.2
    formation_interval_s: float = 2.0
    formation: FormationParams = field(default_factory=FormationParams)


class Service:
    """Everything one running service owns; built in the app's lifespan, closed at shutdown."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.memory = MemoryService(config.data_dir)
        self.flags = FlagReader(config.flags_path)
        self.metrics = ServiceMetrics(self.memory, self.flags.gauge_values)
        self.chaos = Chaos()
        self.formation = FormationRunner(
            memory=self.memory,
            metrics=self.metrics,
            enabled=self.flags.formation_enabled,
            params=config.formation,
            interval_s=config.formation_interval_s,
        )

    def close(self) -> None:
        self.formation.stop()
        self.flags.close()
        self.memory.close()


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def admin(handler: Handler) -> Handler:
    """Bearer-token guard for the admin API; constant-time comparison."""

    async def guarded(request: Request) -> Response:
        expected = _service(request).config.admin_token
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), expected.encode()
        ):
            return _error(401, "missing or wrong bearer token")
        return await handler(request)

    return guarded


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    registry = _service(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def remember(request: Request) -> Response:
    service = _service(request)
    space = validation.space_name(request)
    items, batch = validation.episodes(await validation.json_object(request))
    ids = service.memory.get_or_create(space).remember(items)
    service.metrics.active_spaces.seen(service.flags.for_space(space).group, space)
    if batch:
        return JSONResponse({"space": space, "ids": ids}, status_code=201)
    return JSONResponse({"space": space, "id": ids[0]}, status_code=201)


def _results(
    memory: SpaceMemory | None, snap: Snapshot | None, ranked: Ranked
) -> tuple[list[dict[str, object]], list[float]]:
    """JSON results and their confidences (cosine-based scores clipped to 0..1)."""
    if memory is None or snap is None:
        return [], []
    results: list[dict[str, object]] = []
    confidences: list[float] = []
    concepts = snap.concepts
    for row, score, provenance, position in zip(
        ranked.rows.tolist(),
        ranked.scores.tolist(),
        ranked.provenance,
        ranked.concept_positions.tolist(),
        strict=True,
    ):
        confidence = round(min(max(score, 0.0), 1.0), 6)
        item: dict[str, object] = {
            "id": int(snap.ids[row]),
            "text": memory.texts[row],
            "metadata": memory.metadata(row),
            "confidence": confidence,
            "provenance": provenance,
        }
        if 0 <= position < concepts.count:
            item["concept"] = {
                "id": int(concepts.ids[position]),
                "label": concepts.labels[position],
            }
        results.append(item)
        confidences.append(confidence)
    return results, confidences


async def recall(request: Request) -> Response:
    service = _service(request)
    space = validation.space_name(request)
    ask = validation.recall(await validation.json_object(request))
    query = embed(ask.query)
    if not query.any():
        raise validation.bad_request("query has no words to search for")

    started = time.perf_counter()
    flags = service.flags.for_space(space)
    group = flags.group
    mode = "blended" if flags.blended else "episodic"
    m = service.metrics
    m.active_spaces.seen(group, space)
    m.assigned(group, space, service.flags.cohort_percent)
    memory = service.memory.get(space)
    snap = memory.snapshot if memory is not None else None
    outcome = "ok"
    fallback = False
    ranked = Ranked.empty() if snap is None else episodic(snap, query, ask.k)
    if flags.blended:
        chaos = service.chaos.current()
        if chaos is not None and service.chaos.should_fail(chaos):
            await asyncio.sleep(chaos.latency_ms / 1000)
            m.recall_duration.labels(group=group, mode=mode).observe(time.perf_counter() - started)
            m.recall_total.labels(group=group, outcome="error").inc()
            return _error(503, "chaos: injected error on the blended recall path")
        semantic_started = time.perf_counter()
        try:
            async with asyncio.timeout(service.config.semantic_timeout_s):
                if chaos is not None and chaos.latency_ms > 0:
                    await asyncio.sleep(chaos.latency_ms / 1000)
                if snap is not None:
                    candidates = semantic_candidates(snap, query)
            # The ranking itself cannot be interrupted; a slow one still counts as a timeout.
            if time.perf_counter() - semantic_started > service.config.semantic_timeout_s:
                raise TimeoutError
            if snap is not None:
                ranked = blend(snap, query, ask.k, flags.semantic_weight, ranked, candidates)
        except TimeoutError:
            outcome, fallback = "timeout", True
            m.semantic_timeouts.inc()

    results, confidences = _results(memory, snap, ranked)
    elapsed = time.perf_counter() - started
    m.recall_duration.labels(group=group, mode=mode).observe(elapsed)
    m.recall_total.labels(group=group, outcome=outcome).inc()
    m.recall_results.labels(group=group).observe(len(results))
    if confidences:  # the mean confidence of nothing is undefined, not zero
        m.recall_confidence.labels(group=group).observe(sum(confidences) / len(confidences))
    return JSONResponse(
        {
            "space": space,
            "group": group,
            "mode": mode,
            "fallback": fallback,
            "took_ms": round(elapsed * 1000, 3),
            "results": results,
        }
    )


async def status(request: Request) -> Response:
    service = _service(request)
    totals = service.memory.totals()
    return JSONResponse(
        {
            "flags": service.flags.view(),
            "provider": service.flags.provider_status(),
            "episodes": totals.episodes,
            "concepts": totals.concepts,
            "bindings": totals.bindings,
            "spaces": totals.spaces,
            "chaos": service.chaos.describe(),
        }
    )


def _integrity(service: Service) -> dict[str, object]:
    spaces: dict[str, dict[str, object]] = {}
    overall = hashlib.sha256()
    total = 0
    for space in sorted(service.memory.spaces(), key=lambda s: s.name):
        result = space.store.integrity()
        spaces[space.name] = {"episodes": result.episodes, "checksum": result.checksum}
        overall.update(f"{space.name}={result.checksum}\n".encode())
        total += result.episodes
    return {"episodes": total, "checksum": "sha256:" + overall.hexdigest(), "spaces": spaces}


async def integrity(request: Request) -> Response:
    # Reads every episode back from disk: off the event loop, recall keeps flowing meanwhile.
    return JSONResponse(await run_in_threadpool(_integrity, _service(request)))


def _features_json(states: Mapping[str, FlagState]) -> dict[str, object]:
    return {"flags": {name: state.to_json() for name, state in sorted(states.items())}}


@admin
async def get_features(request: Request) -> Response:
    try:
        states = await run_in_threadpool(read_flags, _service(request).config.flags_path)
    except FlagError as exc:
        return _error(503, f"flag file unreadable: {exc}")
    return JSONResponse(_features_json(states))


@admin
async def put_features(request: Request) -> Response:
    body = await validation.json_object(request)
    unknown = set(body) - {"flags", "reason", "actor"}
    if unknown:
        raise validation.bad_request(f"unknown fields {', '.join(sorted(unknown))}")
    changes = body.get("flags")
    if not isinstance(changes, dict) or not changes:
        raise validation.bad_request("flags must be a non-empty object {name: value}")
    for key in ("reason", "actor"):
        if key in body and not isinstance(body[key], str):
            raise validation.bad_request(f"{key} must be a string")
    path = _service(request).config.flags_path
    try:
        states = await run_in_threadpool(apply_changes, path, changes)
    except FlagValueError as exc:
        raise validation.bad_request(str(exc)) from None
    except (FlagBackendError, FlagFormatError) as exc:
        return _error(503, f"flag file not writable: {exc}")
    log.info(
        "flags changed by %s: %s (reason: %s)",
        body.get("actor", "unknown"),
        changes,
        body.get("reason", ""),
    )
    return JSONResponse(_features_json(states))


@admin
async def chaos(request: Request) -> Response:
    drills = _service(request).chaos
    if request.method == "POST":
        try:
            spec = ChaosSpec.from_json(await validation.json_object(request))
        except ChaosError as exc:
            raise validation.bad_request(str(exc)) from None
        drills.start(spec)
        log.warning("chaos started: %s", spec)
    elif request.method == "DELETE":
        drills.clear()
        log.warning("chaos cleared")
    return JSONResponse(drills.describe())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error(500, "internal error")


def create_app(config: ServiceConfig) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service = Service(config)
        app.state.service = service
        service.formation.start()
        try:
            yield
        finally:
            service.close()

    routes = [
        Route("/health", health),
        Route("/metrics", metrics),
        Route("/api/v1/spaces/{space}/episodes", remember, methods=["POST"]),
        Route("/api/v1/spaces/{space}/recall", recall, methods=["POST"]),
        Route("/api/v1/dual_memory/status", status),
        Route("/api/v1/dual_memory/integrity", integrity),
        Route("/api/v1/admin/features", get_features, methods=["GET"]),
        Route("/api/v1/admin/features", put_features, methods=["PUT"]),
        Route("/api/v1/admin/chaos", chaos, methods=["GET", "POST", "DELETE"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m staging.app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--flags", type=Path, required=True, help="flagd JSON flag file")
    parser.add_argument("--semantic-timeout-ms", type=float, default=200.0)
    parser.add_argument("--formation-interval", type=float, default=2.0, help="seconds")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    args = parse_args(argv)
    token = os.environ.get("ENGRAM_ADMIN_TOKEN", "")
    if len(token) < 16:
        print("ENGRAM_ADMIN_TOKEN must be set (16+ characters)", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = ServiceConfig(
        data_dir=args.data_dir,
        flags_path=args.flags,
        admin_token=token,
        semantic_timeout_s=args.semantic_timeout_ms / 1000,
        formation_interval_s=args.formation_interval,
    )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
