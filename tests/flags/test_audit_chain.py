"""The audit log's hash chain: every tampering kind is found and named, crashes never are."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pytest_rollout.flags.audit import CHAIN_HEADER, AuditLog, outcome_record
from pytest_rollout.flags.audit_chain import verify_chain


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record(n: int) -> dict[str, Any]:
    return outcome_record(f"change-{n}", "verified", f"record {n}")


def five_line_log(path: Path) -> list[bytes]:
    log = AuditLog(path)
    log.append([record(1), record(2)])  # one multi-record append: chained inside too
    for n in (3, 4, 5):
        log.append([record(n)])
    return path.read_bytes().splitlines(keepends=True)


def write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def test_every_line_chains_to_the_previous_line_and_the_first_to_the_header(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    lines = [line.rstrip(b"\n") for line in five_line_log(path)]
    assert json.loads(lines[0])["prev"] == sha(CHAIN_HEADER)
    for before, line in zip(lines, lines[1:], strict=False):
        assert json.loads(line)["prev"] == sha(before)
    report = verify_chain(path)
    assert (report.ok, report.broken_line, report.problem) == (True, None, "")
    assert (report.lines, report.legacy_lines, report.head) == (5, 0, sha(lines[-1]))


def test_an_edited_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = five_line_log(path)
    lines[1] = lines[1].replace(b"record 2", b"record 9")
    write(path, lines)
    report = verify_chain(path)
    assert not report.ok and report.broken_line == 2
    assert "line 2 was edited" in report.problem


def test_a_removed_line_is_reported_where_the_chain_breaks(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = five_line_log(path)
    del lines[2]
    write(path, lines)
    report = verify_chain(path)
    assert not report.ok and report.broken_line == 2
    assert "line 3 does not chain to line 2" in report.problem and "removed" in report.problem


def test_reordered_lines_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = five_line_log(path)
    lines[1], lines[2] = lines[2], lines[1]
    write(path, lines)
    report = verify_chain(path)
    assert not report.ok and report.broken_line == 2
    assert "reordered" in report.problem


def test_an_inserted_line_is_reported_whether_or_not_it_carries_a_hash(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = five_line_log(path)
    plain = json.dumps(record(7)).encode() + b"\n"
    write(path, [*lines[:3], plain, *lines[3:]])
    report = verify_chain(path)
    assert (report.ok, report.broken_line) == (False, 4)
    assert "no prev hash" in report.problem
    # A forger who hashes the previous line still breaks the line after the insertion.
    forged = json.dumps({**record(7), "prev": sha(lines[2].rstrip(b"\n"))}).encode() + b"\n"
    write(path, [*lines[:3], forged, *lines[3:]])
    report = verify_chain(path)
    assert (report.ok, report.broken_line) == (False, 4)
    assert "line 4 inserted: line 5 chains to line 3" in report.problem


def test_a_removed_first_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = five_line_log(path)
    write(path, lines[1:])
    report = verify_chain(path)
    assert (report.ok, report.broken_line) == (False, 1)


def test_an_old_log_without_hashes_is_accepted_up_to_its_first_hashed_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    legacy = [json.dumps(record(n)).encode() + b"\n" for n in (1, 2)]
    write(path, legacy)
    report = verify_chain(path)
    assert (report.ok, report.legacy_lines, report.lines) == (True, 2, 2)
    AuditLog(path).append([record(3)])
    lines = path.read_bytes().splitlines()
    assert json.loads(lines[2])["prev"] == sha(lines[1])  # the chain starts at the old tail
    report = verify_chain(path)
    assert (report.ok, report.legacy_lines, report.lines) == (True, 2, 3)
    assert "chain starts at line 3" in report.describe(path)
    # Editing a legacy line just before the chain start is still caught.
    write(path, [legacy[0], legacy[1].replace(b"record 2", b"record 8"), lines[2] + b"\n"])
    assert verify_chain(path).broken_line == 2


def test_a_torn_tail_is_not_tampering_before_or_after_its_repair(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    five_line_log(path)
    with path.open("ab") as handle:
        handle.write(b'{"kind": "outcome", "id": "torn", "sta')  # kill -9 mid-append
    report = verify_chain(path)
    assert report.ok and report.torn_tail and "torn append" in report.describe(path)
    AuditLog(path).append([record(7)])
    lines = path.read_bytes().splitlines()
    repair = json.loads(lines[6])
    assert repair["kind"] == "repair" and repair["line"] == 6
    assert repair["prev"] == sha(lines[5])  # the repair line chains to the torn bytes
    assert json.loads(lines[7])["prev"] == sha(lines[6])
    assert verify_chain(path).ok
    # The torn bytes are covered too: editing them breaks the chain at the repair line.
    edited = path.read_bytes().replace(b'"id": "torn"', b'"id": "nope"')
    path.write_bytes(edited)
    assert verify_chain(path).broken_line == 6


def test_a_non_json_line_in_the_middle_is_tampering(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = five_line_log(path)
    lines[2] = b"garbage\n"
    write(path, lines)
    report = verify_chain(path)
    assert (report.ok, report.broken_line) == (False, 3)
    assert "not valid JSON" in report.problem


def test_a_missing_log_is_an_empty_intact_chain(tmp_path: Path) -> None:
    report = verify_chain(tmp_path / "none.jsonl")
    assert (report.ok, report.lines) == (True, 0)


def test_the_last_line_is_read_from_the_end_even_when_longer_than_a_chunk(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append([outcome_record("big", "verified", "x" * 10_000)])
    log.append([record(2)])
    lines = path.read_bytes().splitlines()
    assert json.loads(lines[1])["prev"] == sha(lines[0])
    assert verify_chain(path).ok


def test_flags_history_warns_naming_the_broken_line_and_strict_exits_4(flag_file: Path) -> None:
    from tests.flags.test_flags_cli import rollout

    uri = f"flagd-file:{flag_file}"
    for percent in ("5", "25"):
        assert (
            rollout("cohort", "blended_recall", percent, "--reason", "ramp", uri=uri).returncode
            == 0
        )
    audit = flag_file.parent / (flag_file.name + ".audit.jsonl")
    lines = audit.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"reason": "ramp"', b'"reason": "rump"')
    audit.write_bytes(b"".join(lines))
    shown = rollout("history", uri=uri)
    assert shown.returncode == 0
    assert "cannot be trusted: hash chain broken at line 1" in shown.stderr
    assert rollout("history", "--strict", uri=uri).returncode == 4


def test_audit_verify_command_reports_legacy_lines_and_exit_status(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "audit.jsonl"
    path.write_bytes(json.dumps(record(1)).encode() + b"\n")
    AuditLog(path).append([record(2)])

    def verify(*args: str) -> subprocess.CompletedProcess[str]:
        root = Path(__file__).resolve().parents[2]
        return subprocess.run(
            [sys.executable, "-m", "pytest_rollout", "audit", "verify", *args],
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    done = verify(str(path))
    assert done.returncode == 0, done.stderr
    assert "lines 1-1 have no hashes" in done.stdout and "chain starts at line 2" in done.stdout
    as_json = json.loads(verify(str(path), "--json").stdout)
    assert (as_json["ok"], as_json["legacy_lines"], as_json["lines"]) == (True, 1, 2)
    assert verify(str(tmp_path / "missing.jsonl")).returncode == 2
