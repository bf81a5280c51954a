"""`rollout approve` bad input, racing writers and kill -9 mid-append (real processes, files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_rollout.flags.audit import AuditLog
from pytest_rollout.flags.audit_chain import verify_chain
from tests.flags.helpers import write_flag_file

REPO_ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
[environments.staging]
audit_log = "{audit}"

[phases.phase2]
signoffs = ["service owner", "on-call"]

[phases.phase2.flags]
blended_recall = 5
"""


def env() -> dict[str, str]:
    out = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ROLLOUT_ENV": "staging"}
    for name in ("ROLLOUT_FLAGS_AUDIT_LOG", "ROLLOUT_FLAGS", "ROLLOUT_SINCE"):
        out.pop(name, None)
    return out


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "rollout.toml"
    path.write_text(CONFIG.format(audit=tmp_path / "audit.jsonl"))
    return path


def approve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_rollout", "approve", *args, "--config", str(config)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["phase9", "--role", "on-call"], "unknown phase 'phase9'"),
        (["phase2", "--role", "reviewer"], "does not require a sign-off by 'reviewer'"),
        (["phase2", "--role", "on-call", "--reason", "  "], "--reason is empty"),
    ],
)
def test_bad_input_is_refused_with_exit_2_and_writes_nothing(
    config: Path, args: list[str], message: str
) -> None:
    base = ["--by", "alice"] + ([] if "--reason" in args else ["--reason", "ok"])
    done = approve(config, *args, *base)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert not (config.parent / "audit.jsonl").exists()


def abort_record(path: Path, phase: str) -> None:
    from pytest_rollout.decision import Decision, build_record

    record = build_record(
        phase=phase,
        decision=Decision.ABORT,
        reason="p99 regressed",
        evaluated_at="2026-11-30T20:00:00Z",
        window={"start": "2026-11-30T19:00:00Z", "end": "2026-11-30T20:00:00Z"},
        environment="staging",
        gates=[],
        flags={},
        actions=[],
        extra={"context": {"run_id": "run-abort-1"}},
    )
    path.write_text(json.dumps(record))


def test_approving_after_an_abort_is_refused_unless_overridden_and_recorded(
    config: Path,
) -> None:
    record = config.parent / "phase2.json"
    abort_record(record, "phase2")
    args = ["phase2", "--role", "on-call", "--by", "alice", "--reason", "ok"]
    refused = approve(config, *args, "--record", str(record))
    assert refused.returncode == 2 and "latest decision of phase2 is ABORT" in refused.stderr
    done = approve(config, *args, "--record", str(record), "--override-abort", "--json")
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert (line["override_abort"], line["run_id"]) == (True, "run-abort-1")
    assert [r["override_abort"] for r in AuditLog(config.parent / "audit.jsonl").records()] == [
        True
    ]


def test_an_abort_rollback_in_the_audit_log_refuses_too(config: Path) -> None:
    AuditLog(config.parent / "audit.jsonl").append(
        [
            {
                "kind": "change",
                "id": "20261130T200000Z-abcdef",
                "time": "2026-11-30T20:00:00.000Z",
                "actor": "ci",
                "phase": "phase2",
                "flag": "blended_recall",
                "before": 5,
                "after": 0,
                "reason": "pytest-rollout: phase2 ABORT (run run-7)",
                "run_id": "run-7",
            }
        ]
    )
    done = approve(config, "phase2", "--role", "on-call", "--by", "a", "--reason", "ok")
    assert done.returncode == 2 and "audit log rollback" in done.stderr


APPROVER = """
import sys
from pytest_rollout.cli import main
config, start = sys.argv[1], sys.argv[2]
from pathlib import Path
import time
while not Path(start).exists():
    time.sleep(0.001)
for i in range(8):
    role = "on-call" if i % 2 else "service owner"
    assert main(["approve", "phase2", "--role", role, "--by", f"approver{i}",
                 "--reason", f"race {i}", "--config", config]) == 0
"""

