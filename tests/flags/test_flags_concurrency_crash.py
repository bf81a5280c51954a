"""Racing writers and kill -9 mid-change, with real processes, real files and the real provider."""

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
from pytest_rollout.flags.flagd_file import default_audit_path
from pytest_rollout.flags.flagd_format import CHANGE_ID_KEY
from pytest_rollout.flags.flagd_store import read_flags

REPO_ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import os, sys, time
from pathlib import Path
from pytest_rollout.flags.audit import ChangeContext
from pytest_rollout.flags.flagd_file import FlagdFileController
flag_file, flag, start_gate = sys.argv[1], sys.argv[2], Path(sys.argv[3])
values = [float(v) for v in sys.argv[4:]]
ctl = FlagdFileController.from_uri(
    "flagd-file:" + flag_file, audit_log=None, context=ChangeContext(actor="writer-" + flag)
)
while not start_gate.exists():  # start both writers together so they really race
    time.sleep(0.001)
for value in values:
    ctl.set(flag, value, reason=f"race {value}")
"""

# Stops inside a change at a chosen point, reporting that it got there, so the test can kill it.
STOPPER = """
import sys, time
from pathlib import Path
from pytest_rollout.flags import flagd_file, flagd_store
from pytest_rollout.flags.audit import ChangeContext
flag_file, where, ready = sys.argv[1], sys.argv[2], Path(sys.argv[3])

def park(*args, **kwargs):
    ready.write_text("parked")
    time.sleep(60)

if where == "before-replace":  # the new file is written and fsync'd, not yet renamed
    flagd_store.os.replace = park
else:  # after the new file is in place, before read-back and the outcome line
    flagd_file.FlagdFileController._verify_states = park
ctl = flagd_file.FlagdFileController.from_uri(
    "flagd-file:" + flag_file, audit_log=None, context=ChangeContext(actor="doomed")
)
ctl.set("blended_recall", 50, reason="will be killed")
"""

LOOPER = """
import itertools, sys
from pytest_rollout.flags.audit import ChangeContext
from pytest_rollout.flags.flagd_file import FlagdFileController
ctl = FlagdFileController.from_uri(
    "flagd-file:" + sys.argv[1], audit_log=None, context=ChangeContext(actor="looper")
)
for i in itertools.count():
    ctl.set_many({"blended_recall": i % 101, "semantic_weight": i / 10}, reason=f"loop {i}")
"""


def python(script: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(path: Path, process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"child exited early: {process.communicate()[1].decode()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"child never reached {path.name}")
        time.sleep(0.01)


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=10)


def test_two_racing_writers_lose_no_update_and_both_are_audited(
    flag_file: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    weights = [f"{i / 100:g}" for i in range(1, 9)]
    percents = [str(i) for i in range(1, 9)]
    writers = [
        python(WRITER, str(flag_file), "semantic_weight", str(gate), *weights),
        python(WRITER, str(flag_file), "blended_recall", str(gate), *percents),
    ]
    gate.touch()
    for writer in writers:
        _, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err.decode()

    flags = read_flags(flag_file)
    assert flags["semantic_weight"].value == 0.08
    assert flags["blended_recall"].value == 8.0
    changes = AuditLog(default_audit_path(flag_file)).changes(
        backend_read=True,
        current_change_id=json.loads(flag_file.read_text())["metadata"][CHANGE_ID_KEY],
    )
    assert len(changes) == 16
    assert {c.status for c in changes} == {"verified"}
    assert {c.actor for c in changes} == {"writer-semantic_weight", "writer-blended_recall"}
    # One linear history: each change saw the previous one's file (audit order = apply order).
    assert [c.parent for c in changes[1:]] == [c.id for c in changes[:-1]]


@pytest.mark.parametrize(
    ("where", "status", "percent"),
    [("before-replace", "not-applied", 0.0), ("after-replace", "applied", 50.0)],
)
def test_kill_9_mid_change_leaves_a_whole_file_and_an_agreeing_audit_log(
    flag_file: Path, tmp_path: Path, where: str, status: str, percent: float
) -> None:
    ready = tmp_path / "parked"
    child = python(STOPPER, str(flag_file), where, str(ready))
    wait_for(ready, child)
    kill_hard(child)
    leftovers = list(flag_file.parent.glob(".flags.json.*.tmp"))
    assert len(leftovers) == (1 if where == "before-replace" else 0)

    flags = read_flags(flag_file)  # parses: never torn
    assert flags["blended_recall"].value == percent
    audit = AuditLog(default_audit_path(flag_file))
    stamp = json.loads(flag_file.read_text()).get("metadata", {}).get(CHANGE_ID_KEY)
    [change] = audit.changes(backend_read=True, current_change_id=stamp)
    assert change.after == {"blended_recall": 50.0}
    assert change.status == status
    # The lock died with the writer: the next change goes through and sees the right parent.
    from pytest_rollout.flags.audit import ChangeContext
    from pytest_rollout.flags.flagd_file import FlagdFileController

    survivor = FlagdFileController(flag_file, audit=audit, context=ChangeContext(actor="survivor"))
    survivor.set("blended_recall", 5, reason="after the crash")
    changes = audit.changes()  # no backend read needed: the chain decides
    assert [c.status for c in changes] == [status, "verified"]
    assert changes[1].parent == stamp
    assert list(flag_file.parent.glob(".flags.json.*.tmp")) == []  # dead writer's temp file


def test_random_kill_9_during_a_stream_of_changes_never_tears_or_disagrees(
    flag_file: Path,
) -> None:
    audit = AuditLog(default_audit_path(flag_file))
    for delay_s in (0.35, 0.5, 0.65):
        child = python(LOOPER, str(flag_file))
        time.sleep(delay_s)
        kill_hard(child)
        document = json.loads(flag_file.read_text())  # whole JSON every time
        flags = read_flags(flag_file)
        stamp = document.get("metadata", {}).get(CHANGE_ID_KEY)
        changes = audit.changes(backend_read=True, current_change_id=stamp)
        if stamp is None:
            assert changes == []
            continue
        by_id = {c.id: c for c in changes}
        assert stamp in by_id, "the change in the file has its audit lines"
        assert by_id[stamp].after == {n: flags[n].value for n in by_id[stamp].after}
        assert by_id[stamp].status in ("verified", "unverified", "applied")
        # Everything after the file's change never took effect.
        later = changes[changes.index(by_id[stamp]) + 1 :]
        assert all(c.status == "not-applied" for c in later)
    changes = audit.changes()
    assert len(changes) >= 3, "the writer made changes before each kill"
    statuses = {c.status for c in changes}
    assert "verified" in statuses
