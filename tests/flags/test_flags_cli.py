"""``rollout flags ...`` run as an operator would: in a subprocess, against real backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout.flags.audit import AuditLog, ChangeContext, change_records, outcome_record
from pytest_rollout.flags.base import FlagState
from pytest_rollout.flags.flagd_file import default_audit_path
from pytest_rollout.flags.flagd_store import read_flags
from tests.flags.helpers import TOKEN, AdminServerState

REPO_ROOT = Path(__file__).resolve().parents[2]


def rollout(
    *args: str, uri: str | None = None, token: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI; cwd defaults to this directory, which has no rollout.toml to pick up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    env.update({"PYTHONPATH": str(REPO_ROOT), "ROLLOUT_ACTOR": "oncall-alice"})
    if uri is not None:
        env["ROLLOUT_FLAGS"] = uri
    if token is not None:
        env["ROLLOUT_FLAGS_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "pytest_rollout", "flags", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd or Path(__file__).parent,
    )


def test_canary_ramp_and_rollback_by_audit_id(flag_file: Path) -> None:
    uri = f"flagd-file:{flag_file}"
    shown = rollout("get", uri=uri)
    assert shown.returncode == 0, shown.stderr
    assert "blended_recall" in shown.stdout and "0 %" in shown.stdout

    canary = rollout("cohort", "blended_recall", "5", "--reason", "phase2 canary", uri=uri)
    assert canary.returncode == 0, canary.stderr
    assert "blended_recall: 0 -> 5" in canary.stdout and "verified" in canary.stdout
    ramp = rollout("--flags", uri, "--reason", "phase3 ramp", "cohort", "blended_recall", "25%")
    assert ramp.returncode == 0, ramp.stderr
    assert read_flags(flag_file)["blended_recall"].value == 25.0

    history = rollout("history", "--json", uri=uri)
    assert history.returncode == 0, history.stderr
    rows = json.loads(history.stdout)
    assert [(r["actor"], r["status"]) for r in rows] == [("oncall-alice", "verified")] * 2
    ramp_id = rows[1]["id"]

    back = rollout("rollback", "--to", ramp_id, "--reason", "p99 regression", uri=uri)
    assert back.returncode == 0, back.stderr
    assert "blended_recall: 25 -> 5" in back.stdout
    assert read_flags(flag_file)["blended_recall"].value == 5.0
    last = AuditLog(default_audit_path(flag_file)).changes()[-1]
    assert last.reason == f"rollback to before {ramp_id}: p99 regression"


def test_emergency_rollback_to_an_explicit_state(flag_file: Path) -> None:
    uri = f"flagd-file:{flag_file}"
    assert rollout("set", "concept_formation", "on", "--reason", "shadow", uri=uri).returncode == 0
    done = rollout(
        "rollback",
        "--state",
        "blended_recall=0",
        "concept_formation=off",
        "--reason",
        "incident 4711",
        "--json",
        uri=uri,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["verified"] is True and result["change_id"]
    assert result["changes"]["concept_formation"] == {"before": True, "after": False}


def test_dry_run_shows_the_change_and_writes_nothing(flag_file: Path) -> None:
    before = flag_file.read_bytes()
    dry = rollout("cohort", "blended_recall", "50", "--dry-run", uri=f"flagd-file:{flag_file}")
    assert dry.returncode == 0, dry.stderr
    assert "blended_recall: 0 -> 50" in dry.stdout and "dry run" in dry.stdout
    assert flag_file.read_bytes() == before
    assert not default_audit_path(flag_file).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "nope", "1", "--reason", "x"), "unknown flag 'nope'"),
        (("cohort", "blended_recall", "101", "--reason", "x"), "outside 0..100"),
        (("cohort", "concept_formation", "5", "--reason", "x"), "not a cohort flag"),
        (("set", "concept_formation", "on"), "--reason is required"),
        (
            ("rollback", "--to", "20000101T000000Z-000000", "--reason", "x"),
            "no change with audit id",
        ),
        (("rollback", "--state", "blended_recall", "--reason", "x"), "NAME=VALUE"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    flag_file: Path, args: tuple[str, ...], message: str
) -> None:
    before = flag_file.read_bytes()
    done = rollout(*args, uri=f"flagd-file:{flag_file}")
    assert done.returncode == 2
    assert message in done.stderr
    assert flag_file.read_bytes() == before


def test_a_read_only_flag_file_exits_3_and_says_how_to_fix_it(flag_file: Path) -> None:
    uri = f"flagd-file:{flag_file}"
    flag_file.chmod(0o444)
    before = flag_file.read_bytes()
    for args in (
        ("set", "concept_formation", "on", "--reason", "shadow"),
        ("rollback", "--state", "blended_recall=0", "--reason", "p99 regression"),
    ):
        done = rollout(*args, uri=uri)
        assert done.returncode == 3, (args, done.stdout, done.stderr)
        assert f"chmod u+w {flag_file}" in done.stderr and "--flags" in done.stderr
        assert "verified" not in done.stdout
    assert flag_file.read_bytes() == before


def audited_change(change_id: str, parent: str | None, before: float, after: float) -> list[Any]:
    cohort = "blended_recall"
    return [
        *change_records(
            change_id,
            ChangeContext(actor="oncall-alice"),
            backend="flagd-file:flags.json",
            reason=f"ramp {after}",
            before={cohort: FlagState(cohort, "cohort", before)},
            after={cohort: FlagState(cohort, "cohort", after)},
            flags=[cohort],
            parent=parent,
        ),
        outcome_record(change_id, "verified", ""),
    ]


def test_history_reports_a_corrupt_middle_line_and_strict_fails_on_it(flag_file: Path) -> None:
    uri = f"flagd-file:{flag_file}"
    audit = default_audit_path(flag_file)
    log = AuditLog(audit)
    for change_id, parent, before, after in (
        ("a", None, 0, 5),
        ("b", "a", 5, 25),
        ("c", "b", 25, 50),
    ):
        log.append(audited_change(change_id, parent, before, after))
    lines = audit.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2][:40] + b"\n"  # b's change line, cut short by a bad hand edit
    audit.write_bytes(b"".join(lines))

    shown = rollout("history", uri=uri)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("reason: ramp") == 2  # only a and c can be shown ...
    assert f"audit log {str(audit)!r} line 3" in shown.stderr  # ... and the gap is reported
    assert "--strict" in shown.stderr
    strict = rollout("history", "--strict", "--json", uri=uri)
    assert strict.returncode == 4, strict.stderr
    assert [row["id"] for row in json.loads(strict.stdout)] == ["a", "c"]
    assert "line 3" in strict.stderr


def test_history_strict_accepts_a_torn_last_line(flag_file: Path) -> None:
    uri = f"flagd-file:{flag_file}"
    audit = default_audit_path(flag_file)
    AuditLog(audit).append(audited_change("a", None, 0, 5))
    with audit.open("ab") as handle:
        handle.write(b'{"kind": "change", "id": "b", "fl')  # a crash mid-append
    done = rollout("history", "--strict", uri=uri)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    AuditLog(audit).append(audited_change("c", "a", 5, 25))  # heals the torn line
    done = rollout("history", "--strict", uri=uri)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.count("reason: ramp") == 2


def test_missing_uri_and_unknown_scheme_exit_2() -> None:
    assert "ROLLOUT_FLAGS" in rollout("get").stderr
    done = rollout("get", uri="unleash://x")
    assert done.returncode == 2 and "known schemes" in done.stderr


def test_http_backend_via_cli_with_token_from_env(
    admin: tuple[str, AdminServerState], tmp_path: Path
) -> None:
    url, state = admin
    audit = tmp_path / "audit.jsonl"
    done = rollout(
        "--audit-log",
        str(audit),
        "cohort",
        "blended_recall",
        "5",
        "--reason",
        "canary",
        uri=url,
        token=TOKEN,
    )
    assert done.returncode == 0, done.stderr
    assert read_flags(state.flag_file)["blended_recall"].value == 5.0
    assert TOKEN not in done.stdout + done.stderr + audit.read_text()
    denied = rollout("get", uri=url, token="wrong")
    assert denied.returncode == 3 and "401" in denied.stderr


def test_unreachable_backend_exits_3() -> None:
    done = rollout("get", uri="http://127.0.0.1:9")
    assert done.returncode == 3 and "cannot connect" in done.stderr


def test_rollout_toml_gives_the_uri_the_audit_log_and_the_phase_rollback_state(
    flag_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "rollout.toml").write_text(
        f"""
[rollout]
default_environment = "staging"

[environments.staging]
flags = "flagd-file:{flag_file}"
audit_log = "audit/flags.jsonl"

[phases.phase2.rollback]
blended_recall = 0
concept_formation = false
"""
    )
    assert rollout("set", "concept_formation", "on", "--reason", "x", cwd=tmp_path).returncode == 0
    done = rollout(
        "rollback", "--phase", "phase2", "--phase-state", "--reason", "ABORT by hand", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert read_flags(flag_file)["concept_formation"].value is False
    changes = AuditLog(tmp_path / "audit" / "flags.jsonl").changes()
    assert changes[-1].reason == "rollback to the phase2 rollback state: ABORT by hand"
    assert changes[-1].lines[0]["environment"] == "staging"
    assert changes[-1].lines[0]["phase"] == "phase2"
    missing = rollout(
        "rollback", "--phase", "phase3", "--phase-state", "--reason", "x", cwd=tmp_path
    )
    assert missing.returncode == 2 and "[phases.phase3.rollback]" in missing.stderr
