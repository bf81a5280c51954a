"""``rollout verify DECISION.json``: check a decision record's digest and print the decision."""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pytest_rollout.decision import digest_of

EXIT_OK, EXIT_MISMATCH, EXIT_UNREADABLE = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check a decision record's digest and print the decision",
        description="Recompute the sha256 digest of a decision record (written with "
        "--rollout-decision-json) and print what was decided. Exit 0 when the digest matches, "
        "1 when the record was changed after it was written, 2 when it cannot be read.",
    )
    parser.add_argument(
        "record", metavar="DECISION.json", type=Path, help="decision record to verify"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the verdict line")


def run(args: argparse.Namespace) -> int:
    return verify_file(args.record, out=sys.stdout, quiet=bool(args.quiet))


@dataclass(frozen=True)
class RecordCheck:
    """The verdict on one decision record's digest (what ``rollout verify`` prints)."""

    status: int  # EXIT_OK, EXIT_MISMATCH or EXIT_UNREADABLE
    record: dict[str, Any] | None  # the content as read (not trustworthy unless ok)
    problem: str = ""  # why it is not ok, "" when it is
    recorded: str = ""  # the digest the record carries
    expected: str = ""  # the digest of its content

    @property
    def ok(self) -> bool:
        return self.status == EXIT_OK


def check_record(path: Path) -> RecordCheck:
    """Read ``path`` and recompute its digest; never raises for a bad or unreadable file."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return RecordCheck(EXIT_UNREADABLE, None, str(exc))
    if not isinstance(record, dict) or not isinstance(record.get("digest"), str):
        record = record if isinstance(record, dict) else None
        return RecordCheck(EXIT_UNREADABLE, record, "not a decision record (no digest field)")
    expected = digest_of(record)
    if record["digest"] != expected:
        return RecordCheck(
            EXIT_MISMATCH,
            record,
            "the record was changed after it was written",
            recorded=record["digest"],
            expected=expected,
        )
    return RecordCheck(EXIT_OK, record, recorded=expected, expected=expected)


def verify_file(path: Path, *, out: TextIO, quiet: bool = False) -> int:
    check = check_record(path)
    where = _clean(str(path))
    if check.status == EXIT_UNREADABLE:
        out.write(f"UNREADABLE {where}: {_clean(check.problem)}\n")
    elif check.status == EXIT_MISMATCH and check.record is not None:
        out.write(
            f"MISMATCH {where}: {check.problem}\n"
            f"  recorded digest: {_clean(check.recorded)}\n"
            f"  content digest:  {check.expected}\n"
        )
        if not quiet:
            out.write(
                _describe(check.record, heading="content as it stands now (not trustworthy):")
            )
    elif check.record is not None:
        out.write(f"OK {where}: digest {check.expected} matches\n")
        if not quiet:
            out.write(_describe(check.record))
    return check.status


def _describe(record: dict[str, Any], heading: str = "") -> str:
    lines = [heading] if heading else []
    lines.append(
        f"{_clean(record.get('phase'))}: {_clean(record.get('decision'))} — "
        f"{_clean(record.get('reason', ''))}"
    )
    window = record.get("window") or {}
    lines.append(
        f"  evaluated at {_clean(record.get('evaluated_at'))}, window "
        f"{_clean(window.get('start'))} .. {_clean(window.get('end'))}, environment "
        f"{_clean(record.get('environment') or '(none)')}"
    )
    for gate in record.get("gates") or []:
        if not isinstance(gate, dict):
            continue
        kind = "abort trigger" if gate.get("kind") == "abort" else "criterion"
        reason = f" — {_clean(gate.get('reason'))}" if gate.get("reason") else ""
        lines.append(
            f"  {_clean(gate.get('outcome', '?')).upper():<12} {kind:<13} "
            f"{_clean(gate.get('nodeid'))}{reason}"
        )
    for action in record.get("actions") or []:
        if isinstance(action, dict):
            lines.append(
                f"  ACTION {_clean(action.get('action'))}: {_clean(action.get('result'))}"
                f" at {_clean(action.get('at'))}"
            )
    return "\n".join(lines) + "\n"


def _clean(value: Any) -> str:
    """One line, no terminal control sequences, from a record someone may have crafted."""
    text = "" if value is None else str(value)
    return "".join(
        ch if ch == " " or unicodedata.category(ch)[0] not in "CZ" else f"\\u{ord(ch):04x}"
        for ch in text
    )
