from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_rollout.flags.audit import ChangeContext
from pytest_rollout.flags.flagd_file import FlagdFileController, default_audit_path
from tests.flags.helpers import TOKEN, AdminServerState, admin_server, write_flag_file


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    return write_flag_file(tmp_path / "flags.json")


@pytest.fixture
def context() -> ChangeContext:
    return ChangeContext(actor="alice", environment="staging", phase="phase2", run_id="run-1")


@pytest.fixture
def file_controller(flag_file: Path, context: ChangeContext) -> FlagdFileController:
    return FlagdFileController.from_uri(f"flagd-file:{flag_file}", audit_log=None, context=context)


@pytest.fixture
def audit_path(flag_file: Path) -> Path:
    return default_audit_path(flag_file)


@pytest.fixture
def admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, AdminServerState]]:
    """A real loopback admin API backed by a real flagd file, with the token in the env."""
    monkeypatch.setenv("ROLLOUT_FLAGS_TOKEN", TOKEN)
    state = AdminServerState(flag_file=write_flag_file(tmp_path / "served-flags.json"))
    with admin_server(state) as url:
        yield url, state
