"""The flagd file backend against real files and the real OpenFeature flagd provider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_rollout.flags.audit import AuditLog, ChangeContext
from pytest_rollout.flags.base import (
    FlagBackendError,
    FlagState,
    FlagValueError,
    UnknownFlagError,
)
from pytest_rollout.flags.flagd_file import FlagdFileController
from pytest_rollout.flags.flagd_format import CHANGE_ID_KEY
from pytest_rollout.flags.flagd_store import apply_changes, read_flags
from pytest_rollout.flags.verify import SAMPLE_SPACE_IDS, cohort_tolerance_pp, verify_flagd_file


def on_spaces(path: Path, flag: str = "blended_recall") -> set[str]:
    """Spaces the real flagd provider puts in the "on" cohort."""
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType
    from openfeature.evaluation_context import EvaluationContext

    provider = FlagdProvider(
        resolver_type=ResolverType.FILE, offline_flag_source_path=str(path), deadline_ms=500
    )
    provider.initialize(EvaluationContext())
    try:
        return {
            space
            for space in SAMPLE_SPACE_IDS
            if provider.resolve_boolean_details(
                flag, False, EvaluationContext(attributes={"space_id": space})
            ).value
        }
    finally:
        provider.shutdown()


def test_read_flags_classifies_boolean_cohort_number_and_skips_others(flag_file: Path) -> None:
    assert read_flags(flag_file) == {
        "concept_formation": FlagState("concept_formation", "boolean", False),
        "blended_recall": FlagState("blended_recall", "cohort", 0.0),
        "semantic_weight": FlagState("semantic_weight", "number", 0.3),
    }


def test_apply_changes_follows_each_flags_type_and_keeps_unknown_keys(flag_file: Path) -> None:
    original = json.loads(flag_file.read_text())
    after = apply_changes(
        flag_file, {"concept_formation": True, "blended_recall": 5, "semantic_weight": 0.55}
    )
    assert after["concept_formation"].value is True
    assert after["blended_recall"].value == 5.0
    assert after["semantic_weight"].value == 0.55
    document = json.loads(flag_file.read_text())
    assert document["$schema"] == original["$schema"]
    assert document["flags"]["recall_mode"] == original["flags"]["recall_mode"]
    fractional = document["flags"]["blended_recall"]["targeting"]["fractional"]
    assert fractional[1:] == [["on", 5], ["off", 95]]  # "on" first: cohorts only grow
    assert read_flags(flag_file) == after


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"no_such_flag": True}, "unknown flag 'no_such_flag'"),
        ({"recall_mode": True}, "unknown flag 'recall_mode'"),  # string flag: not ours to touch
        ({"blended_recall": 100.5}, "outside 0..100"),
        ({"blended_recall": -1}, "outside 0..100"),
        ({"concept_formation": 0.5}, "is boolean"),
        ({"semantic_weight": True}, "got boolean"),
        ({"semantic_weight": float("nan")}, "expected a number"),
    ],
)
def test_invalid_changes_raise_value_error_and_leave_the_file_untouched(
    flag_file: Path, changes: dict[str, bool | float], message: str
) -> None:
    before = flag_file.read_bytes()
    with pytest.raises(FlagValueError, match=message) as info:
        apply_changes(flag_file, changes)
    assert isinstance(info.value, ValueError)
    assert flag_file.read_bytes() == before


def test_unknown_flag_error_lists_the_known_flags(flag_file: Path) -> None:
    with pytest.raises(UnknownFlagError, match="known: blended_recall, concept_formation"):
        apply_changes(flag_file, {"blended_recal": 5})


def test_cohort_0_and_100_evaluate_exactly_through_the_real_provider(flag_file: Path) -> None:
    apply_changes(flag_file, {"blended_recall": 0})
    assert on_spaces(flag_file) == set()
    apply_changes(flag_file, {"blended_recall": 100})
    assert on_spaces(flag_file) == set(SAMPLE_SPACE_IDS)


def test_cohorts_only_grow_as_the_percent_ramps(flag_file: Path) -> None:
    cohorts = []
    for percent in (1, 2.5, 5, 25, 50):
        apply_changes(flag_file, {"blended_recall": percent})
        cohorts.append(on_spaces(flag_file))
    for smaller, larger in zip(cohorts, cohorts[1:], strict=False):
        assert smaller < larger
    share = 100 * len(cohorts[2]) / len(SAMPLE_SPACE_IDS)
    assert abs(share - 5) <= cohort_tolerance_pp(5)


def test_fractional_percent_is_written_as_integer_basis_points(flag_file: Path) -> None:
    apply_changes(flag_file, {"blended_recall": 2.5})
    fractional = json.loads(flag_file.read_text())["flags"]["blended_recall"]["targeting"][
        "fractional"
    ]
    assert fractional[1:] == [["on", 250], ["off", 9750]]
    assert read_flags(flag_file)["blended_recall"].value == 2.5


def test_verification_reports_a_cohort_that_is_not_what_was_asked(flag_file: Path) -> None:
    apply_changes(flag_file, {"blended_recall": 50})
    states = read_flags(flag_file)
    report = verify_flagd_file(flag_file, {"blended_recall": 10}, states)
    assert not report.ok
    assert "requested 10 %" in report.summary()
    assert verify_flagd_file(flag_file, {"blended_recall": 50}, states).ok


def test_controller_change_is_stamped_audited_and_verified(
    file_controller: FlagdFileController, flag_file: Path, audit_path: Path
) -> None:
    state = file_controller.set_cohort_percent("blended_recall", 5, reason="canary 5 %")
    assert state == FlagState("blended_recall", "cohort", 5.0)
    change_id = file_controller.last_change_id
    assert change_id is not None
    assert json.loads(flag_file.read_text())["metadata"][CHANGE_ID_KEY] == change_id
    lines = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["change", "outcome"]
    change, outcome = lines
    assert change["id"] == outcome["id"] == change_id
    assert {k: change[k] for k in ("actor", "environment", "phase", "flag", "before", "after")} == {
        "actor": "alice",
        "environment": "staging",
        "phase": "phase2",
        "flag": "blended_recall",
        "before": 0.0,
        "after": 5.0,
    }
    assert change["reason"] == "canary 5 %" and change["run_id"] == "run-1"
    assert outcome["status"] == "verified"


def test_dry_run_writes_and_audits_nothing(
    file_controller: FlagdFileController, flag_file: Path, audit_path: Path
) -> None:
    before = flag_file.read_bytes()
    planned = file_controller.set_many({"blended_recall": 25}, reason="ramp", dry_run=True)
    assert planned["blended_recall"].value == 25.0
    assert flag_file.read_bytes() == before
    assert not audit_path.exists()


def test_set_cohort_percent_refuses_a_boolean_flag(file_controller: FlagdFileController) -> None:
    with pytest.raises(FlagValueError, match="not a cohort flag"):
        file_controller.set_cohort_percent("concept_formation", 5, reason="x")


def test_a_change_needs_a_reason(file_controller: FlagdFileController, flag_file: Path) -> None:
    with pytest.raises(FlagValueError, match="reason is required"):
        file_controller.set("concept_formation", True, reason="  ")
    assert read_flags(flag_file)["concept_formation"].value is False


def test_snapshot_and_restore_round_trip(file_controller: FlagdFileController) -> None:
    start = file_controller.snapshot()
    assert start == {"blended_recall": 0.0, "concept_formation": False, "semantic_weight": 0.3}
    file_controller.set_many({"blended_recall": 50, "concept_formation": True}, reason="ramp")
    assert file_controller.snapshot() != start
    file_controller.restore(start, reason="back to start")
    assert file_controller.snapshot() == start


def test_explicit_audit_log_path_is_used(flag_file: Path, tmp_path: Path) -> None:
    audit = tmp_path / "elsewhere" / "audit.jsonl"
    controller = FlagdFileController(
        flag_file, audit=AuditLog(audit), context=ChangeContext(actor="bob")
    )
    controller.set("semantic_weight", 0.4, reason="tune")
    assert [c.status for c in AuditLog(audit).changes()] == ["verified"]


def test_a_read_only_flag_file_is_refused_even_as_root(
    file_controller: FlagdFileController, flag_file: Path, audit_path: Path
) -> None:
    # Root may replace any file in a writable directory; the mode bits are what say "do not".
    flag_file.chmod(0o444)
    before = flag_file.read_bytes()
    with pytest.raises(FlagBackendError) as refused:
        file_controller.set("blended_recall", 50, reason="ramp")
    message = str(refused.value)
    assert repr(str(flag_file)) in message
    assert f"chmod u+w {flag_file}" in message and "--flags" in message
    assert flag_file.read_bytes() == before
    assert flag_file.stat().st_mode & 0o777 == 0o444
    [change] = AuditLog(audit_path).changes()
    assert change.status == "failed" and "chmod u+w" in change.message
    with pytest.raises(FlagBackendError, match="chmod u[+]w"):
        apply_changes(flag_file, {"blended_recall": 50})  # the staging service's unaudited path
    assert flag_file.read_bytes() == before
