"""``rollout flags rollback`` tells the communication plan's webhook (real loopback servers).

The webhook comes from ``--webhook``, ``ROLLOUT_WEBHOOK`` or the environment's ``webhook`` in
rollout.toml; a failing webhook warns and never changes the rollback's exit status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pytest_rollout.flags.flagd_store import read_flags
from tests.flags.helpers import (
    TOKEN,
    AdminServerState,
    admin_server,
    webhook_server,
    write_flag_file,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_PATH = "/services/T000/B000/s3cr3t"


def rollout(
    *args: str,
    uri: str | None = None,
    token: str | None = None,
    cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as an operator would, with no ROLLOUT_* variables but the ones given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    env.update({"PYTHONPATH": str(REPO_ROOT), "ROLLOUT_ACTOR": "oncall-alice"})
    if uri is not None:
        env["ROLLOUT_FLAGS"] = uri
    if token is not None:
        env["ROLLOUT_FLAGS_TOKEN"] = token
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "pytest_rollout", "flags", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd or Path(__file__).parent,
    )


def test_rollback_posts_who_what_and_why_to_the_webhook_flag(flag_file: Path) -> None:
    uri = f"flagd-file:{flag_file}"
    assert rollout("cohort", "blended_recall", "25", "--reason", "ramp", uri=uri).returncode == 0
    with webhook_server() as (url, received):
        done = rollout(
            "rollback",
            "--state",
            "blended_recall=0",
            "--reason",
            "p99 regression",
            "--phase",
            "phase3",
            "--env",
            "production",
            "--webhook",
            url + SECRET_PATH,
            uri=uri,
        )
    assert done.returncode == 0, done.stderr
    assert "webhook notified" in done.stdout
    assert read_flags(flag_file)["blended_recall"].value == 0.0
    assert len(received) == 1
    assert received[0]["path"] == SECRET_PATH
    body = received[0]["body"]
    assert body["action"] == "rollback"
    assert body["who"] == "oncall-alice"
    assert (body["phase"], body["environment"]) == ("phase3", "production")
    assert body["reason"] == "rollback: p99 regression"
    assert body["flags"] == {"blended_recall": {"before": 25.0, "after": 0.0}}
    assert body["text"].startswith("[rollout] phase3 in production: rollback by oncall-alice")
    assert "blended_recall 25 -> 0" in body["text"]


def test_webhook_from_the_environment_variable_and_none_for_dry_runs_or_other_changes(
    flag_file: Path,
) -> None:
    uri = f"flagd-file:{flag_file}"
    with webhook_server() as (url, received):
        env = {"ROLLOUT_WEBHOOK": url}
        changed = rollout(
            "set", "concept_formation", "on", "--reason", "shadow", uri=uri, extra_env=env
        )
        dry = rollout(
            "rollback", "--state", "concept_formation=off", "--dry-run", uri=uri, extra_env=env
        )
        assert received == [], "only a written rollback is announced"
        done = rollout(
            "rollback",
            "--state",
            "concept_formation=off",
            "--reason",
            "incident",
            "--json",
            uri=uri,
            extra_env=env,
        )
    assert (changed.returncode, dry.returncode, done.returncode) == (0, 0, 0), done.stderr
    assert [r["body"]["flags"] for r in received] == [
        {"concept_formation": {"before": True, "after": False}}
    ]
    assert json.loads(done.stdout)["notification"] == {"result": "sent", "message": ""}


def test_webhook_from_rollout_toml_for_a_phase_state_rollback(
    flag_file: Path, tmp_path: Path
) -> None:
    uri = f"flagd-file:{flag_file}"
    assert rollout("cohort", "blended_recall", "5", "--reason", "canary", uri=uri).returncode == 0
    with webhook_server() as (url, received):
        config = tmp_path / "rollout.toml"
        config.write_text(
            '[rollout]\ndefault_environment = "staging"\n\n'
            f'[environments.staging]\nflags = "{uri}"\nwebhook = "{url}/hook"\n\n'
            '[phases.phase2]\nname = "canary"\n\n'
            "[phases.phase2.rollback]\nblended_recall = 0\n",
            encoding="utf-8",
        )
        done = rollout(
            "rollback", "--phase-state", "--phase", "phase2", "--reason", "SRM", cwd=tmp_path
        )
    assert done.returncode == 0, done.stderr
    assert read_flags(flag_file)["blended_recall"].value == 0.0
    assert [r["path"] for r in received] == ["/hook"]
    body = received[0]["body"]
    assert (body["environment"], body["phase"]) == ("staging", "phase2")
    assert body["reason"] == "rollback to the phase2 rollback state: SRM"


def test_a_failing_webhook_warns_but_the_rollback_still_succeeds(flag_file: Path) -> None:
    uri = f"flagd-file:{flag_file}"
    assert rollout("cohort", "blended_recall", "25", "--reason", "ramp", uri=uri).returncode == 0
    with webhook_server(status=500) as (url, received):
        done = rollout(
            "rollback",
            "--state",
            "blended_recall=0",
            "--reason",
            "incident",
            "--webhook",
            url + SECRET_PATH,
            uri=uri,
        )
    assert done.returncode == 0, done.stderr
    assert read_flags(flag_file)["blended_recall"].value == 0.0
    assert len(received) == 1
    assert "warning: rollback notification failed" in done.stderr and "HTTP 500" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout, "the webhook's secret path is never shown"
    assert "verified by read-back" in done.stdout and "webhook notified" not in done.stdout

    # Nobody listening at all: same exit status, same kind of warning.
    unreachable = rollout(
        "rollback",
        "--state",
        "blended_recall=5",
        "--reason",
        "retry",
        "--webhook",
        url + SECRET_PATH,
        uri=uri,
    )
    assert unreachable.returncode == 0, unreachable.stderr
    assert "warning: rollback notification failed" in unreachable.stderr
    assert read_flags(flag_file)["blended_recall"].value == 5.0


def test_an_unverified_rollback_is_announced_and_keeps_exit_status_1(tmp_path: Path) -> None:
    # The admin service accepts the PUT but keeps answering GETs with the old state.
    state = AdminServerState(flag_file=write_flag_file(tmp_path / "served.json"), lie_on_get=True)
    with admin_server(state) as admin, webhook_server() as (url, received):
        done = rollout(
            "rollback",
            "--state",
            "concept_formation=on",
            "--reason",
            "incident",
            "--webhook",
            url,
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
            uri=admin,
            token=TOKEN,
        )
    assert done.returncode == 1, done.stderr
    assert "NOT VERIFIED" in done.stderr
    assert [r["body"]["action"] for r in received] == ["rollback NOT VERIFIED"]
    assert received[0]["body"]["flags"] == {"concept_formation": {"before": False, "after": None}}
