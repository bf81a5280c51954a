"""The phase start ("since"): option, environment, flag audit log and flag gauge, in that order.

The audit logs are written by the product's own flag controller; the flag gauge is served by a
real Prometheus backfilled with a known history (one per module).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_rollout.flags.audit import AuditLog, ChangeContext, change_records, outcome_record
from pytest_rollout.flags.base import FlagState
from pytest_rollout.flags.flagd_file import FlagdFileController, default_audit_path
from pytest_rollout.gate import GateRecord
from pytest_rollout.instants import rfc3339
from pytest_rollout.metrics.prometheus import PrometheusSource, PromQuery, PromSettings
from pytest_rollout.openmetrics import OpenMetricsWriter
from pytest_rollout.phase_start import PhaseStart, parse_since, resolve_phase_start
from pytest_rollout.promserver import PrometheusServer, start_backfilled
from pytest_rollout.settings import ENV_SINCE, OPT_SINCE
from tests.flags.helpers import flag_document, write_flag_file

PHASE2 = {"concept_formation": True, "blended_recall": 5.0}
CTX = ChangeContext(actor="alice", environment="staging", phase="phase2", run_id="run-1")

# The flag gauge's known history: 8 hours at a 15 s scrape, two replicas scraped 7 s apart.
H = 3600
END = (int(time.time()) // H) * H - H
START = END - 8 * H
SCRAPE_S = 15
T1, T2, T3 = END - 7 * H, END - 5 * H, END - 3 * H  # blended_recall 0 -> 5 -> 0 -> 5
LAG_B = {T1: 40, T2: 0, T3: 50}  # replica b switches this much later (a rolling restart)
GLITCH = T3 + H + 7  # one scrape of replica b shows semantic_weight 0.1 instead of 0.3


def _gauge_history() -> str:
    writer = OpenMetricsWriter()
    for replica, offset in (("a", 0), ("b", 7)):
        times = list(range(START + offset, END + 1, SCRAPE_S))
        labels = {"job": "engram", "instance": replica}

        def blended(t: int, replica: str = replica) -> float:
            lag = {T1: LAG_B[T1], T3: LAG_B[T3]} if replica == "b" else {T1: 0, T3: 0}
            if t < T1 + lag[T1] or T2 <= t < T3 + lag[T3]:
                return 0.0
            return 5.0

        writer.gauge(
            "engram_feature_flag",
            {**labels, "flag": "blended_recall"},
            times,
            [blended(t) for t in times],
        )
        writer.gauge(
            "engram_feature_flag",
            {**labels, "flag": "concept_formation"},
            times,
            [1.0] * len(times),
        )
        weight = [0.1 if replica == "b" and t == GLITCH else 0.3 for t in times]
        writer.gauge("engram_feature_flag", {**labels, "flag": "semantic_weight"}, times, weight)
    return writer.render()


@pytest.fixture(scope="module")
def gauge_prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = start_backfilled(_gauge_history(), tmp_path_factory.mktemp("phase-start"))
    try:
        server.wait_for_data(f"engram_feature_flag @ {END}")
        yield server
    finally:
        server.stop()


def _prom(url: str, at: float) -> PromQuery:
    source = PrometheusSource(PromSettings(url=url, timeout_s=10, retries=0), at=at)
    return PromQuery(source, GateRecord(nodeid="phase-start"))


def _resolve(
    *,
    at: float,
    flags: dict[str, bool | float] | None = None,
    option: str | None = None,
    env: dict[str, str] | None = None,
    audit_log: Path | None = None,
    prom: PromQuery | None = None,
    retention_s: float | None = None,
) -> PhaseStart:
    return resolve_phase_start(
        phase="phase2",
        phase_flags=PHASE2 if flags is None else flags,
        at=at,
        option=option,
        env=env or {},
        audit_log=audit_log,
        prom=prom,
        retention_s=retention_s,
        now=END + H,
    )


# -- option and environment -------------------------------------------------------------------


def test_the_option_wins_over_the_environment_the_audit_log_and_the_gauge(
    gauge_prom: PrometheusServer, tmp_path: Path
) -> None:
    start = _resolve(
        at=END,
        option=rfc3339(T2),
        env={ENV_SINCE: str(T1)},
        audit_log=tmp_path / "missing.jsonl",
        prom=_prom(gauge_prom.url, END),
    )
    assert start == PhaseStart(T2, "option", f"{OPT_SINCE} {rfc3339(T2)}")


def test_rfc3339_and_unix_seconds_name_the_same_instant() -> None:
    assert parse_since(rfc3339(T2), name=OPT_SINCE) == parse_since(str(T2), name=OPT_SINCE) == T2
    assert _resolve(at=END, option=rfc3339(T2)) == PhaseStart(
        T2, "option", f"{OPT_SINCE} {rfc3339(T2)}"
    )


def test_the_environment_variable_is_used_without_the_option_and_blank_means_unset() -> None:
    assert _resolve(at=END, env={ENV_SINCE: f" {T1} "}) == PhaseStart(
        T1, "env", f"{ENV_SINCE}={T1}"
    )
    assert _resolve(at=END, env={ENV_SINCE: "  "}).source == "none"


@pytest.mark.parametrize(
    ("option", "env", "named"),
    [
        ("yesterday", None, OPT_SINCE),
        (None, "2026-13-01T00:00:00Z", ENV_SINCE),
        ("", None, OPT_SINCE),
    ],
)
def test_unparseable_times_are_usage_errors_naming_where_they_came_from(
    option: str | None, env: str | None, named: str
) -> None:
    with pytest.raises(pytest.UsageError, match=f"^{named}: bad time"):
        _resolve(at=END, option=option, env={ENV_SINCE: env} if env else None)


def test_a_start_in_the_future_is_a_usage_error_naming_the_option() -> None:
    with pytest.raises(pytest.UsageError, match=f"{OPT_SINCE} .* is in the future"):
        _resolve(at=END, option=str(END + 2 * H))  # now is END + 1 h


def test_a_start_after_the_pinned_instant_is_a_usage_error_naming_the_variable() -> None:
    with pytest.raises(pytest.UsageError, match=f"{ENV_SINCE} .* is not before the evaluation"):
        _resolve(at=T2, env={ENV_SINCE: str(T3)})


def test_a_start_older_than_the_retention_is_a_problem_naming_the_retention() -> None:
    start = _resolve(at=END, option=str(END - 20 * 86400), retention_s=15 * 86400)
    assert start.since == END - 20 * 86400 and start.source == "option"
    assert start.problem is not None
    assert "older than the backend's retention (15d)" in start.problem
    assert f"counts before {rfc3339(END - 15 * 86400)} are gone" in start.problem
    assert _resolve(at=END, option=str(END - 14 * 86400), retention_s=15 * 86400).problem is None


def test_nothing_to_resolve_from_is_a_problem_saying_how_to_set_it() -> None:
    start = _resolve(at=END)
    assert (start.since, start.source) == (None, "none")
    assert start.problem is not None
    assert start.problem.startswith(f"no phase start for phase2: pass {OPT_SINCE} TIME")
    assert ENV_SINCE in start.problem and "audit_log" in start.problem
    empty = _resolve(at=END, flags={})
    assert empty.problem is not None and "[phases.phase2.flags] is empty" in empty.problem


# -- the flag audit log, written by the product's own controller ------------------------------


def _controller(tmp_path: Path, percent: float = 0) -> FlagdFileController:
    tmp_path.mkdir(parents=True, exist_ok=True)
    flag_file = write_flag_file(tmp_path / "flags.json", flag_document(percent))
    return FlagdFileController.from_uri(f"flagd-file:{flag_file}", audit_log=None, context=CTX)


def _timed_set(controller: FlagdFileController, flag: str, value: bool | float) -> float:
    """Set one flag and return an instant after it took effect (the log's times are in ms)."""
    controller.set(flag, value, reason="phase change")
    time.sleep(0.01)
    return time.time()


def test_the_audit_log_gives_the_last_transition_into_the_phase_values(tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    log = default_audit_path(controller.path)
    before = time.time()
    time.sleep(0.01)
    _timed_set(controller, "concept_formation", True)
    after_b = _timed_set(controller, "blended_recall", 5)
    first_entry = controller.last_change_id
    after_c = _timed_set(controller, "blended_recall", 0)  # rolled back ...
    before_d = time.time()
    after_d = _timed_set(controller, "blended_recall", 5)  # ... and ramped again
    now = time.time() + 1

    def resolve(at: float) -> PhaseStart:
        return resolve_phase_start(
            phase="phase2",
            phase_flags=PHASE2,
            at=at,
            option=None,
            env={},
            audit_log=log,
            prom=None,
            now=now,
        )

    latest = resolve(after_d)
    assert latest.source == "audit-log" and latest.problem is None
    assert latest.since is not None and before_d <= latest.since <= after_d
    assert latest.detail == f"change {controller.last_change_id} by alice in {log}"
    earlier = resolve(after_b)  # changes after the pinned instant do not count
    assert earlier.since is not None and earlier.since < after_b
    assert earlier.detail.startswith(f"change {first_entry} ")
    rolled_back = resolve(after_c)
    assert (rolled_back.since, rolled_back.source) == (None, "audit-log")
    assert rolled_back.problem == (
        f"flags in {log} are not at phase2's values at {rfc3339(after_c)}: blended_recall=0 "
        "(phase2 wants 5); set them with `rollout flags` or evaluate the phase they are at"
    )
    nothing_yet = resolve(before)
    assert nothing_yet.source == "none"
    assert "concept_formation never changed in audit log" in nothing_yet.detail


def test_a_flag_already_at_its_value_needs_a_later_transition_to_anchor(tmp_path: Path) -> None:
    controller = _controller(tmp_path, percent=5)
    log = default_audit_path(controller.path)
    _timed_set(controller, "blended_recall", 5)  # re-set to the value it had: no transition
    at = _timed_set(controller, "concept_formation", True)
    anchored = _resolve(at=at, audit_log=log)
    assert anchored.source == "audit-log" and anchored.problem is None
    assert anchored.detail == f"change {controller.last_change_id} by alice in {log}"

    other = _controller(tmp_path / "other", percent=5)
    other_log = default_audit_path(other.path)
    _timed_set(other, "concept_formation", True)
    at = _timed_set(other, "blended_recall", 5)  # the no-op comes last: its entry is unknown
    unanchored = _resolve(at=at, audit_log=other_log)
    assert unanchored.source == "none"
    assert "blended_recall was already at its value in its first change" in unanchored.detail


def _append_change(
    log: AuditLog, change_id: str, flag: str, before: float, after: float, status: str | None
) -> None:
    states = {
        "b": {flag: FlagState(flag, "cohort", before)},
        "a": {flag: FlagState(flag, "cohort", after)},
    }
    records = change_records(
        change_id,
        CTX,
        backend="flagd-file:flags.json",
        reason="ramp",
        before=states["b"],
        after=states["a"],
        flags=[flag],
        parent=None,
    )
    log.append(records if status is None else [*records, outcome_record(change_id, status, "")])
    time.sleep(0.01)


def test_only_changes_that_took_effect_count(tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    path = default_audit_path(controller.path)
    _timed_set(controller, "concept_formation", True)
    _timed_set(controller, "blended_recall", 5)
    expected = controller.last_change_id
    log = AuditLog(path)
    _append_change(log, "20991231T000000Z-failed", "blended_recall", 5, 0, "failed")
    at = time.time()
    start = _resolve(at=at, audit_log=path)
    assert start.problem is None and start.detail.startswith(f"change {expected} ")
    # A writer that stopped before its outcome: the change may or may not have taken effect.
    _append_change(log, "20991231T000001Z-crashed", "blended_recall", 5, 0, None)
    unknown = _resolve(at=time.time(), audit_log=path)
    assert unknown.source == "audit-log" and unknown.problem is not None
    assert "20991231T000001Z-crashed" in unknown.problem and "is unknown" in unknown.problem


def test_an_unknown_outcome_that_changes_nothing_does_not_block(tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    path = default_audit_path(controller.path)
    _timed_set(controller, "concept_formation", True)
    _timed_set(controller, "blended_recall", 5)
    expected = controller.last_change_id
    _append_change(AuditLog(path), "20991231T000002Z-same", "blended_recall", 5, 5, None)
    start = _resolve(at=time.time(), audit_log=path)
    assert start.problem is None and start.detail.startswith(f"change {expected} ")


def test_a_corrupt_audit_log_is_a_problem_naming_the_file_not_a_fall_through(
    tmp_path: Path, gauge_prom: PrometheusServer
) -> None:
    controller = _controller(tmp_path)
    path = default_audit_path(controller.path)
    _timed_set(controller, "concept_formation", True)
    _timed_set(controller, "blended_recall", 5)
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(1, b"garbage\n")
    path.write_bytes(b"".join(lines))
    start = _resolve(at=time.time(), audit_log=path, prom=_prom(gauge_prom.url, END))
    assert (start.since, start.source) == (None, "audit-log")  # the gauge would have resolved
    assert start.problem is not None
    assert f"flag audit log {path} has lines that are not audit records" in start.problem
    assert "line 2: not valid JSON" in start.problem


def test_an_edited_audit_log_is_a_problem_not_an_earlier_start(tmp_path: Path) -> None:
    """Backdating the change that began the phase would let it pass min_hold early: the edited
    line is valid JSON, so only the hash chain shows it."""
    controller = _controller(tmp_path)
    path = default_audit_path(controller.path)
    _timed_set(controller, "concept_formation", True)
    _timed_set(controller, "blended_recall", 5)
    at = time.time()
    honest = _resolve(at=at, audit_log=path)
    assert honest.problem is None and honest.since is not None
    text = path.read_text()
    stamps = sorted({line.split('"time": "')[1][:24] for line in text.splitlines()})
    path.write_text(text.replace(stamps[-1][:4], "2020"))  # every time of the phase: year 2020
    start = _resolve(at=at, audit_log=path)
    assert (start.since, start.source) == (None, "audit-log")
    assert start.problem is not None
    assert f"flag audit log {path} cannot be trusted: its hash chain is broken" in start.problem
    assert f"rollout audit verify {path}" in start.problem and OPT_SINCE in start.problem


def test_an_unreadable_audit_log_is_a_problem_naming_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "audit.jsonl"
    directory.mkdir()  # root reads any file: a directory in its place cannot be read by anyone
    start = _resolve(at=END, audit_log=directory)
    assert (start.since, start.source) == (None, "audit-log")
    assert (
        start.problem is not None and f"cannot read audit log {str(directory)!r}" in start.problem
    )


def test_a_missing_audit_log_falls_through_to_the_gauge(
    tmp_path: Path, gauge_prom: PrometheusServer
) -> None:
    missing = tmp_path / "never-written.jsonl"
    start = _resolve(at=END, audit_log=missing, prom=_prom(gauge_prom.url, END))
    assert start.source == "prometheus" and start.problem is None
    none = _resolve(at=END, audit_log=missing)
    assert f"audit log {missing} does not exist" in none.detail


# -- the flag gauge on a real Prometheus ------------------------------------------------------


def _fleet_switch(t: int) -> tuple[int, int]:
    """The true instant every replica served the new value, and the bound one scrape later."""
    truth = t + max(LAG_B.get(t, 0), 0)
    return truth, truth + SCRAPE_S


def test_the_gauge_gives_the_last_fleet_wide_transition_within_one_scrape(
    gauge_prom: PrometheusServer,
) -> None:
    start = _resolve(at=END, prom=_prom(gauge_prom.url, END))
    assert start.source == "prometheus" and start.problem is None, start
    truth, bound = _fleet_switch(T3)
    assert start.since is not None and truth <= start.since <= bound, (start.since - truth, start)
    assert "engram_feature_flag" in start.detail and "max_over_time" in start.detail


def test_an_earlier_pinned_instant_finds_the_earlier_transition(
    gauge_prom: PrometheusServer,
) -> None:
    at = T2 - 600
    start = _resolve(at=at, prom=_prom(gauge_prom.url, at))
    truth, bound = _fleet_switch(T1)
    assert start.since is not None and truth <= start.since <= bound, start


def test_a_one_scrape_deviation_is_seen_through_the_coarse_pass(
    gauge_prom: PrometheusServer,
) -> None:
    start = _resolve(at=END, flags={"semantic_weight": 0.3}, prom=_prom(gauge_prom.url, END))
    assert start.since is not None and GLITCH < start.since <= GLITCH + SCRAPE_S, start


def test_a_gauge_not_at_the_phase_values_is_a_problem(gauge_prom: PrometheusServer) -> None:
    at = T3 - 600  # rolled back to 0
    start = _resolve(at=at, prom=_prom(gauge_prom.url, at))
    assert (start.since, start.source) == (None, "prometheus")
    assert start.problem is not None
    assert f"the flag gauge engram_feature_flag is not at phase2's values at {rfc3339(at)}" in (
        start.problem
    )
    assert (
        'blended_recall=0 on {flag="blended_recall",instance="a",job="engram"} (phase2 wants 5)'
        in (start.problem)
    )


def test_a_gauge_at_its_value_for_all_the_data_has_no_transition(
    gauge_prom: PrometheusServer,
) -> None:
    start = _resolve(at=END, flags={"concept_formation": True}, prom=_prom(gauge_prom.url, END))
    assert start.source == "none" and start.problem is not None
    assert (
        "concept_formation was at its value in all the data of the 35d searched, from "
        in start.problem
    )


def test_a_missing_gauge_resolves_nothing(gauge_prom: PrometheusServer) -> None:
    start = _resolve(at=END, flags={"unknown_flag": True}, prom=_prom(gauge_prom.url, END))
    assert start.source == "none"
    assert 'no series engram_feature_flag{flag="unknown_flag"}' in start.detail


def test_an_unreachable_prometheus_is_a_problem(refused_url: str) -> None:
    start = _resolve(at=END, prom=_prom(refused_url, END))
    assert (start.since, start.source) == (None, "prometheus")
    assert start.problem is not None
    assert start.problem.startswith("could not read the flag gauge engram_feature_flag: ")


def test_an_unknown_outcome_in_a_log_that_cannot_tell_anyway_falls_through(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _append_change(AuditLog(path), "20991231T000003Z-crashed", "blended_recall", 0, 5, None)
    flags: dict[str, bool | float] = {"blended_recall": 5.0, "concept_formation": True}
    start = _resolve(at=time.time(), flags=flags, audit_log=path)
    assert start.source == "none"  # concept_formation is not in the log, whichever way it went
    assert f"never changed in audit log {path}" in start.detail
