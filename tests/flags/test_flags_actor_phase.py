"""Issue 17: every audit line says who acted and in which phase; an unknown actor is said aloud."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pytest_rollout.flags.audit import ACTOR_VARIABLES, AuditLog
from pytest_rollout.flags.flagd_file import default_audit_path

REPO_ROOT = Path(__file__).resolve().parents[2]


def rollout(*args: str, flag_file: Path, **actors: str) -> subprocess.CompletedProcess[str]:
    """Run ``rollout flags`` with no actor variable set except ``actors``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_") and k not in actors}
    for name in ACTOR_VARIABLES:
        env.pop(name, None)
    env.update({"PYTHONPATH": str(REPO_ROOT), "ROLLOUT_FLAGS": f"flagd-file:{flag_file}", **actors})
    return subprocess.run(
        [sys.executable, "-m", "pytest_rollout", "flags", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent,  # no rollout.toml here
    )


def last_lines(flag_file: Path) -> list[dict[str, object]]:
    change = AuditLog(default_audit_path(flag_file)).changes()[-1]
    return list(change.lines)


def test_rollback_to_records_the_phase_of_the_change_it_undoes(flag_file: Path) -> None:
    ramp = rollout(
        "cohort",
        "blended_recall",
        "25",
        "--phase",
        "phase3",
        "--reason",
        "ramp",
        flag_file=flag_file,
        ROLLOUT_ACTOR="oncall-alice",
    )
    assert ramp.returncode == 0, ramp.stderr
    ramp_id = AuditLog(default_audit_path(flag_file)).changes()[-1].id

    back = rollout(
        "rollback",
        "--to",
        ramp_id,
        "--reason",
        "p99 regression",
        flag_file=flag_file,
        ROLLOUT_ACTOR="oncall-alice",
    )
    assert back.returncode == 0, back.stderr
    (line,) = last_lines(flag_file)
    assert (line["phase"], line["actor"]) == ("phase3", "oncall-alice")
    assert "recording phase 'phase3'" in back.stderr, "the operator is told where it came from"


def test_rollback_state_records_the_phase_of_the_latest_audited_change(flag_file: Path) -> None:
    for phase, percent in (("phase2", "5"), ("phase3", "25")):
        step = rollout(
            "cohort",
            "blended_recall",
            percent,
            "--phase",
            phase,
            "--reason",
            "ramp",
            flag_file=flag_file,
            ROLLOUT_ACTOR="oncall-alice",
        )
        assert step.returncode == 0, step.stderr

    back = rollout(
        "rollback",
        "--state",
        "blended_recall=0",
        "--reason",
        "INC-1",
        flag_file=flag_file,
        ROLLOUT_ACTOR="oncall-alice",
    )
    assert back.returncode == 0, back.stderr
    assert [line["phase"] for line in last_lines(flag_file)] == ["phase3"]

    named = rollout(
        "rollback",
        "--state",
        "blended_recall=5",
        "--phase",
        "phase2",
        "--reason",
        "INC-1",
        flag_file=flag_file,
        ROLLOUT_ACTOR="oncall-alice",
    )
    assert named.returncode == 0, named.stderr
    assert [line["phase"] for line in last_lines(flag_file)] == ["phase2"], "--phase wins"


def test_rollout_actor_comes_before_the_ci_identity_and_the_login(flag_file: Path) -> None:
    done = rollout(
        "set",
        "concept_formation",
        "on",
        "--reason",
        "shadow",
        flag_file=flag_file,
        ROLLOUT_ACTOR="oncall-alice",
        GITHUB_ACTOR="ci-bot",
        USER="login",
    )
    assert done.returncode == 0, done.stderr
    assert [line["actor"] for line in last_lines(flag_file)] == ["oncall-alice"]
    assert "actor unknown" not in done.stderr


def test_an_unknown_actor_is_recorded_and_warned_about_once(flag_file: Path) -> None:
    done = rollout(
        "rollback",
        "--state",
        "blended_recall=0",
        "concept_formation=off",
        "--reason",
        "INC-2",
        flag_file=flag_file,
    )
    assert done.returncode == 0, done.stderr
    assert [line["actor"] for line in last_lines(flag_file)] == ["unknown", "unknown"]
    warnings = [line for line in done.stderr.splitlines() if "actor unknown" in line]
    assert len(warnings) == 1, done.stderr
    assert "export ROLLOUT_ACTOR=" in warnings[0]


def test_reading_flags_with_an_unknown_actor_does_not_warn(flag_file: Path) -> None:
    shown = rollout("get", flag_file=flag_file)
    assert shown.returncode == 0, shown.stderr
    assert "actor unknown" not in shown.stderr
