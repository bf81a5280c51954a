"""Reading a campaign: which files are records, old records, rollback sources, watch looks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_rollout.campaign.build import build
from pytest_rollout.campaign.collect import collect
from pytest_rollout.campaign.events import all_events, rollback_source, treatment_share
from pytest_rollout.campaign.phases import key_figures
from pytest_rollout.decision import Decision, digest_of
from tests.campaign.helpers import (
    ERRORS,
    P99,
    change,
    gate,
    make_campaign,
    write_chained,
    write_record,
)


def test_an_old_record_without_since_context_or_gates_is_shown_not_refused(
    tmp_path: Path,
) -> None:
    (tmp_path / "records").mkdir()
    old = {"phase": "phase1", "decision": "GO", "evaluated_at": "2026-11-25T14:00:00Z"}
    old["digest"] = digest_of(old)
    (tmp_path / "records" / "phase1.json").write_text(json.dumps(old))
    write_chained(tmp_path / "audit.jsonl", [])
    problems, page = build(
        tmp_path / "audit.jsonl", tmp_path / "records", None, tmp_path / "c.html"
    )
    assert problems == []
    assert 'data-phase="phase1"' in page and "digest verified" in page
    assert "no approval recorded" in page and "not recorded" in page


def test_a_json_file_that_names_a_phase_and_decision_but_has_no_digest_fails(
    tmp_path: Path,
) -> None:
    paths = make_campaign(tmp_path)
    stripped = json.loads((paths["records"] / "phase5.json").read_text())
    del stripped["digest"]  # removing the digest must not make a record disappear
    (paths["records"] / "phase5.json").write_text(json.dumps(stripped))
    campaign = collect(paths["log"], paths["records"])
    assert [(Path(p.where).name, p.message) for p in campaign.problems] == [
        ("phase5.json", "not a decision record (no digest field)")
    ]
    assert "baseline.json" not in {r.path.name for r in campaign.records}


def test_a_look_whose_record_is_missing_is_a_failure_naming_the_timeline(tmp_path: Path) -> None:
    paths = make_campaign(tmp_path)
    (paths["records"] / "watch-phase2" / "looks" / "1" / "record.json").unlink()
    campaign = collect(paths["log"], paths["records"])
    (problem,) = campaign.problems
    assert problem.where.endswith("watch-phase2/timeline.jsonl:look 1")
    assert "looks/1/record.json" in problem.message


@pytest.mark.parametrize(
    ("line", "source"),
    [
        ({"reason": "pytest-rollout: phase3 ABORT (run 3f9a)"}, "gate"),
        ({"reason": "alert EngramP99High (fingerprint ab12) fired"}, "alert"),
        ({"reason": "anything", "source": "alert", "alert": "EngramP99High"}, "alert"),
        ({"reason": "rollback to the phase2 rollback state: p99 up"}, "operator"),
        ({"reason": "staging rehearsal: phase 2"}, None),
    ],
)
def test_rollback_sources(line: dict[str, str], source: str | None) -> None:
    assert rollback_source(line) == source


def test_events_are_in_time_order_and_a_failed_change_is_marked(tmp_path: Path) -> None:
    paths = make_campaign(tmp_path)
    failed = change("c7", 3400, "phase5", "blended_recall", 0.0, 50.0, "retry", status="failed")
    write_chained(paths["log"], failed)
    campaign = collect(paths["log"], paths["records"])
    events = all_events(campaign)
    (last,) = [e for e in events if e.title.startswith("flag change: blended_recall 0 → 50")]
    assert not last.ok and "(failed)" in last.title
    # the share never reached 50: the failed change did not take effect
    assert treatment_share(campaign)["blended_recall"][-1][1] == 0.0
    assert [e.when for e in events] == sorted(e.when for e in events)
    kinds = [e.kind for e in events]
    assert (
        kinds.count("rollback") == 2 and kinds.count("approval") == 1 and kinds.count("flag") == 5
    )
    assert kinds.count("decision") == 5 and kinds.count("look") == 1
    assert all(e.where for e in events)


def test_key_figures_skip_other_p99s_error_counts_and_series_inventories(tmp_path: Path) -> None:
    """What a real rehearsal's phase 0 and 1 records carry must not pass for recall figures."""
    paths = make_campaign(tmp_path)
    distractors = [
        gate("test_formation_p99", "formation cycle p99", 0.0129, 0.05, ci=(0.006, 0.017)),
        gate("test_inventory_errors", "engram_concept_formation_errors_total", 1, 1, unit="series"),
        gate("test_inventory_conf", "engram_recall_confidence_bucket", 42, 1, unit="series"),
    ]
    write_record(paths["records"] / "phase00.json", "phase0", Decision.GO, 100, distractors)
    figures = {
        label: (first, last)
        for label, first, last in key_figures(collect(paths["log"], paths["records"]))
    }
    first_p99, _ = figures["p99 latency"]
    assert first_p99 is not None and first_p99.metric == P99 and first_p99.phase == "phase0"
    assert figures["error rate"][0] is not None and figures["error rate"][0].metric == ERRORS
    assert figures["confidence"] == (None, None)
