"""The HTTP admin backend against a real loopback server implementing the admin API contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rollout.flags.audit import AuditLog, ChangeContext
from pytest_rollout.flags.base import (
    FlagBackendError,
    FlagFormatError,
    FlagState,
    FlagValueError,
    FlagVerificationError,
    UnknownFlagError,
)
from pytest_rollout.flags.flagd_store import read_flags
from pytest_rollout.flags.http import HttpFlagController
from tests.flags.helpers import TOKEN, AdminServerState

Admin = tuple[str, AdminServerState]


def controller(url: str, tmp_path: Path, timeout_s: float = 5.0) -> HttpFlagController:
    return HttpFlagController(
        url,
        audit=AuditLog(tmp_path / "audit.jsonl"),
        context=ChangeContext(actor="alice", environment="staging", phase="phase3"),
        timeout_s=timeout_s,
    )


def test_get_reads_the_served_flags_with_the_bearer_token(admin: Admin, tmp_path: Path) -> None:
    url, state = admin
    flags = controller(url, tmp_path).get_all()
    assert flags["blended_recall"] == FlagState("blended_recall", "cohort", 0.0)
    assert flags["concept_formation"] == FlagState("concept_formation", "boolean", False)
    assert state.requests[0]["authorization"] == f"Bearer {TOKEN}"


def test_set_puts_reason_and_actor_audits_and_verifies(admin: Admin, tmp_path: Path) -> None:
    url, state = admin
    ctl = controller(url, tmp_path)
    assert ctl.set_cohort_percent("blended_recall", 25, reason="ramp to 25").value == 25.0
    assert read_flags(state.flag_file)["blended_recall"].value == 25.0
    put = next(r for r in state.requests if r["method"] == "PUT")
    assert put["body"] == {
        "flags": {"blended_recall": 25.0},
        "reason": "ramp to 25",
        "actor": "alice",
    }
    [change] = AuditLog(tmp_path / "audit.jsonl").changes()
    assert (change.status, change.before, change.after) == (
        "verified",
        {"blended_recall": 0.0},
        {"blended_recall": 25.0},
    )
    assert TOKEN not in (tmp_path / "audit.jsonl").read_text()
    assert "parent" not in change.lines[0]  # the service carries no change ids


def test_wrong_token_is_a_clear_401_without_the_token(
    admin: Admin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = admin
    monkeypatch.setenv("ROLLOUT_FLAGS_TOKEN", "wrong-" + TOKEN)
    with pytest.raises(FlagBackendError, match="401 unauthorized") as info:
        controller(url, tmp_path).get_all()
    assert TOKEN not in str(info.value)
    assert "ROLLOUT_FLAGS_TOKEN" in str(info.value)


def test_missing_token_says_it_is_not_set(
    admin: Admin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = admin
    monkeypatch.delenv("ROLLOUT_FLAGS_TOKEN")
    with pytest.raises(FlagBackendError, match="which is not set"):
        controller(url, tmp_path).get_all()


def test_unknown_flag_and_bad_percent_fail_before_any_put(admin: Admin, tmp_path: Path) -> None:
    url, state = admin
    ctl = controller(url, tmp_path)
    with pytest.raises(UnknownFlagError, match="nope"):
        ctl.set("nope", True, reason="x")
    with pytest.raises(FlagValueError, match="outside 0..100"):
        ctl.set("blended_recall", 150, reason="x")
    assert all(r["method"] == "GET" for r in state.requests)
    assert not (tmp_path / "audit.jsonl").exists()


def test_server_side_400_is_a_value_error_with_the_servers_message(
    admin: Admin, tmp_path: Path
) -> None:
    url, state = admin
    state.reject_with = "blended_recall is frozen during the incident"
    with pytest.raises(FlagValueError, match="HTTP 400 rejected: blended_recall is frozen"):
        controller(url, tmp_path).set("blended_recall", 5, reason="canary")
    [change] = AuditLog(tmp_path / "audit.jsonl").changes()
    assert change.status == "failed"
    assert read_flags(state.flag_file)["blended_recall"].value == 0.0


def test_timeout_is_reported_and_audited_as_unknown(admin: Admin, tmp_path: Path) -> None:
    url, state = admin
    ctl = controller(url, tmp_path, timeout_s=0.3)
    ctl.get_all()
    state.delay_s = 0.6
    with pytest.raises(FlagBackendError, match="no answer within 0.3 s"):
        ctl.set("concept_formation", True, reason="x")
    state.delay_s = 0.0


def test_put_timeout_after_the_audit_line_is_recorded_as_unknown(
    admin: Admin, tmp_path: Path
) -> None:
    url, state = admin
    ctl = controller(url, tmp_path, timeout_s=0.5)
    original_get_all = ctl.get_all

    def get_then_slow_down() -> dict[str, FlagState]:
        flags = original_get_all()
        state.delay_s = 1.0  # the next request (the PUT) will time out
        return flags

    ctl.get_all = get_then_slow_down  # type: ignore[method-assign]
    with pytest.raises(FlagBackendError, match="may or may not have taken effect"):
        ctl.set("concept_formation", True, reason="x")
    state.delay_s = 0.0
    [change] = AuditLog(tmp_path / "audit.jsonl").changes()
    assert change.status == "unknown"


def test_read_back_that_disagrees_is_a_verification_error(admin: Admin, tmp_path: Path) -> None:
    url, state = admin
    state.lie_on_get = True
    with pytest.raises(FlagVerificationError, match="GET after the change disagrees"):
        controller(url, tmp_path).set("blended_recall", 5, reason="canary")
    [change] = AuditLog(tmp_path / "audit.jsonl").changes()
    assert change.status == "unverified"


def test_unreachable_service_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(FlagBackendError, match="cannot connect"):
        controller("http://127.0.0.1:9", tmp_path, timeout_s=1).get_all()


def test_credentials_in_the_uri_are_refused_without_echoing_them(
    admin: Admin, tmp_path: Path
) -> None:
    url, _ = admin
    with_user = url.replace("http://", "http://ops:hunter2@")
    with pytest.raises(FlagFormatError, match="ROLLOUT_FLAGS_TOKEN") as info:
        HttpFlagController.from_uri(with_user, audit_log=None, context=ChangeContext(actor="a"))
    assert "hunter2" not in str(info.value)
