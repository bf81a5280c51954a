"""`rollout verify DECISION.json` on a real record: intact, tampered, unreadable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.report.helpers import AT, make_project


@pytest.fixture
def record_path(pytester: pytest.Pytester) -> Path:
    make_project(pytester)
    path = pytester.path / "decision.json"
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "-m",
        "phase3",
        f"--rollout-at={AT}",
        f"--rollout-decision-json={path}",
    )
    assert result.ret == 10
    return path


def verify(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # The console script's code path, in a subprocess like a CI step would run it.
    return pytester.run(sys.executable, "-m", "pytest_rollout", "verify", *args)


def test_verify_accepts_an_intact_record_and_prints_the_decision(
    pytester: pytest.Pytester, record_path: Path
) -> None:
    result = verify(pytester, str(record_path))
    assert result.ret == 0, result.stdout.str()
    record = json.loads(record_path.read_text())
    result.stdout.fnmatch_lines(
        [
            f"OK *decision.json: digest {record['digest']} matches",
            "phase3: ABORT — 1 abort trigger fired: test_abort_when_p99_regresses_over_20ms*",
            f"  evaluated at {AT}, window *",
            "  FAIL         abort trigger test_gates.py::test_abort_when_p99_regresses_over_20ms — *",
            "  PASS         criterion     test_gates.py::test_ramp_error_rate_within_0_1pp",
        ]
    )


@pytest.mark.parametrize("tamper", ["decision", "gate outcome", "added field"])
def test_verify_rejects_a_tampered_record(
    pytester: pytest.Pytester, record_path: Path, tamper: str
) -> None:
    record = json.loads(record_path.read_text())
    if tamper == "decision":
        record["decision"] = "GO"
    elif tamper == "gate outcome":
        record["gates"][0]["outcome"] = "pass"
    else:
        record["approved_by"] = "someone"
    record_path.write_text(json.dumps(record, indent=2))
    result = verify(pytester, str(record_path))
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "MISMATCH *decision.json: the record was changed after it was written",
            f"  recorded digest: {record['digest']}",
            "  content digest:  sha256:*",
        ]
    )
    assert "OK " not in result.stdout.str()


def test_verify_fails_on_unreadable_input(pytester: pytest.Pytester) -> None:
    broken = pytester.path / "broken.json"
    broken.write_text("{not json")
    no_digest = pytester.path / "nodigest.json"
    no_digest.write_text('{"decision": "GO"}')
    for path, words in (
        (broken, "UNREADABLE"),
        (no_digest, "no digest field"),
        (pytester.path / "missing.json", "UNREADABLE"),
    ):
        result = verify(pytester, str(path))
        assert result.ret == 2, path
        assert words in result.stdout.str()


def test_verify_output_cannot_carry_terminal_escapes(tmp_path: Path) -> None:
    import io

    from pytest_rollout.decision import digest_of
    from pytest_rollout.report.verify import verify_file

    record = {
        "schema": 1,
        "phase": "phase2",
        "decision": "GO",
        "reason": "fine\x1b[2J\x1b]0;owned\x07\nforged line",
        "gates": [],
    }
    record["digest"] = digest_of(record)
    path = tmp_path / "d.json"
    path.write_text(json.dumps(record))
    out = io.StringIO()
    assert verify_file(path, out=out) == 0
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert "\\u001b[2J" in out.getvalue() and "forged line" in out.getvalue()
    assert "\nforged line" not in out.getvalue()
