"""The GO / HOLD / ABORT decision through real pytest runs (pytester), serial and under -n 2."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest

from tests.core.helpers import (
    EXIT,
    GATE_KEYS,
    RECORD_KEYS,
    gate_by_name,
    gate_module,
    gate_source,
    last_line,
    output,
    read_record,
    recompute_digest,
    run_gates,
)

OUTCOMES = ("pass", "fail", "inconclusive", "error")


def expected_decision(criterion: str | None, abort: str | None) -> str:
    if abort == "fail":
        return "ABORT"
    present = [o for o in (criterion, abort) if o is not None]
    if not present or any(o != "pass" for o in present):
        return "HOLD"
    return "GO"


COMBINATIONS = [(c, a) for c, a in itertools.product((*OUTCOMES, None), repeat=2)]


@pytest.mark.parametrize(
    ("criterion", "abort"), COMBINATIONS, ids=[f"criterion-{c}-abort-{a}" for c, a in COMBINATIONS]
)
def test_every_outcome_combination(
    pytester: pytest.Pytester, criterion: str | None, abort: str | None
) -> None:
    gates = []
    if criterion is not None:
        gates.append(gate_source("test_criterion", criterion))
    if abort is not None:
        gates.append(gate_source("test_abort_trigger", abort, abort=True))
    pytester.makepyfile(test_gates=gate_module(*gates))
    record_path = pytester.path / "decision.json"

    result = run_gates(pytester, "-m", "phase2", "--rollout-decision-json", str(record_path))

    decision = expected_decision(criterion, abort)
    assert result.ret == EXIT[decision], output(result)
    record = read_record(record_path)
    assert record["decision"] == decision
    by_kind = {g["kind"]: g["outcome"] for g in record["gates"]}
    assert by_kind == {k: o for k, o in (("criterion", criterion), ("abort", abort)) if o}
    assert last_line(result).startswith(f"rollout phase2: {decision} — ")
    assert "Traceback" not in output(result)


MIXTURES = [
    # (criteria outcomes, abort outcomes, decision)
    (["pass", "pass", "pass"], ["pass", "pass"], "GO"),
    (["pass", "inconclusive", "pass"], ["pass"], "HOLD"),
    (["fail", "error", "inconclusive"], ["pass", "inconclusive"], "HOLD"),
    (["pass"], ["error", "error"], "HOLD"),  # a broken trigger blocks GO but does not roll back
    (["pass", "pass"], ["pass", "fail"], "ABORT"),
    (["error", "fail"], ["inconclusive", "fail", "error"], "ABORT"),  # ABORT > HOLD
]


@pytest.mark.parametrize(("criteria", "aborts", "decision"), MIXTURES)
def test_mixtures_abort_beats_hold_beats_go(
    pytester: pytest.Pytester, criteria: list[str], aborts: list[str], decision: str
) -> None:
    gates = [gate_source(f"test_criterion_{i}", o) for i, o in enumerate(criteria)]
    gates += [gate_source(f"test_trigger_{i}", o, abort=True) for i, o in enumerate(aborts)]
    pytester.makepyfile(test_gates=gate_module(*gates))
    record_path = pytester.path / "decision.json"

    result = run_gates(pytester, "--rollout-decision-json", str(record_path))

    assert result.ret == EXIT[decision], output(result)
    record = read_record(record_path)
    assert record["decision"] == decision
    assert len(record["gates"]) == len(criteria) + len(aborts)
    if decision == "ABORT":
        fired = [g for g in record["gates"] if g["kind"] == "abort" and g["outcome"] == "fail"]
        assert record["reason"].startswith(f"{len(fired)} abort trigger")
        for gate in fired:
            assert gate["nodeid"].rsplit("::", 1)[1] in record["reason"]
    if decision == "HOLD":
        blocking = [g for g in record["gates"] if g["outcome"] != "pass"]
        assert f"of {len(record['gates'])} gates" in record["reason"]
        assert blocking


@pytest.mark.parametrize("decision", ["GO", "HOLD", "ABORT"])
@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "n2"])
def test_exit_status_and_last_line_with_and_without_xdist(
    pytester: pytest.Pytester, decision: str, xdist: bool
) -> None:
    gates = [
        gate_source("test_latency_within_margin", "pass"),
        gate_source("test_error_rate_within_margin", "pass"),
        gate_source("test_abort_on_p99_regression", "pass", abort=True),
    ]
    if decision == "HOLD":
        gates.append(gate_source("test_enough_samples", "inconclusive"))
    if decision == "ABORT":
        gates.append(gate_source("test_abort_on_errors", "fail", abort=True))
    pytester.makepyfile(test_gates=gate_module(*gates), test_instants=AT_GATES)
    record_path = pytester.path / "decision.json"

    result = run_gates(
        pytester, "-m", "phase2", "--rollout-decision-json", str(record_path), xdist=xdist
    )

    assert result.ret == EXIT[decision], output(result)
    assert last_line(result).startswith(f"rollout phase2: {decision} — "), result.outlines[-5:]
    # The decision is also the closing separator of the terminal summary.
    result.stdout.fnmatch_lines([f"=*rollout phase2: {decision} — *=*"])
    # Without --rollout-at the instant is pinned once per run: every gate, on every worker,
    # saw the same one, and it is the record's evaluated_at.
    instants = {at for _, at in _instants(pytester)}
    assert len(instants) == 1, instants
    evaluated = datetime.fromtimestamp(instants.pop(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert read_record(record_path)["evaluated_at"] == evaluated


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "n2"])
def test_no_gate_selected_is_hold_never_exit_5(pytester: pytest.Pytester, xdist: bool) -> None:
    pytester.makepyfile(test_gates=gate_module(gate_source("test_p99", "pass")))
    record_path = pytester.path / "decision.json"

    result = run_gates(
        pytester, "-m", "phase3", "--rollout-decision-json", str(record_path), xdist=xdist
    )

    assert result.ret == 1, output(result)
    record = read_record(record_path)
    assert record["decision"] == "HOLD"
    assert record["phase"] == "phase3"
    assert record["gates"] == []
    assert "no gates were selected" in record["reason"]
    assert last_line(result).startswith("rollout phase3: HOLD — no gates were selected")


def test_empty_gate_directory_asked_for_a_phase_is_hold(pytester: pytest.Pytester) -> None:
    result = run_gates(pytester, "-m", "phase2")
    assert result.ret == 1, output(result)
    assert last_line(result).startswith("rollout phase2: HOLD")


def test_skipped_gates_block_go(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gates="""
        import sys
        import pytest

        pytestmark = pytest.mark.phase2

        def test_passes():
            pass

        def test_skips_itself():
            pytest.skip("dashboard not reachable")

        @pytest.mark.skipif(sys.platform != "nonexistent", reason="not on this platform")
        def test_skipped_by_marker():
            pass
    """
    )
    record_path = pytester.path / "decision.json"
    result = run_gates(pytester, "--rollout-decision-json", str(record_path))
    assert result.ret == 1, output(result)
    record = read_record(record_path)
    assert record["decision"] == "HOLD"
    for name, why in (
        ("test_skips_itself", "dashboard not reachable"),
        ("test_skipped_by_marker", "not on this platform"),
    ):
        gate = gate_by_name(record, name)
        assert gate["outcome"] == "inconclusive"
        assert "skipped" in gate["reason"] and why in gate["reason"]
    assert gate_by_name(record, "test_passes")["outcome"] == "pass"


def test_inconclusive_survives_except_exception(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gates="""
        import pytest
        import pytest_rollout

        @pytest.mark.phase2
        def test_swallows_everything():
            try:
                pytest_rollout.inconclusive("only 3 of 1000 samples")
            except Exception:
                pass  # careless gate code must not turn "could not tell" into "passed"

        @pytest.mark.phase2
        @pytest.mark.abort
        def test_trigger_swallows_everything():
            try:
                pytest_rollout.inconclusive("trigger has no data")
            except Exception:
                raise AssertionError("not reached")
    """
    )
    record_path = pytester.path / "decision.json"
    result = run_gates(pytester, "--rollout-decision-json", str(record_path))
    assert result.ret == 1, output(result)
    record = read_record(record_path)
    assert record["decision"] == "HOLD"
    assert gate_by_name(record, "test_swallows_everything")["outcome"] == "inconclusive"
    assert gate_by_name(record, "test_swallows_everything")["reason"] == "only 3 of 1000 samples"
    assert gate_by_name(record, "test_trigger_swallows_everything")["outcome"] == "inconclusive"
    result.stdout.fnmatch_lines(["*INCONCLUSIVE*criterion*test_swallows_everything*"])


def test_setup_and_teardown_problems(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gates="""
        import pytest
        import pytest_rollout

        pytestmark = pytest.mark.phase2

        @pytest.fixture
        def broken_backend():
            raise ConnectionError("flag backend refused")

        @pytest.fixture
        def no_data():
            pytest_rollout.inconclusive("no samples in the window")

        @pytest.fixture
        def leaky():
            yield
            raise RuntimeError("cleanup failed")

        def test_setup_error(broken_backend):
            pass

        def test_setup_inconclusive(no_data):
            pass

        def test_teardown_error_after_pass(leaky):
            pass

        @pytest.mark.abort
        def test_failed_trigger_with_teardown_error(leaky):
            assert False, "error rate +0.4 pp"
    """
    )
    record_path = pytester.path / "decision.json"
    result = run_gates(pytester, "--rollout-decision-json", str(record_path))
    assert result.ret == 10, output(result)
    record = read_record(record_path)
    setup_error = gate_by_name(record, "test_setup_error")
    assert setup_error["outcome"] == "error"
    assert "setting up" in setup_error["reason"] and "flag backend refused" in setup_error["reason"]
    assert gate_by_name(record, "test_setup_inconclusive")["outcome"] == "inconclusive"
    teardown = gate_by_name(record, "test_teardown_error_after_pass")
    assert teardown["outcome"] == "error"
    assert teardown["reason"] == ("error while tearing down the gate: RuntimeError: cleanup failed")
    # A teardown error must not hide a fired abort trigger.
    fired = gate_by_name(record, "test_failed_trigger_with_teardown_error")
    assert fired["outcome"] == "fail" and fired["reason"] == "error rate +0.4 pp"


def test_decision_record_fields_and_digest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gates="""
        import pytest

        pytestmark = pytest.mark.phase2

        def test_p99_delta(gate):
            gate.observe(metric="recall p99 latency delta", observed=0.0021, threshold=0.010,
                         unit="s", n={"control": 41210, "treatment": 2210}, p_value=0.41,
                         ci=(-0.001, 0.006))
            assert gate.observed < gate.threshold

        @pytest.mark.abort
        def test_error_rate_trigger(gate):
            gate.observe(metric="error rate delta", observed=float("nan"), threshold=0.001)
            assert True
    """
    )
    pytester.makefile(
        ".toml",
        rollout="""
        [phases.phase2]
        name = "canary"
        window = "30m"
    """,
    )
    record_path = pytester.path / "out" / "decision.json"
    result = run_gates(
        pytester,
        "--rollout-decision-json",
        str(record_path),
        "--rollout-at",
        "2026-11-25T14:00:00Z",
    )
    assert result.ret == 0, output(result)
    record = read_record(record_path)

    assert set(record) >= RECORD_KEYS
    assert record["schema"] == 1
    assert record["phase"] == "phase2"
    assert record["decision"] == "GO"
    assert record["evaluated_at"] == "2026-11-25T14:00:00Z"
    assert record["window"] == {"start": "2026-11-25T13:30:00Z", "end": "2026-11-25T14:00:00Z"}
    assert record["flags"] == {"before": {}, "after": {}}
    assert record["actions"] == []
    for gate in record["gates"]:
        assert set(gate) == GATE_KEYS
    p99 = gate_by_name(record, "test_p99_delta")
    assert p99 == {
        **p99,
        "kind": "criterion",
        "outcome": "pass",
        "metric": "recall p99 latency delta",
        "observed": 0.0021,
        "threshold": 0.010,
        "unit": "s",
        "n": {"control": 41210, "treatment": 2210},
        "p_value": 0.41,
        "ci": [-0.001, 0.006],
        "queries": [],
    }
    trigger = gate_by_name(record, "test_error_rate_trigger")
    assert trigger["kind"] == "abort"
    assert trigger["observed"] is None  # NaN is not valid JSON: it becomes null

    assert record["digest"] == recompute_digest(record)
    tampered = {**record, "decision": "ABORT"}
    assert recompute_digest(tampered) != record["digest"]
    assert not list(record_path.parent.glob("*.tmp")), "temporary file left behind"


def test_same_record_with_and_without_xdist(pytester: pytest.Pytester) -> None:
    gates = [
        gate_source(f"test_criterion_{i}", o)
        for i, o in enumerate(["pass", "inconclusive", "pass", "fail", "error", "pass"])
    ]
    gates += [
        gate_source("test_trigger_ok", "pass", abort=True),
        gate_source("test_trigger_no_data", "inconclusive", abort=True),
    ]
    pytester.makepyfile(test_gates=gate_module(*gates))
    records = {}
    for xdist in (False, True):
        path = pytester.path / f"decision-{xdist}.json"
        result = run_gates(
            pytester,
            "-m",
            "phase2",
            "--rollout-at",
            "1795000000",
            "--rollout-decision-json",
            str(path),
            xdist=xdist,
        )
        assert result.ret == 1, output(result)
        records[xdist] = read_record(path)
    for record in records.values():
        assert record["digest"] == recompute_digest(record)

    # With a pinned instant only the run's identity differs (and so the digest).
    def comparable(record: dict[str, object]) -> dict[str, object]:
        context = dict(record.get("context") or {})  # type: ignore[call-overload]
        context.pop("run_id", None)
        return {**{k: v for k, v in record.items() if k != "digest"}, "context": context}

    assert comparable(records[False]) == comparable(records[True])


AT_GATES = """
    import json
    import os
    import time
    import pytest

    pytestmark = pytest.mark.phase2

    @pytest.mark.parametrize("i", range(6))
    def test_sees_the_instant(rollout, i):
        time.sleep(0.05)  # spread the gates over both workers
        with open("instants.txt", "a") as f:
            f.write(json.dumps([os.environ.get("PYTEST_XDIST_WORKER", "-"), rollout.at]) + "\\n")
