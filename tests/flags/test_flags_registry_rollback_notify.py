"""Backend selection by URI, verified rollback that never raises, and the webhook hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_rollout.flags.audit import AuditLog, ChangeContext
from pytest_rollout.flags.flagd_file import FlagdFileController
from pytest_rollout.flags.flagd_store import read_flags
from pytest_rollout.flags.http import HttpFlagController
from pytest_rollout.flags.notify import build_message, notify_webhook
from pytest_rollout.flags.registry import (
    UnknownBackendError,
    available_backends,
    open_controller,
    scheme_of,
)
from pytest_rollout.flags.rollback import perform_rollback
from tests.flags.helpers import AdminServerState, webhook_server

OPEN = {"actor": "ci", "environment": "staging", "phase": "phase2", "run_id": "run-9"}


def test_flagd_file_uri_opens_the_file_controller_with_audit_next_to_the_file(
    flag_file: Path,
) -> None:
    controller = open_controller(f"flagd-file:{flag_file}", audit_log=None, **OPEN)
    assert isinstance(controller, FlagdFileController)
    assert controller.audit is not None
    assert controller.audit.path == Path(f"{flag_file}.audit.jsonl")
    assert controller.context.phase == "phase2" and controller.context.run_id == "run-9"
    assert controller.snapshot()["blended_recall"] == 0.0


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8080", "https://flags.example:8443/"])
def test_http_uris_open_the_http_controller_with_the_default_audit_log(uri: str) -> None:
    controller = open_controller(uri, audit_log=None, **OPEN)
    assert isinstance(controller, HttpFlagController)
    assert controller.audit is not None
    assert controller.audit.path == Path("rollout-flags-audit.jsonl")


def test_unknown_scheme_names_the_uri_and_the_known_schemes() -> None:
    with pytest.raises(UnknownBackendError) as info:
        open_controller("launchdarkly://proj/prod", audit_log=None, **OPEN)
    message = str(info.value)
    assert "launchdarkly://proj/prod" in message
    assert "flagd-file:" in message and "http:" in message
    assert isinstance(info.value, ValueError)


def test_scheme_parsing_keeps_windows_paths_out() -> None:
    assert scheme_of("flagd-file:/etc/flags.json") == "flagd-file"
    assert scheme_of("HTTP://h") == "http"
    assert scheme_of("C:\\flags.json") == ""
    assert scheme_of("flags.json") == ""


def test_built_in_backends_are_known_even_without_entry_points() -> None:
    backends = available_backends()
    assert backends["flagd-file"] == "pytest_rollout.flags.flagd_file:FlagdFileController"
    assert backends["http"] == "pytest_rollout.flags.http:HttpFlagController"


def test_rollback_applies_verifies_and_reports(
    file_controller: FlagdFileController, flag_file: Path
) -> None:
    file_controller.set_many({"blended_recall": 5, "concept_formation": True}, reason="canary")
    result = perform_rollback(file_controller, {"blended_recall": 0}, reason="ABORT phase2")
    assert result.ok, result.message
    assert result.before is not None and result.before["blended_recall"] == 5.0
    assert result.after is not None and result.after["blended_recall"] == 0.0
    assert result.after["concept_formation"] is True  # only the rollback state changes
    assert read_flags(flag_file)["blended_recall"].value == 0.0
    assert result.at.endswith("Z") and result.duration_s >= 0
    record = result.to_json()
    assert record["action"] == "rollback" and record["result"] == "verified"
    json.dumps(record)  # goes into the decision record as is
    assert file_controller.audit is not None
    last = file_controller.audit.changes()[-1]
    assert (last.reason, last.status) == ("ABORT phase2", "verified")


def test_rollback_to_an_unknown_flag_fails_loudly_with_the_current_state(
    file_controller: FlagdFileController,
) -> None:
    file_controller.set("blended_recall", 5, reason="canary")
    result = perform_rollback(file_controller, {"blended_recal": 0}, reason="ABORT")
    assert not result.ok
    assert "ROLLBACK FAILED" in result.message
    assert "blended_recal" in result.message
    assert "'blended_recall': 5.0" in result.message  # what state the flags are in now
    assert result.to_json()["result"] == "failed"


def test_rollback_onto_a_read_only_flag_file_reports_failed_not_verified(
    file_controller: FlagdFileController, flag_file: Path
) -> None:
    file_controller.set("blended_recall", 5, reason="canary")
    flag_file.chmod(0o444)
    result = perform_rollback(file_controller, {"blended_recall": 0}, reason="ABORT phase2")
    assert not result.ok
    assert result.to_json()["result"] == "failed"
    assert "ROLLBACK FAILED" in result.message and f"chmod u+w {flag_file}" in result.message
    assert "'blended_recall': 5.0" in result.message  # the state the flags are really in
    assert read_flags(flag_file)["blended_recall"].value == 5.0


def test_rollback_against_an_unreachable_service_says_the_state_is_unknown(
    tmp_path: Path,
) -> None:
    controller = HttpFlagController(
        "http://127.0.0.1:9",
        audit=AuditLog(tmp_path / "a.jsonl"),
        context=ChangeContext(actor="ci"),
        timeout_s=1.0,
    )
    result = perform_rollback(controller, {"blended_recall": 0}, reason="ABORT")
    assert not result.ok
    assert "flag state UNKNOWN" in result.message
    assert result.before is None and result.after is None


def test_rollback_over_http_is_verified_by_read_back(
    admin: tuple[str, AdminServerState], tmp_path: Path
) -> None:
    url, state = admin
    controller = open_controller(url, audit_log=tmp_path / "audit.jsonl", **OPEN)
    controller.set("blended_recall", 25, reason="ramp")
    result = perform_rollback(controller, {"blended_recall": 0}, reason="ABORT phase3")
    assert result.ok, result.message
    assert read_flags(state.flag_file)["blended_recall"].value == 0.0


def test_webhook_receives_a_slack_compatible_message() -> None:
    payload = build_message(
        phase="phase2",
        reason="p99 +31 ms",
        action="rollback verified",
        who="ci",
        environment="production",
    )
    with webhook_server() as (url, received):
        assert notify_webhook(url + "/services/T0/B0/SECRET", payload) is None
    [request] = received
    assert request["path"] == "/services/T0/B0/SECRET"
    assert request["body"]["text"].startswith("[rollout] phase2 in production: rollback verified")
    assert request["body"]["reason"] == "p99 +31 ms" and request["body"]["who"] == "ci"


def test_webhook_failures_are_returned_not_raised_and_hide_the_secret_path() -> None:
    with webhook_server(status=500) as (url, _):
        error = notify_webhook(url + "/services/T0/B0/SECRET", {"text": "x"})
    assert error is not None and "HTTP 500" in error and "SECRET" not in error
    error = notify_webhook("http://127.0.0.1:9/hook/SECRET", {"text": "x"}, timeout_s=1)
    assert error is not None and "ConnectionError" in error and "SECRET" not in error
