"""Every fault of the matrix (tests/faults/matrix.py), injected where it says, in a real run.

Each row builds a small gate project, runs pytest on it in a subprocess with a decision record,
JUnit XML and an HTML report, and asserts the same things: the exit status and the decision,
a message naming the fault, no secret anywhere the run wrote, and no acknowledged data lost.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout.flags.audit import AuditLog
from pytest_rollout.flags.flagd_file import default_audit_path
from pytest_rollout.flags.flagd_format import CHANGE_ID_KEY
from pytest_rollout.flags.flagd_store import read_flags
from pytest_rollout.flags.http import DEFAULT_AUDIT_LOG
from tests.core.helpers import output, read_record
from tests.core.prometheus_helpers import END
from tests.faults.matrix import (
    FLAG_TOKEN,
    PROM_PASSWORD,
    PROM_USER,
    ROWS,
    SECRETS,
    Row,
)
from tests.faults.servers import hanging_put_admin_server, prometheus_faults
from tests.flags.helpers import AdminServerState, admin_server, flag_document, write_flag_file
from tests.flags.test_flags_concurrency_crash import (
    test_kill_9_mid_change_leaves_a_whole_file_and_an_agreeing_audit_log as kill_9_mid_change,
)
from tests.staging.test_staging_integrity import (
    test_integrity_holds_across_flags_formation_and_kill_9 as kill_9_staging_service,
)

BASE_TOML = """[rollout]
default_environment = "faults"

[environments.faults]
timeout = "1s"
retries = 0
"""

CRITERION = "def test_error_ratio_below_1_percent():\n    assert 0.004 < 0.010\n"
ABORT_PASSES = (
    "@pytest.mark.abort\ndef test_abort_when_p99_regresses_over_20ms():\n    assert 0.012 < 0.020\n"
)
ABORT_FAILS = (
    "@pytest.mark.abort\ndef test_abort_when_p99_regresses_over_20ms():\n"
    "    assert 0.094 < 0.020, 'p99 delta +94 ms over the +20 ms abort threshold'\n"
)
HEADER = "import pytest\n\npytestmark = pytest.mark.phase2\n\n\n"


def gate_modules(row: Row) -> dict[str, str]:
    """The gate project of a row: module name -> source."""
    if row.gates == "prom":
        return {
            "test_gates": HEADER
            + "def test_error_ratio_below_1_percent(prom):\n"
            + f"    assert prom.value({row.query!r}) < 0.01\n\n\n"
            + "@pytest.mark.abort\ndef test_abort_when_error_ratio_over_2_percent(prom):\n"
            + "    assert prom.value('rt_error_ratio') < 0.02\n"
        }
    if row.gates == "staging":
        # Over 20 s: with a 1 s scrape timeout on a busy machine one scrape may fail at any time.
        return {
            "test_gates": HEADER
            + "def test_every_acknowledged_episode_is_served(prom):\n"
            + "    assert prom.value('sum(max_over_time(engram_episodes[20s]))') >= 1500\n\n\n"
            + "@pytest.mark.abort\ndef test_abort_when_service_down(prom):\n"
            + "    assert prom.value('max(max_over_time(up[20s]))') == 1\n"
        }
    abort = ABORT_FAILS if row.gates == "abort-fails" else ABORT_PASSES
    body = HEADER + CRITERION + "\n\n" + abort
    if row.gates == "with-soak":
        body += "\n\ndef test_soak_memory_flat_for_24h():\n    assert False, 'no soak ran'\n"
    if row.gates == "marker-typo-abort":
        body = body.replace("pytest.mark.abort", "pytest.mark.abrot")
    if row.gates == "marker-typo-phase":
        body = body.replace("pytest.mark.phase2", "pytest.mark.phsae2")
    modules = {"test_gates": body}
    if row.gates == "syntax-error":
        modules["test_broken_gates"] = HEADER + "def test_broken(:\n    pass\n"
    return modules


@dataclass
class Run:
    """Where a row's run writes, and what it needs besides the defaults."""

    out: Path
    args: list[str] = field(default_factory=list)
    prometheus_url: str = ""
    flags_uri: str = ""
    served_flags: Path | None = None  # the file behind an HTTP flag backend
    at: str = ""

    def path_of(self, row: Row, artifact: str, name: str) -> Path:
        # A regular file where a directory should be: unwritable even for root.
        return self.out / "blocker" / name if row.unwritable == artifact else self.out / name


