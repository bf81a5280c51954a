"""Verify the hash chain of a flag audit log (``rollout audit verify``).

Each line written by :meth:`~pytest_rollout.flags.audit.AuditLog.append` carries ``"prev"``,
the sha256 of the previous line's bytes (the first line: of ``CHAIN_HEADER``).  Verification
walks the file once and stops at the first line that breaks the chain:

* a line whose ``prev`` is not the previous line's hash: the previous line was edited or lines
  were removed between them (reported at the previous line); or, when ``prev`` names an earlier
  line, the lines in between were inserted; or, when it names a later line, lines were reordered;
* a line without ``prev`` after the first hashed line (inserted, or written by hand);
* a line that is not JSON, unless it is the unterminated last line (a torn append, which the
  next append repairs) or a repair line names it (then the repair line chains to its bytes).

Leading lines without ``prev`` are a log written before the chain existed: they are accepted and
counted (``legacy_lines``).  A chain cannot show that lines were cut off the end, or that the very
last line was edited: :attr:`ChainReport.head` is the last line's hash, to keep elsewhere
(a ticket, the decision record) and compare later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_rollout.flags.audit import CHAIN_HEADER, line_hash


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify_chain` found; ``broken_line`` is 1-based, as an editor shows it."""

    ok: bool
    broken_line: int | None
    problem: str  # what is wrong and what to do, "" when ok
    legacy_lines: int  # leading lines without "prev", accepted as written before the chain
    lines: int
    head: str = ""  # hash of the last whole line: pin it to detect a cut or edited tail
    torn_tail: bool = False  # the last line is an unterminated torn append, awaiting repair

    def describe(self, path: Path | str) -> str:
        """One paragraph for people: the verdict, the legacy part, the head."""
        if not self.ok:
            return f"audit log {path}: chain BROKEN at line {self.broken_line}: {self.problem}"
        parts = [f"audit log {path}: chain intact ({self.lines} lines)"]
        if self.legacy_lines:
            parts.append(
                f"lines 1-{self.legacy_lines} have no hashes (written before the chain "
                f"existed) and are accepted unverified; the chain starts at line "
                f"{self.legacy_lines + 1}"
                if self.legacy_lines < self.lines
                else f"none of its {self.lines} lines has a hash (a log written before the "
                "chain existed): nothing is verified until the next append starts the chain"
            )
        if self.torn_tail:
            parts.append(
                f"line {self.lines} is a torn append (a crash); the next append repairs it"
            )
        if self.head:
            parts.append(f"head {self.head}")
        return "; ".join(parts)


def _json(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _NOT_JSON


_NOT_JSON = object()


def verify_chain(path: Path) -> ChainReport:
    """Check every line's ``prev``; a missing file is an empty, intact log."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ChainReport(True, None, "", 0, 0)
    lines = raw.split(b"\n")
    torn = lines[-1] != b""  # an unterminated last line: a crash mid-append
    if not torn:
        lines.pop()
    count = len(lines)
    hashes = [line_hash(line) for line in lines]
    values = [_json(line) for line in lines]
    repaired = {
        v["line"]
        for v in values
        if isinstance(v, dict) and v.get("kind") == "repair" and isinstance(v.get("line"), int)
    }
    legacy = 0
    while legacy < count and not _has_prev(values[legacy]):
        legacy += 1

    def broken(line: int, problem: str) -> ChainReport:
        return ChainReport(False, line, problem, legacy, count)

    # hash -> 1-based line number; 0 is the header (the start of a log written with the chain)
    seen: dict[str, int] = {line_hash(CHAIN_HEADER): 0} if legacy == 0 else {}
    for index in range(legacy):
        seen.setdefault(hashes[index], index + 1)
    later = {h: i + 1 for i, h in reversed(list(enumerate(hashes)))}
    fix = "restore the log from a backup or find who changed it; `rollout flags history`, "
    fix += "sign-off gates and the phase start do not trust it until then"
    for index in range(legacy, count):
        number = index + 1
        value = values[index]
        if value is _NOT_JSON:
            if number in repaired or (torn and number == count):
                seen.setdefault(hashes[index], number)
                continue  # a torn append: its bytes are chained by the repair line after it
            return broken(number, f"line {number} is not valid JSON (edited or corrupted); {fix}")
        if not _has_prev(value):
            return broken(
                number,
                f"line {number} has no prev hash although line {legacy + 1} starts the chain: "
                f"it was inserted or rewritten; {fix}",
            )
        prev = value["prev"]
        expected = line_hash(CHAIN_HEADER) if index == 0 else hashes[index - 1]
        if prev != expected:
            return _classify(number, prev, seen, later, legacy, count, fix)
        seen.setdefault(hashes[index], number)
    head = hashes[-1] if count and not torn else (hashes[-2] if count > 1 else "")
    return ChainReport(True, None, "", legacy, count, head=head, torn_tail=torn and count > 0)


def _has_prev(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("prev"), str)


def _classify(
    number: int,
    prev: str,
    seen: dict[str, int],
    later: dict[str, int],
    legacy: int,
    count: int,
    fix: str,
) -> ChainReport:
    """Name the likely tampering at line ``number`` from which line its ``prev`` points to."""
    earlier = seen.get(prev)
    if earlier is not None:
        first = earlier + 1
        span = f"line {first}" if first == number - 1 else f"lines {first}-{number - 1}"
        where = f"line {earlier}" if earlier else "the start of the log"
        return ChainReport(
            False,
            first,
            f"{span} inserted: line {number} chains to {where}; {fix}",
            legacy,
            count,
        )
    moved = later.get(prev)
    if moved is not None and moved >= number:
        return ChainReport(
            False,
            number,
            f"lines reordered: line {number} chains to line {moved}, which comes after it; {fix}",
            legacy,
            count,
        )
    previous = number - 1
    if previous < 1:
        problem = f"line 1 does not chain to the log's header: lines before it were removed; {fix}"
        return ChainReport(False, 1, problem, legacy, count)
    return ChainReport(
        False,
        previous,
        f"line {number} does not chain to line {previous}: line {previous} was edited, or lines "
        f"between {previous} and {number} were removed; {fix}",
        legacy,
        count,
    )


def chain_warning(path: Path, prog: str) -> str | None:
    """The warning of a command that reads a log whose chain is broken, or None if intact."""
    report = verify_chain(path)
    if report.ok:
        return None
    return (
        f"{prog}: warning: audit log {str(path)!r} cannot be trusted: hash chain broken at line "
        f"{report.broken_line}: {report.problem} (`rollout audit verify {path}`)"
    )
