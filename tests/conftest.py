"""Fixtures shared by all of the plugin's own tests (not by the gates: see the root conftest)."""

from __future__ import annotations

import os

import pytest

# pytest-benchmark comes preinstalled on these machines and turns an xdist run's configure into
# an error under filterwarnings=error; the pytest runs our tests start should see only ours,
# and none of the outer run's xdist identity.
NO_BENCHMARK = "-p no:benchmark"


@pytest.fixture(autouse=True)
def _inner_runs_without_benchmark(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS when it starts
        monkeypatch.setenv("PYTEST_ADDOPTS", NO_BENCHMARK)
        # Under `pytest -n 2` the outer worker's identity must not leak into inner runs.
        for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _clean_rollout_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not pick up a developer's (or a staging shell's) ROLLOUT_* settings."""
    for name in [n for n in os.environ if n.startswith("ROLLOUT_")]:
        monkeypatch.delenv(name)