"""

DECISION_HOOK = """
    import os

    def pytest_rollout_decision(config, record):
        with open("decision-calls.txt", "a") as f:
            f.write(os.environ.get("PYTEST_XDIST_WORKER", "controller") + "\\n")
"""


def _instants(pytester: pytest.Pytester) -> list[tuple[str, float]]:
    lines = (pytester.path / "instants.txt").read_text().splitlines()
    return [tuple(json.loads(line)) for line in lines]  # type: ignore[misc]


def test_rollout_at_pins_every_worker_and_only_the_controller_writes(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(DECISION_HOOK)
    pytester.makepyfile(test_gates=AT_GATES)
    record_path = pytester.path / "decision.json"
    result = run_gates(
        pytester,
        "--rollout-at",
        "2026-11-25T14:00:00Z",
        "--rollout-decision-json",
        str(record_path),
        xdist=True,
    )
    assert result.ret == 0, output(result)
    seen = _instants(pytester)
    assert len(seen) == 6
    assert {worker for worker, _ in seen} <= {"gw0", "gw1"}
    assert {at for _, at in seen} == {1795615200.0}
    record = read_record(record_path)
    assert record["evaluated_at"] == "2026-11-25T14:00:00Z"
    assert len(record["gates"]) == 6
    # Workers never decide or write: one hook call, on the controller, and one file.
    assert (pytester.path / "decision-calls.txt").read_text().split() == ["controller"]
    assert sorted(p.name for p in pytester.path.glob("decision*")) == [
        "decision-calls.txt",
        "decision.json",
    ]


def test_rollout_at_accepts_unix_seconds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gates=AT_GATES)
    record_path = pytester.path / "decision.json"
    result = run_gates(
        pytester, "--rollout-at", "1795615200", "--rollout-decision-json", str(record_path)
    )
    assert result.ret == 0, output(result)
    assert {at for _, at in _instants(pytester)} == {1795615200.0}
    assert read_record(record_path)["evaluated_at"] == "2026-11-25T14:00:00Z"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--rollout-at", "yesterday"),
        ("--rollout-at", "2026-11-25T14:00:00"),
        ("--rollout-window", "5 minutes"),
    ],
)
def test_bad_instant_or_window_is_a_usage_error(
    pytester: pytest.Pytester, option: str, value: str
) -> None:
    pytester.makepyfile(test_gates=gate_module(gate_source("test_p99", "pass")))
    result = run_gates(pytester, option, value)
    assert result.ret == 4
    assert option in result.stderr.str() and value in result.stderr.str()
    assert "Traceback" not in output(result)


def test_plain_test_runs_are_left_alone(pytester: pytest.Pytester) -> None:
    """Without gates, a phase or a record request, pytest's own exit statuses stand."""
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    result = run_gates(pytester)
    assert result.ret == 0
    assert "rollout" not in last_line(result)
    result = run_gates(pytester, "-k", "nothing_matches")
    assert result.ret == 5
