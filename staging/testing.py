"""Pytest fixtures for suites that need the staging stack.

Import them in a conftest: ``from staging.testing import staging_stack, engram  # noqa: F401``.
One stack per session (per xdist worker), torn down by PID at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from staging.client import EngramClient
from staging.flags import INITIAL_VALUES
from staging.stack import REPO_ROOT, Stack

# Tests want formation to react fast and timeouts to be cheap to provoke.
TEST_FORMATION_INTERVAL_S = 0.3
TEST_SEMANTIC_TIMEOUT_MS = 150.0


@pytest.fixture(scope="session")
def staging_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The running stack: ``.engram_url``, ``.prometheus_url``, ``.flags_path``, ``.admin_token``,
    ``.env()``, ``.query(promql)``, ``.restart_service(kill=True)``."""
    stack = Stack.up(
        tmp_path_factory.mktemp("staging-stack"),
        formation_interval_s=TEST_FORMATION_INTERVAL_S,
        semantic_timeout_ms=TEST_SEMANTIC_TIMEOUT_MS,
    )
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture
def engram(staging_stack: Stack) -> Iterator[EngramClient]:
    """An admin-capable client; puts flags back to their initial values and clears chaos after."""
    with EngramClient(staging_stack.engram_url, staging_stack.admin_token) as client:
        yield client
        client.clear_chaos()
        current = {name: f["value"] for name, f in client.features()["flags"].items()}
        changed = {k: v for k, v in INITIAL_VALUES.items() if current.get(k) != v}
        if changed:
            client.set_flags(changed)


def run_staging_cli(
    workdir: Path, *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """``python -m staging --workdir WORKDIR ARGS...`` as an operator would type it."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "staging", "--workdir", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO_ROOT,
    )


def process_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False
