"""The warm worker's gate runs: they never see the server's token, and a run that hangs is
killed at --timeout and answered HOLD."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.harness import Server, start_serve

GATES = """
import os
import time

import pytest


@pytest.mark.phase2
def test_the_serve_token_is_not_in_a_gate_runs_environment():
    assert "ROLLOUT_SERVE_TOKEN" not in os.environ
    assert os.environ.get("ROLLOUT_ACTOR") == "serve-test"  # the rest of it is


@pytest.mark.phase3
def test_hangs():
    time.sleep(120)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("serve-worker")
    gates = work / "gates"
    gates.mkdir()
    (gates / "test_gates.py").write_text(GATES)
    (gates / "rollout.toml").write_text("[phases.phase2]\nmin_samples = 1\n")
    running = start_serve(gates, work, [], extra=["--timeout", "4"])
    yield running
    running.stop()


def test_gate_runs_do_not_inherit_the_token(server: Server) -> None:
    body = server.post("/v1/phases/phase2/evaluate").json()
    assert body["decision"] == "GO", body["reason"]


def test_a_hanging_run_is_killed_and_answered_hold(server: Server) -> None:
    body = server.post("/v1/phases/phase3/evaluate").json()
    assert body["decision"] == "HOLD"
    assert "timed out" in body["reason"]


def test_the_state_dir_holds_each_run(server: Server) -> None:
    body = server.post("/v1/phases/phase2/evaluate").json()
    run = Path(server.state_dir) / "runs" / body["run_id"]
    assert (run / "record.json").is_file() and (run / "pytest.log").is_file()
