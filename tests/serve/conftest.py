"""Real servers for the serve tests: a backfilled Prometheus per bundled scenario, a flagd file,
and ``rollout serve`` on 127.0.0.1 at a free port, each stopped by its PID."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.scenarios import END, HISTORY_S, generate
from pytest_rollout.promserver import start_backfilled
from tests.serve.harness import Server, example_gates, start_serve
from tests.test_rollback_on_abort import FLAG_FILE


def _flags(where: Path) -> Path:
    path = where / "flags.json"
    path.write_text(json.dumps(FLAG_FILE))
    return path


def scenario_args(prometheus_url: str, flags: Path) -> list[str]:
    return [
        f"--rollout-prometheus-url={prometheus_url}",
        f"--rollout-at={END}",
        f"--rollout-since={END - HISTORY_S}",  # the canary began when the history does
        f"--rollout-flags=flagd-file:{flags}",
    ]


@pytest.fixture(scope="module", params=["healthy", "regression", "stale"])
def scenario_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Server]]:
    """(scenario, a server over the example gates against that scenario's Prometheus)."""
    scenario = str(request.param)
    work = tmp_path_factory.mktemp(f"serve-{scenario}")
    prometheus = start_backfilled(generate(scenario), work / "prom")
    try:
        server = start_serve(example_gates(work), work, scenario_args(prometheus.url, _flags(work)))
        try:
            yield scenario, server
        finally:
            server.stop()
    finally:
        prometheus.stop()