def with_credentials(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{PROM_USER}:{PROM_PASSWORD}@{rest}"


@contextmanager
def backend(row: Row, request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    """The Prometheus URL of the row (a refused port when the row needs no metrics)."""
    kind, _, mode = row.backend.partition(":")
    if kind == "fake":
        yield request.getfixturevalue("fake_prom").at(mode)
    elif kind in ("faults", "tls"):
        with prometheus_faults(workdir, tls=kind == "tls") as url:
            yield f"{url}/{mode or 'ok'}"
    elif kind == "real":
        yield request.getfixturevalue("backfilled_prom").url
    elif kind == "staging":
        yield request.getfixturevalue("staging_stack").prometheus_url
    else:
        yield request.getfixturevalue("refused_url")


@contextmanager
def flag_backend(row: Row, request: pytest.FixtureRequest, run: Run) -> Iterator[None]:
    """Start the row's flag backend and inject its fault; sets run.flags_uri."""
    # The crash test wants its own starting document (0 %); the others start at a 5 % cohort so
    # that the rollback to 0 is a real change.
    kill = row.flags.startswith("kill9-")
    served = write_flag_file(run.out.parent / "flags.json", None if kill else flag_document(5))
    if row.flags == "refused":
        run.flags_uri = request.getfixturevalue("refused_url")
        yield
    elif row.flags in ("hanging", "401", "acked-ignored"):
        state = AdminServerState(
            flag_file=served,
            token="the-server-wants-another-token" if row.flags == "401" else FLAG_TOKEN,
            lie_on_get=row.flags == "acked-ignored",
        )
        run.served_flags = served
        # The client gives up after 5 s; the server applies the write after 6 s.
        server = (
            hanging_put_admin_server(state, 6.0) if row.flags == "hanging" else admin_server(state)
        )
        with server as url:
            run.flags_uri = url
            yield
    elif row.flags == "read-only":
        served.chmod(0o444)
        run.flags_uri = f"flagd-file:{served}"
        yield
    elif kill:
        where = row.flags.removeprefix("kill9-")
        status, percent = ("not-applied", 0.0) if where == "before-replace" else ("applied", 50.0)
        kill_dir = run.out.parent / "kill"
        kill_dir.mkdir()
        # The crash test's own assertions: whole file, agreeing audit log, next writer goes.
        kill_9_mid_change(served, kill_dir, where, status, percent)
        run.flags_uri = f"flagd-file:{served}"
        yield
    else:
        yield


def build(
    pytester: pytest.Pytester, row: Row, stack: ExitStack, request: pytest.FixtureRequest
) -> Run:
    run = Run(out=pytester.path / "out")
    run.out.mkdir()
    (run.out / "blocker").write_text("a file where a directory should be\n")
    pytester.makefile(".toml", rollout=BASE_TOML + row.toml)
    pytester.makepyfile(**gate_modules(row))
    url = stack.enter_context(backend(row, request, pytester.path))
    run.prometheus_url = with_credentials(url)
    if row.backend == "real":
        run.at = str(END)
    if row.backend == "staging":
        kill_9_staging_service(
            request.getfixturevalue("engram"), request.getfixturevalue("staging_stack")
        )
        _wait_until_prometheus_shows_the_episodes(url)
    if row.flags:
        stack.enter_context(flag_backend(row, request, run))
    args = [
        "-p",
        "no:cacheprovider",
        f"--rollout-prometheus-url={run.prometheus_url}",
        f"--rollout-decision-json={run.path_of(row, 'record', 'decision.json')}",
        f"--junitxml={run.path_of(row, 'junit', 'junit.xml')}",
        f"--html={run.path_of(row, 'html', 'report.html')}",
        "--self-contained-html",
        "-l",  # show locals in tracebacks: a secret in a local must still not show
    ]
    if run.at:
        args.append(f"--rollout-at={run.at}")
    if run.flags_uri:
        args += [f"--rollout-flags={run.flags_uri}", "--rollout-on-abort=rollback"]
    future = str(int(time.time()) + 3600)
    args += [a.replace("@FUTURE@", future) for a in row.args]
    run.args = args
    return run


# --------------------------------------------------------------------------------------------
# the shared assertions: one exception class per promise, so a row that shows a known product
# defect xfails on exactly that promise and fails on any other


class BrokenPromise(AssertionError):
    pass


class WrongExit(BrokenPromise):
    pass


class WrongDecision(BrokenPromise):
    pass


class MessageMissing(BrokenPromise):
    pass


class SecretLeaked(BrokenPromise):
    pass


class ReportMissing(BrokenPromise):
    pass


class DataLost(BrokenPromise):
    pass


PROMISES: dict[str, type[BrokenPromise]] = {
    cls.__name__: cls
    for cls in (WrongExit, WrongDecision, MessageMissing, SecretLeaked, ReportMissing, DataLost)
}

STALE_RECORD = {"decision": "GO", "reason": "a previous run's GO", "planted_by": "fault matrix"}


def check(ok: object, promise: type[BrokenPromise], detail: object) -> None:
    if not ok:
        raise promise(detail)


def decision_record(row: Row, run: Run, result: pytest.RunResult) -> dict[str, Any]:
    """This run's record, wherever the run said it went (its path, or the fallback on stderr)."""
    path = run.out / "decision.json"
    if row.unwritable == "record":
        match = re.search(r"written to (\S+) instead", result.stderr.str())
        check(match, DataLost, f"no fallback record named on stderr: {result.stderr.str()}")
        assert match is not None
        path = Path(match.group(1))
    check(path.exists(), DataLost, f"no decision record at {path}: {output(result)}")
    try:
        record = read_record(path)
    finally:
        if row.unwritable == "record":
            path.unlink()
    check("planted_by" not in record, DataLost, "the previous run's GO record survived")
    return record


def everything_written(pytester: pytest.Pytester, result: pytest.RunResult) -> dict[str, str]:
    texts = {"stdout": result.stdout.str(), "stderr": result.stderr.str()}
    for path in sorted(pytester.path.rglob("*")):
        if path.is_file() and path.suffix not in (".py", ".toml", ".pem"):
            texts[str(path.relative_to(pytester.path))] = path.read_text(errors="replace")
    return texts


def assert_row(row: Row, pytester: pytest.Pytester, result: pytest.RunResult, run: Run) -> None:
    """Exit status, decision, a message naming the fault, no secret anywhere, no record lost."""
    shown = output(result)
    check(result.ret == row.exit, WrongExit, f"exit {result.ret}, expected {row.exit}: {shown}")
    check("INTERNALERROR" not in shown, WrongExit, shown)
    record = decision_record(row, run, result)
    check(record["decision"] == row.decision, WrongDecision, record)
    check(bool(record.get("unfinished")) == (row.exit in (2, 4)), WrongDecision, record)
    # The fault is named where an operator looks: the terminal, or the record.
    haystack = shown + "\n" + json.dumps(record, ensure_ascii=False)
    check(re.search(row.message, haystack), MessageMissing, (row.message, shown))
    if row.where == "selection":  # the record says which gates of the phase did not run
        partial = record.get("partial") or {}
        check(partial.get("left_out") or row.id == "named-by-node-id", WrongDecision, record)
    texts = everything_written(pytester, result)
    texts["record"] = json.dumps(record)
    if row.exit in (0, 1, 10):  # a decided run writes every report it was asked for
        for artifact, name in (("junit", "junit.xml"), ("html", "report.html")):
            if row.unwritable != artifact:
                check(f"out/{name}" in texts, ReportMissing, f"no {name}: {shown}")
    for where, text in texts.items():
        for secret in SECRETS:
            check(secret not in text, SecretLeaked, f"{secret!r} leaked into {where}")
    if row.audit_status:
        assert_flags_kept(row, run, record)


def assert_flags_kept(row: Row, run: Run, record: dict[str, Any]) -> None:
    """No flag change is lost or misreported: the audit log holds the rollback with an honest
    status, and a change it calls not applied is not in the backend."""
    flag_file: Path | None
    if run.flags_uri.startswith("flagd-file:"):
        flag_file = Path(run.flags_uri.removeprefix("flagd-file:"))
        stamp = json.loads(flag_file.read_text()).get("metadata", {}).get(CHANGE_ID_KEY)
        audit = AuditLog(default_audit_path(flag_file))
        changes = audit.changes(backend_read=True, current_change_id=stamp)
    else:
        flag_file = run.served_flags  # None: the backend refused, nothing behind it
        changes = AuditLog(run.out.parent / DEFAULT_AUDIT_LOG).changes()
    served = read_flags(flag_file)["blended_recall"].value if flag_file else None
    rollbacks = [c for c in changes if c.after == {"blended_recall": 0.0}]
    [action] = [a for a in record["actions"] if a["action"] == "rollback"]
    check(
        action["result"] == ("verified" if row.audit_status == "verified" else "failed"),
        DataLost,
        action,
    )
    if row.audit_status == "none":  # the backend was never reached: nothing may claim a change
        check(rollbacks == [], DataLost, rollbacks)
        check(served in (None, 5.0), DataLost, f"the backend changed: blended_recall={served}")
        return
    check(rollbacks, DataLost, f"the rollback is not in the audit log: {changes}")
    check(rollbacks[-1].status == row.audit_status, DataLost, rollbacks[-1])
    if row.audit_status in ("not-applied", "failed"):
        check(served != 0.0, DataLost, "the audit log says not applied but the backend has it")


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(
            row,
            id=row.id,
            marks=[pytest.mark.xfail(strict=True, raises=PROMISES[row.breaks], reason=row.defect)]
            if row.defect
            else [],
        )
        for row in ROWS
    ],
)
def test_fault_row(
    row: Row,
    pytester: pytest.Pytester,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROLLOUT_FLAGS_TOKEN", FLAG_TOKEN)
    with ExitStack() as stack:
        run = build(pytester, row, stack, request)
        if row.unwritable != "record":  # a previous run's GO must not pass for this one's
            (run.out / "decision.json").write_text(json.dumps(STALE_RECORD))
        result = pytester.runpytest_subprocess(*run.args, timeout=120)
    assert_row(row, pytester, result, run)


def test_every_defect_row_names_the_promise_it_breaks() -> None:
    for row in ROWS:
        assert bool(row.defect) == bool(row.breaks), row.id
        assert not row.breaks or row.breaks in PROMISES, row.id


def _wait_until_prometheus_shows_the_episodes(url: str, at_least: float = 1500) -> None:
    """Wait until Prometheus has scraped the restarted service, then two more scrapes.

    Right after a kill -9 the series carries Prometheus' staleness marker, and a run pinned to
    the whole second before the first new scrape rightly says "engram_episodes stopped
    reporting" (HOLD, fail closed). This row is about what comes after the restart: the gates
    must see every stored episode once the service is scraped again. If Prometheus never shows
    them within 30 s, the row fails naming what it saw."""
    import requests

    seen: object = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = requests.get(
            f"{url}/api/v1/query", params={"query": "sum(engram_episodes)"}, timeout=5
        ).json()
        seen = answer.get("data", {}).get("result")
        if seen and float(seen[0]["value"][1]) >= at_least:
            time.sleep(2.5)  # the run pins the whole second: let it fall after the new scrapes
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus never showed {at_least:g} episodes after the restart: {seen}")
