"""Fixtures of the dual-memory rollout gates that are specific to the memory service.

The generic fixtures (``prom``, ``ab``, ``flags``, ``phase``, ``gate``, ``soak``, ``baseline``)
come from pytest-rollout; here is only what talks to the service itself over HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypedDict

import pytest
import requests

from pytest_rollout import inconclusive

if TYPE_CHECKING:
    # types only: the soak runner loads when a soak gate runs, not when the gates are collected
    from pytest_rollout import Rollout
    from pytest_rollout.load.result import SoakResult


# A JSON object the gates pass on or ignore; the answers they read have their own types below.
JsonObject = dict[str, Any]


class RecallHit(TypedDict):
    """One result of ``POST /api/v1/spaces/{space}/recall`` (the keys the gates read)."""

    text: str


class RecallAnswer(TypedDict):
    """The answer of ``POST /api/v1/spaces/{space}/recall`` (the keys the gates read)."""

    group: str  # the cohort the service put the space in: "control" or "treatment"
    results: list[RecallHit]


class SpaceIntegrity(TypedDict):
    """One space of ``GET /api/v1/dual_memory/integrity`` (the keys the gates read)."""

    episodes: int


class Integrity(TypedDict):
    """The answer of ``GET /api/v1/dual_memory/integrity`` (the keys the gates read)."""

    spaces: dict[str, SpaceIntegrity]


class Engram:
    """The memory service's HTTP API, as the gates use it (integrity, status, chaos drills)."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._session = requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, json: JsonObject | None = None) -> Any:
        """The decoded JSON answer, unchecked: each public method states the shape it expects."""
        try:
            response = self._session.request(
                method, self.url + path, timeout=self.timeout_s, json=json
            )
        except requests.RequestException as exc:
            inconclusive(
                f"memory service {self.url} unreachable ({type(exc).__name__}) on "
                f"{method} {path}: check ENGRAM_URL and that the service is up"
            )
        if response.status_code >= 400:
            inconclusive(
                f"memory service answered HTTP {response.status_code} on {method} "
                f"{path}: {response.text[:200]}"
            )
        return response.json()

    def health(self) -> JsonObject:
        answer: JsonObject = self._call("GET", "/health")
        return answer

    def status(self) -> JsonObject:
        answer: JsonObject = self._call("GET", "/api/v1/dual_memory/status")
        return answer

    def integrity(self) -> Integrity:
        answer: Integrity = self._call("GET", "/api/v1/dual_memory/integrity")
        return answer

    def chaos(self, *, latency_ms: float, error_rate: float, duration_s: float) -> JsonObject:
        answer: JsonObject = self._call(
            "POST",
            "/api/v1/admin/chaos",
            json={"latency_ms": latency_ms, "error_rate": error_rate, "duration_s": duration_s},
        )
        return answer

    def clear_chaos(self) -> JsonObject:
        answer: JsonObject = self._call("DELETE", "/api/v1/admin/chaos")
        return answer

    def remember(self, space: str, text: str) -> JsonObject:
        answer: JsonObject = self._call(
            "POST", f"/api/v1/spaces/{space}/episodes", json={"text": text}
        )
        return answer

    def recall(self, space: str, query: str, k: int = 5) -> RecallAnswer:
        answer: RecallAnswer = self._call(
            "POST", f"/api/v1/spaces/{space}/recall", json={"query": query, "k": k}
        )
        return answer


@pytest.fixture(scope="session")
def engram(rollout: Rollout) -> Iterator[Engram]:
    """The memory service under rollout: ENGRAM_URL, else ``service_url`` of the environment."""
    url = os.environ.get("ENGRAM_URL") or rollout.env.service_url
    if not url:
        raise LookupError(
            "no memory service URL: set ENGRAM_URL (python -m staging env prints "
            f"it) or service_url in [environments.{rollout.environment}]"
        )
    token = os.environ.get("ENGRAM_ADMIN_TOKEN") or os.environ.get("ROLLOUT_FLAGS_TOKEN")
    client = Engram(url, token)
    yield client
    client._session.close()


@pytest.fixture(scope="session")
def soak_result(rollout: Rollout, tmp_path_factory: pytest.TempPathFactory) -> SoakResult:
    """The phase 0 soak, run once for the soak gates.

    ROLLOUT_SOAK_RESULT names the results JSON of a soak already run (``rollout soak ... --out``,
    the 24-hour soak of the runbook); otherwise a soak of the phase's ``duration`` runs now
    against ENGRAM_URL with staging/locustfile.py, sampling RSS/CPU through Prometheus.
    """
    from pathlib import Path

    from pytest_rollout.load.result import SoakResult
    from pytest_rollout.load.runner import SoakRunner
    from pytest_rollout.load.soak_config import SoakConfig

    saved = os.environ.get("ROLLOUT_SOAK_RESULT")
    if saved:
        return SoakResult.load(Path(saved))
    url = os.environ.get("ENGRAM_URL") or rollout.env.service_url
    if not url:
        raise LookupError("no soak target: set ENGRAM_URL, or ROLLOUT_SOAK_RESULT to a saved soak")
    phase = rollout.phase("phase0")
    duration = phase.config.duration_s or 3600.0
    config = SoakConfig(
        target=url,
        locustfile=Path(__file__).resolve().parent.parent / "staging" / "locustfile.py",
        users=10,
        spawn_rate=10,
        duration_s=duration,
        warmup_s=min(duration * 0.1, 600.0),
        sample_interval_s=1.0,
        progress_every_s=60.0,
        prometheus_url=rollout.prometheus_url,
        prometheus_selector='{job="engram"}',
    )
    return SoakRunner(tmp_path_factory.mktemp("soak")).run(config)
