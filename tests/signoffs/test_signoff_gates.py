"""Sign-off gates end to end: a real git checkout, the real `rollout approve`, real pytest runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_rollout.instants import rfc3339

REPO_ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
[rollout]
default_environment = "staging"

[environments.staging]
audit_log = "audit.jsonl"

[environments.production]
audit_log = "audit.jsonl"

[phases.phase2]
signoffs = ["service owner", "on-call"]

[phases.phase2.flags]
blended_recall = 5
"""

GATES = """
import pytest

@pytest.mark.phase2
def test_p99_latency_not_worse_than_control():
    pass
"""


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ROLLOUT_ACTOR": "tester"}
    env.pop("ROLLOUT_CONFIG", None)
    env.pop("ROLLOUT_ENV", None)
    env.pop("ROLLOUT_FLAGS_AUDIT_LOG", None)
    env.pop("ROLLOUT_SINCE", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "rollout.toml").write_text(CONFIG)
    (tmp_path / "test_gates.py").write_text(GATES)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "rollout.toml", "test_gates.py")
    git(tmp_path, "commit", "-qm", "gates")
    return tmp_path


def approve(cwd: Path, role: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(
        cwd, "-m", "pytest_rollout", "approve", "phase2", "--role", role, "--by", "alice",
        "--reason", "reviewed", *extra,
    )  # fmt: skip


def gates(cwd: Path, since: float, *extra: str) -> tuple[int, dict[str, object]]:
    done = run(
        cwd, "-m", "pytest", "-p", "no:cacheprovider", "-m", "phase2",
        f"--rollout-since={rfc3339(since)}", "--rollout-decision-json=record.json", *extra,
    )  # fmt: skip
    record = json.loads((cwd / "record.json").read_text())
    return done.returncode, record


def signoffs_of(record: dict[str, object]) -> dict[str, dict[str, object]]:
    gates_ = record["gates"]
    assert isinstance(gates_, list)
    return {g["nodeid"]: g for g in gates_ if g["nodeid"].startswith("rollout::signoff")}


def test_hold_until_every_role_approved_then_go(checkout: Path) -> None:
    since = time.time() - 60
    status, record = gates(checkout, since)
    assert (status, record["decision"]) == (1, "HOLD"), record["reason"]
    waiting = signoffs_of(record)["rollout::signoff[service owner]"]
    assert waiting["outcome"] == "inconclusive"
    assert (
        "waiting for sign-off by service owner: rollout approve phase2 --role 'service owner'"
        in (str(waiting["reason"]))
    )

    assert approve(checkout, "service owner").returncode == 0
    status, record = gates(checkout, since)
    gates_ = signoffs_of(record)
    assert (status, record["decision"]) == (1, "HOLD")  # on-call has not approved yet
    owner = gates_["rollout::signoff[service owner]"]
    assert owner["outcome"] == "pass", owner["reason"]
    assert gates_["rollout::signoff[on-call]"]["outcome"] == "inconclusive"

    assert approve(checkout, "on-call").returncode == 0
    status, record = gates(checkout, since)
    assert (status, record["decision"]) == (0, "GO"), record["reason"]
    listed = run(checkout, "-m", "pytest_rollout", "approvals", "phase2", "--json")
    rows = json.loads(listed.stdout)
    assert [r["role"] for r in rows] == ["service owner", "on-call"]
    head = git(checkout, "rev-parse", "HEAD")
    assert {r["commit"] for r in rows} == {head}
    assert set(rows[0]) >= {
        "kind",
        "id",
        "time",
        "actor",
        "phase",
        "role",
        "by",
        "reason",
        "environment",
        "commit",
        "since",
        "run_id",
        "override_abort",
        "prev",
    }


def test_an_approval_before_the_phase_start_or_for_another_commit_does_not_count(
    checkout: Path,
) -> None:
    for role in ("service owner", "on-call"):
        assert approve(checkout, role).returncode == 0
    # The start is given to the second (rounded): it must fall after the approvals and not
    # after the run's pinned instant (a whole second too).
    time.sleep(2.5)
    status, record = gates(checkout, time.time() - 1)  # the phase (re)started after them
    assert (status, record["decision"]) == (1, "HOLD"), record["reason"]
    reason = str(signoffs_of(record)["rollout::signoff[on-call]"]["reason"])
    assert "was made before the phase start" in reason

    since = time.time() - 120
    (checkout / "test_gates.py").write_text(GATES + "\n# changed\n")
    git(checkout, "commit", "-qam", "gates changed after the approvals")
    status, record = gates(checkout, since)
    assert (status, record["decision"]) == (1, "HOLD"), record["reason"]
    assert "the gates are at" in str(signoffs_of(record)["rollout::signoff[on-call]"]["reason"])


def test_an_approval_in_another_environment_does_not_count(checkout: Path) -> None:
    since = time.time() - 60
    for role in ("service owner", "on-call"):
        assert approve(checkout, role, "--env", "production").returncode == 0
    status, record = gates(checkout, since)
    assert (status, record["decision"]) == (1, "HOLD"), record["reason"]
    assert "is for environment 'production'" in str(
        signoffs_of(record)["rollout::signoff[on-call]"]["reason"]
    )


def test_a_broken_chain_makes_the_signoff_gates_inconclusive(checkout: Path) -> None:
    since = time.time() - 60
    for role in ("service owner", "on-call"):
        assert approve(checkout, role).returncode == 0
    log = checkout / "audit.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[0].replace(b"reviewed", b"reviewed!") + b"".join(lines[1:]))
    status, record = gates(checkout, since)
    assert (status, record["decision"]) == (1, "HOLD"), record["reason"]
    reason = str(signoffs_of(record)["rollout::signoff[service owner]"]["reason"])
    assert "hash chain is broken at line 1" in reason
    verify = run(checkout, "-m", "pytest_rollout", "audit", "verify", "audit.jsonl")
    assert verify.returncode == 1 and "line 1" in verify.stderr


def test_outside_a_git_checkout_the_gate_says_it_cannot_tie_the_approval(tmp_path: Path) -> None:
    (tmp_path / "rollout.toml").write_text(CONFIG)
    (tmp_path / "test_gates.py").write_text(GATES)
    for role in ("service owner", "on-call"):
        done = approve(tmp_path, role)
        assert done.returncode == 0 and "not a git checkout" in done.stderr
    status, record = gates(tmp_path, time.time() - 60)
    assert (status, record["decision"]) == (1, "HOLD"), record["reason"]
    assert "is not a git checkout" in str(
        signoffs_of(record)["rollout::signoff[on-call]"]["reason"]
    )


def test_a_replay_before_the_approvals_does_not_see_them(checkout: Path) -> None:
    since = time.time() - 120
    for role in ("service owner", "on-call"):
        assert approve(checkout, role).returncode == 0
    status, record = gates(checkout, since, f"--rollout-at={rfc3339(time.time() - 60)}")
    assert (status, record["decision"]) == (1, "HOLD"), record["reason"]
    reason = str(signoffs_of(record)["rollout::signoff[on-call]"]["reason"])
    assert "was made after the evaluated instant" in reason


def test_the_signoff_gates_go_under_xdist_too(checkout: Path) -> None:
    since = time.time() - 60
    for role in ("service owner", "on-call"):
        assert approve(checkout, role).returncode == 0
    status, record = gates(checkout, since, "-n", "2")
    assert (status, record["decision"]) == (0, "GO"), record["reason"]
    assert {g["outcome"] for g in signoffs_of(record).values()} == {"pass"}


def test_the_gates_commit_is_the_last_commit_that_changed_the_gates(tmp_path: Path) -> None:
    """A commit elsewhere in the repository keeps the sign-offs; a change to the gates voids them."""
    from pytest_rollout.signoffs import gates_commit

    gates_dir = tmp_path / "gates"
    gates_dir.mkdir()
    (gates_dir / "rollout.toml").write_text("[rollout]\n")
    assert gates_commit(gates_dir) is None  # not a checkout
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "gates")
    first = gates_commit(gates_dir)
    assert first == git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "README.md").write_text("docs\n")
    git(tmp_path, "add", "README.md")
    git(tmp_path, "commit", "-qm", "docs only")
    assert gates_commit(gates_dir) == first != git(tmp_path, "rev-parse", "HEAD")
    (gates_dir / "rollout.toml").write_text("[rollout]\n# changed\n")
    git(tmp_path, "commit", "-qam", "gates changed")
    assert gates_commit(gates_dir) == git(tmp_path, "rev-parse", "HEAD") != first
