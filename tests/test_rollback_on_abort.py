"""--rollout-on-abort=rollback: the controller flips the flag once, verifies it, records it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_rollout.flags.audit import ACTOR_VARIABLES
from pytest_rollout.flags.flagd_store import read_flags
from pytest_rollout.plugin import OPT_DECISION_JSON, OPT_FLAGS, OPT_ON_ABORT

FLAG_FILE = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "flags": {
        "blended_recall": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {
                "fractional": [
                    {"cat": [{"var": "$flagd.flagKey"}, {"var": "space_id"}]},
                    ["on", 5],
                    ["off", 95],
                ]
            },
        },
        "semantic_weight": {
            "state": "ENABLED",
            "variants": {"value": 0.3},
            "defaultVariant": "value",
        },
    },
}

GATES = """
import pytest
pytestmark = pytest.mark.phase2

def test_error_rate_ok():
    pass

@pytest.mark.abort
def test_abort_when_p99_regresses_over_20ms():
    assert False, "p99 delta +94 ms > +20 ms"

def test_other_criterion():
    pass
"""

CONFIG = """
[phases.phase2]
rollback = {blended_recall = 0}
"""


@pytest.fixture
def rollout_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_gates=GATES)
    pytester.makefile(".toml", rollout=CONFIG)
    (pytester.path / "flags.json").write_text(json.dumps(FLAG_FILE))
    return pytester


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_abort_rolls_back_exactly_once_and_records_it(
    rollout_project: pytest.Pytester, xdist: list[str]
) -> None:
    flag_file = rollout_project.path / "flags.json"
    result = rollout_project.runpytest_subprocess(
        f"{OPT_FLAGS}=flagd-file:{flag_file}",
        f"{OPT_ON_ABORT}=rollback",
        f"{OPT_DECISION_JSON}=decision.json",
        "-p",
        "no:cacheprovider",
        *xdist,
    )
    assert result.ret == 10
    assert read_flags(flag_file)["blended_recall"].value == 0
    assert read_flags(flag_file)["semantic_weight"].value == pytest.approx(0.3)  # untouched

    record = json.loads((rollout_project.path / "decision.json").read_text())
    assert record["decision"] == "ABORT"
    rollbacks = [a for a in record["actions"] if a["action"] == "rollback"]
    assert len(rollbacks) == 1
    assert rollbacks[0]["result"] == "verified"
    assert record["flags"]["before"]["blended_recall"] == 5
    assert record["flags"]["after"]["blended_recall"] == 0

    audit = [
        json.loads(line)
        for line in (rollout_project.path / "flags.json.audit.jsonl").read_text().splitlines()
    ]
    changes = [line for line in audit if line["kind"] == "change"]
    assert len(changes) == 1, "exactly one rollback change, written by the controller"
    assert changes[0]["flag"] == "blended_recall"
    assert (changes[0]["before"], changes[0]["after"]) == (5, 0)


def test_no_rollback_without_abort(rollout_project: pytest.Pytester) -> None:
    flag_file = rollout_project.path / "flags.json"
    result = rollout_project.runpytest_subprocess(
        f"{OPT_FLAGS}=flagd-file:{flag_file}",
        f"{OPT_ON_ABORT}=rollback",
        "-m",
        "not abort",
        "-p",
        "no:cacheprovider",
    )
    # Leaving the abort triggers out makes it a partial run: HOLD, and still no rollback.
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*HOLD — partial run: * of * gates of phase2 ran*"])
    assert read_flags(flag_file)["blended_recall"].value == 5


def test_failed_rollback_is_loud_and_stays_abort(rollout_project: pytest.Pytester) -> None:
    rollout_project.makefile(".toml", rollout="[phases.phase2]\nrollback = {no_such_flag = 0}\n")
    flag_file = rollout_project.path / "flags.json"
    result = rollout_project.runpytest_subprocess(
        f"{OPT_FLAGS}=flagd-file:{flag_file}",
        f"{OPT_ON_ABORT}=rollback",
        f"{OPT_DECISION_JSON}=decision.json",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*ROLLBACK FAILED*"])
    record = json.loads((rollout_project.path / "decision.json").read_text())
    (action,) = [a for a in record["actions"] if a["action"] == "rollback"]
    assert action["result"] == "failed"
    assert "blended_recall" in action["message"], "the message says what state the flags are in"
    assert read_flags(flag_file)["blended_recall"].value == 5


def _actors(monkeypatch: pytest.MonkeyPatch, **actors: str) -> None:
    """Only ``actors`` name who acts in the inner run (it inherits this environment)."""
    for name in ACTOR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in actors.items():
        monkeypatch.setenv(name, value)


def _audit_changes(project: pytest.Pytester) -> list[dict[str, Any]]:
    lines = (project.path / "flags.json.audit.jsonl").read_text().splitlines()
    return [c for c in map(json.loads, lines) if c["kind"] == "change"]


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_abort_rollback_audits_the_phase_and_rollout_actor(
    rollout_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, xdist: list[str]
) -> None:
    _actors(monkeypatch, ROLLOUT_ACTOR="oncall-alice", GITHUB_ACTOR="ci-bot", USER="login")
    flag_file = rollout_project.path / "flags.json"
    result = rollout_project.runpytest_subprocess(
        f"{OPT_FLAGS}=flagd-file:{flag_file}",
        f"{OPT_ON_ABORT}=rollback",
        f"{OPT_DECISION_JSON}=decision.json",
        "-p",
        "no:cacheprovider",
        *xdist,
    )
    assert result.ret == 10
    (change,) = _audit_changes(rollout_project)
    assert (change["phase"], change["actor"]) == ("phase2", "oncall-alice")
    record = json.loads((rollout_project.path / "decision.json").read_text())
    assert record["context"]["operator"] == "oncall-alice"
    assert "actor unknown" not in result.stderr.str()


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_an_unknown_actor_is_warned_about_once_per_run(
    rollout_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, xdist: list[str]
) -> None:
    _actors(monkeypatch)
    flag_file = rollout_project.path / "flags.json"
    result = rollout_project.runpytest_subprocess(
        f"{OPT_FLAGS}=flagd-file:{flag_file}",
        f"{OPT_ON_ABORT}=rollback",
        f"{OPT_DECISION_JSON}=decision.json",
        "-p",
        "no:cacheprovider",
        *xdist,
    )
    assert result.ret == 10
    warnings = [line for line in result.stderr.lines if "actor unknown" in line]
    assert len(warnings) == 1, result.stderr.str()
    assert "export ROLLOUT_ACTOR=" in warnings[0]
    (change,) = _audit_changes(rollout_project)
    assert change["actor"] == "unknown"
    record = json.loads((rollout_project.path / "decision.json").read_text())
    assert record["context"]["operator"] == "unknown"


def test_a_run_that_records_no_actor_does_not_warn(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _actors(monkeypatch)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == 0
    assert "actor unknown" not in result.stderr.str()


DRILL = """
import pytest

@pytest.mark.phase3
def test_abort_when_chaos_drill_does_not_recover(flags):
    flags.set_many({"blended_recall": 0}, reason="phase3 chaos drill: roll back")
    flags.set_many({"blended_recall": 5}, reason="phase3 chaos drill: restore")
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_gate_changing_flags_audits_its_phase(
    rollout_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, xdist: list[str]
) -> None:
    _actors(monkeypatch, ROLLOUT_ACTOR="oncall-alice")
    rollout_project.makepyfile(test_gates=DRILL)
    flag_file = rollout_project.path / "flags.json"
    result = rollout_project.runpytest_subprocess(
        f"{OPT_FLAGS}=flagd-file:{flag_file}", "-p", "no:cacheprovider", *xdist
    )
    assert result.ret == 0, result.stdout.str()
    changes = _audit_changes(rollout_project)
    assert [(c["phase"], c["actor"], c["after"]) for c in changes] == [
        ("phase3", "oncall-alice", 0),
        ("phase3", "oncall-alice", 5),
    ]