FLAG_WRITER = """
import sys, time
from pathlib import Path
from pytest_rollout.flags.audit import AuditLog, ChangeContext
from pytest_rollout.flags.flagd_file import FlagdFileController
flag_file, audit, start = sys.argv[1], sys.argv[2], sys.argv[3]
ctl = FlagdFileController(Path(flag_file), audit=AuditLog(Path(audit)),
                          context=ChangeContext(actor="writer", phase="phase2"))
while not Path(start).exists():
    time.sleep(0.001)
for i in range(1, 9):
    ctl.set("blended_recall", i, reason=f"race {i}")
"""


def python(script: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_concurrent_approvals_and_flag_changes_keep_one_intact_chain(
    config: Path, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    flag_file = write_flag_file(tmp_path / "flags.json")
    start = tmp_path / "go"
    children = [
        python(APPROVER, str(config), str(start)),
        python(FLAG_WRITER, str(flag_file), str(audit), str(start)),
    ]
    start.touch()
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    report = verify_chain(audit)
    assert report.ok, report.problem
    records = AuditLog(audit).records()
    kinds = [r["kind"] for r in records]
    assert kinds.count("approval") == 8
    assert kinds.count("change") == 8 and kinds.count("outcome") == 8
    assert AuditLog(audit).scan().corrupt == ()


# Stops in the middle of an append: half the bytes are written when the test kills it.
HALF_WRITER = """
import os, sys, time
from pathlib import Path
from pytest_rollout.flags import audit as audit_module
log, ready = Path(sys.argv[1]), Path(sys.argv[2])
real_write = os.write

def torn_write(fd, data):
    real_write(fd, data[: len(data) // 2])
    os.fsync(fd)
    ready.write_text("parked")
    time.sleep(60)

audit_module.os.write = torn_write
audit_module.AuditLog(log).append([{"kind": "approval", "id": "doomed", "reason": "x" * 500}])
"""

LOOPING_WRITER = """
import itertools, sys
from pathlib import Path
from pytest_rollout.flags.audit import AuditLog
log = AuditLog(Path(sys.argv[1]))
for i in itertools.count():
    log.append([{"kind": "approval", "id": f"a{i}", "reason": "y" * 400_000},
                {"kind": "outcome", "id": f"a{i}", "status": "verified"}])
"""


def test_kill_9_mid_append_is_a_torn_tail_never_tampering(config: Path, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    assert (
        approve(config, "phase2", "--role", "on-call", "--by", "a", "--reason", "r").returncode == 0
    )
    ready = tmp_path / "parked"
    child = python(HALF_WRITER, str(audit), str(ready))
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert child.poll() is None, child.communicate()[1].decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=10)
    report = verify_chain(audit)
    assert report.ok and report.torn_tail, report.problem
    # The next writer (here `rollout approve`, under the lock the dead writer left) repairs it.
    done = approve(config, "phase2", "--role", "service owner", "--by", "b", "--reason", "r")
    assert done.returncode == 0, done.stderr
    report = verify_chain(audit)
    assert report.ok and not report.torn_tail, report.problem
    kinds = [json.loads(line).get("kind") for line in audit.read_bytes().splitlines()[2:]]
    assert kinds == ["repair", "approval"]
    assert AuditLog(audit).scan().corrupt == ()


def test_random_kill_9_during_large_appends_never_reads_as_tampering(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    for delay_s in (0.05, 0.2, 0.35):
        size = audit.stat().st_size if audit.exists() else 0
        child = python(LOOPING_WRITER, str(audit))
        deadline = time.monotonic() + 30
        while (audit.stat().st_size if audit.exists() else 0) <= size:  # it started writing
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.005)
        time.sleep(delay_s)
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=10)
        report = verify_chain(audit)
        assert report.ok, report.problem
    AuditLog(audit).append([{"kind": "outcome", "id": "last", "status": "verified"}])
    report = verify_chain(audit)
    assert report.ok and not report.torn_tail, report.problem
    assert AuditLog(audit).scan().corrupt == ()
    assert report.lines > 3
