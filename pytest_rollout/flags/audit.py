"""Append-only audit log of flag changes (JSON lines, fsync'd before the change takes effect).

Every change appends one ``"kind": "change"`` line per flag, all sharing the change ``id``::

    {"kind": "change", "id": "20261125T140000Z-3f9a1c", "time": "2026-11-25T14:00:00.123Z",
     "actor": "alice", "environment": "production", "phase": "phase2", "flag": "blended_recall",
     "type": "cohort", "before": 5.0, "after": 0.0, "reason": "p99 regression",
     "run_id": "cli-...", "backend": "flagd-file:/etc/flags.json", "parent": "<previous id>"}

and, once the backend was written and read back, one ``"kind": "outcome"`` line
(``"status"``: ``verified`` | ``unverified`` | ``failed``, plus ``"message"``).

The crash rule: change lines are appended and fsync'd *before* the change can take effect, so a
change that took effect always has its lines.  A crash in between can leave change lines for a
change that never took effect; :func:`reconcile` tells them apart (an outcome line, else the
change id the flag file carries and the ``parent`` chain, see ``docs/flags.md``).  A torn last
line (crash mid-append) is ignored: its change cannot have taken effect.  The next append ends it
and adds a ``"kind": "repair"`` line naming it, so it stays recognised.  Any other line that is
not an audit record is reported by :meth:`AuditLog.scan` with its line number, never skipped
silently: a change written there would otherwise vanish from the history.

Every line written now also carries ``"prev"``, the sha256 of the previous line's bytes (the
first line: of :data:`CHAIN_HEADER`), so an edited, removed, reordered or inserted line breaks the
chain (:mod:`pytest_rollout.flags.audit_chain` verifies it).  A repair line's ``prev`` hashes the
torn bytes it ends, so a crash mid-append never reads as tampering.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_rollout.flags.base import FlagBackendError, FlagState
from pytest_rollout.instants import rfc3339

LOCK_TIMEOUT_S = 30.0
# The first line of a log chains to the hash of these bytes (a fixed, versioned start).
CHAIN_HEADER = b"pytest-rollout audit log v1"
_TAIL_CHUNK = 4096
# Environment variables naming who acts, most specific first (CI systems, then the login).
ACTOR_VARIABLES = (
    "ROLLOUT_ACTOR",
    "GITHUB_ACTOR",
    "GITLAB_USER_LOGIN",
    "BUILD_USER_ID",
    "BUILDKITE_BUILD_CREATOR",
    "USER",
    "LOGNAME",
)


def utc_now() -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-25T14:00:00.123Z``."""
    return rfc3339(time.time(), millis=True)


def new_change_id() -> str:
    """Sortable by time, unique enough for one team's changes: ``20261125T140000Z-3f9a1c``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


UNKNOWN_ACTOR = "unknown"


def default_actor() -> str:
    """Who is acting: ROLLOUT_ACTOR, a CI identity, or the login name (else "unknown")."""
    for variable in ACTOR_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return UNKNOWN_ACTOR


def unknown_actor_warning(prog: str) -> str:
    """The warning shown when the actor resolved to "unknown", naming how to fix it."""
    return (
        f"{prog}: warning: actor unknown: none of {', '.join(ACTOR_VARIABLES)} is set, so the "
        f"audit log and decision records say 'actor: {UNKNOWN_ACTOR}'; "
        "export ROLLOUT_ACTOR=<your name> (or pass --actor to `rollout flags`)"
    )


@dataclass(frozen=True)
class ChangeContext:
    """Who changes flags, where and why the run exists; copied into every audit line."""

    actor: str
    environment: str | None = None
    phase: str | None = None
    run_id: str = ""


@dataclass(frozen=True)
class AuditedChange:
    """One change (one id) as read back from the log, with its reconciled status."""

    id: str
    time: str
    actor: str
    reason: str
    flags: dict[str, dict[str, Any]]  # flag -> {"type", "before", "after"}
    lines: tuple[dict[str, Any], ...]
    status: str  # verified | unverified | failed | applied | not-applied | unknown
    message: str = ""
    parent: str | None = None

    @property
    def before(self) -> dict[str, Any]:
        return {name: entry["before"] for name, entry in self.flags.items()}

    @property
    def after(self) -> dict[str, Any]:
        return {name: entry["after"] for name, entry in self.flags.items()}


@dataclass(frozen=True)
class CorruptLine:
    """A line of the audit log that is not an audit record (and not a recognised torn tail)."""

    line: int  # 1-based, as an editor shows it
    reason: str
    text: str  # the start of the line, for the operator to find it


@dataclass(frozen=True)
class AuditScan:
    """The parseable records of the log, in order, and the lines that could not be used."""

    records: tuple[dict[str, Any], ...]
    corrupt: tuple[CorruptLine, ...]


def repair_record(line: int) -> dict[str, Any]:
    """The line that marks line ``line`` as a torn tail ended by a later append."""
    return {
        "kind": "repair",
        "line": line,
        "time": utc_now(),
        "message": f"line {line} was torn by a crash mid-append and is ignored",
    }


def _parse(line: bytes) -> tuple[object, bool]:
    """(value, True) for a JSON line, (None, False) otherwise."""
    try:
        return json.loads(line), True
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, False


@dataclass
class AuditLog:
    """An append-only JSON-lines file; appends are serialised by ``<path>.lock`` and fsync'd."""

    path: Path
    lock_timeout_s: float = field(default=LOCK_TIMEOUT_S)

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append ``records`` in one write and fsync before returning."""
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.path) + ".lock", timeout=self.lock_timeout_s):
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    # Under the lock: the previous line is final, so each record can chain to it.
                    data, prev = self._torn_tail_repair(fd)
                    for record in records:
                        line = chain_line(record, prev)
                        data += line + b"\n"
                        prev = line_hash(line)
                    written = 0
                    while written < len(data):
                        written += os.write(fd, data[written:])
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except Timeout as exc:
            raise FlagBackendError(
                f"could not lock audit log {str(self.path)!r} within {self.lock_timeout_s:g} s"
            ) from exc
        except OSError as exc:
            raise FlagBackendError(f"cannot append to audit log {str(self.path)!r}: {exc}") from exc

    def _torn_tail_repair(self, fd: int) -> tuple[bytes, str]:
        """What to write before the next records (nothing, or the end of a torn last line), and
        the hash the next record chains to.

        A crash mid-append leaves a last line without "\n"; it is ended so the next record
        parses, and a repair line names it so :meth:`scan` keeps telling it from corruption.
        The repair line chains to the torn bytes, so the chain stays whole across the crash.
        """
        size = os.fstat(fd).st_size
        if size == 0:
            return b"", line_hash(CHAIN_HEADER)
        with open(self.path, "rb") as handle:
            last, terminated = _last_line(handle, size)
            if terminated:
                return b"", line_hash(last)  # the usual case: only the tail is read
            if _parse(last)[1]:
                return b"\n", line_hash(last)  # the crash came just before the newline
            handle.seek(0)
            number = handle.read(size).count(b"\n") + 1
        repair = chain_line(repair_record(number), line_hash(last))
        return b"\n" + repair + b"\n", line_hash(repair)

    def scan(self) -> AuditScan:
        """Every parseable record in order, and every other line with its line number.

        A torn last line (no newline, not JSON) is a crash mid-append, as is a line a repair
        line names: neither is reported.  Blank lines carry nothing and are not reported.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AuditScan((), ())
        except OSError as exc:
            raise FlagBackendError(f"cannot read audit log {str(self.path)!r}: {exc}") from exc
        lines = raw.split(b"\n")  # the last item is b"" when the file ends with a newline
        records: list[dict[str, Any]] = []
        problems: list[CorruptLine] = []
        repaired: set[int] = set()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            value, is_json = _parse(line)
            if not is_json:
                if number < len(lines):  # the unterminated last line is a torn append
                    problems.append(CorruptLine(number, "not valid JSON", _shown(line)))
            elif isinstance(value, dict) and _is_repair(value):
                repaired.add(value["line"])
            elif isinstance(value, dict) and isinstance(value.get("id"), str):
                records.append(value)
            else:
                reason = 'not an audit record (a JSON object with a string "id")'
                problems.append(CorruptLine(number, reason, _shown(line)))
        corrupt = tuple(p for p in problems if p.line not in repaired)
        return AuditScan(tuple(records), corrupt)

    def records(self) -> list[dict[str, Any]]:
        """Every parseable record in order; :meth:`scan` also says which lines were unusable."""
        return list(self.scan().records)

    def changes(
        self,
        *,
        backend_read: bool = False,
        current_change_id: str | None = None,
        current_state: Mapping[str, Any] | None = None,
    ) -> list[AuditedChange]:
        """Changes in log order, each with its status reconciled (see :func:`reconcile`)."""
        return reconcile(
            self.records(),
            backend_read=backend_read,
            current_change_id=current_change_id,
            current_state=current_state,
        )


def line_hash(line: bytes) -> str:
    """The hex sha256 a following line carries as ``prev`` (``line`` without its newline)."""
    return hashlib.sha256(line).hexdigest()


def chain_line(record: Mapping[str, Any], prev: str) -> bytes:
    """One record as a log line (no newline), chained to the line before by ``prev``."""
    return json.dumps({**record, "prev": prev}, allow_nan=False).encode("utf-8")


def _last_line(handle: Any, size: int) -> tuple[bytes, bool]:
    """(the file's last line without its newline, whether it ends in one), read from the end."""
    terminated = False
    end = size
    handle.seek(size - 1)
    if handle.read(1) == b"\n":
        terminated, end = True, size - 1
    tail = b""
    position = end
    while position > 0:
        step = min(_TAIL_CHUNK, position)
        position -= step
        handle.seek(position)
        tail = handle.read(step) + tail
        cut = tail.rfind(b"\n")  # tail holds bytes [position, end): no final newline
        if cut != -1:
            return tail[cut + 1 :], terminated
    return tail, terminated


def _is_repair(record: Mapping[str, Any]) -> bool:
    line = record.get("line")
    return record.get("kind") == "repair" and isinstance(line, int) and not isinstance(line, bool)


def _shown(line: bytes, limit: int = 80) -> str:
    text = line.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "..."


def change_records(
    change_id: str,
    context: ChangeContext,
    *,
    backend: str,
    reason: str,
    before: Mapping[str, FlagState],
    after: Mapping[str, FlagState],
    flags: Iterable[str],
    parent: str | None,
    with_parent: bool = True,
) -> list[dict[str, Any]]:
    """The ``"kind": "change"`` lines of one change, one per flag.

    ``parent`` (the change id the backend carried before) is written only for backends that
    stamp ids (``with_parent``); its absence tells :func:`reconcile` there is no chain.
    """
    time = utc_now()
    records = [
        {
            "kind": "change",
            "id": change_id,
            "time": time,
            "actor": context.actor,
            "environment": context.environment,
            "phase": context.phase,
            "flag": name,
            "type": after[name].type,
            "before": before[name].value,
            "after": after[name].value,
            "reason": reason,
            "run_id": context.run_id,
            "backend": backend,
        }
        for name in flags
    ]
    if with_parent:
        for record in records:
            record["parent"] = parent
    return records


def outcome_record(change_id: str, status: str, message: str) -> dict[str, Any]:
    return {
        "kind": "outcome",
        "id": change_id,
        "time": utc_now(),
        "status": status,
        "message": message,
    }


def _state_matches(expected: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    for name, value in expected.items():
        if name not in current:
            return False
        have = current[name]
        if isinstance(value, bool) or isinstance(have, bool):
            if value != have:
                return False
        elif abs(float(value) - float(have)) > 1e-6:
            return False
    return True


def reconcile(
    records: Sequence[Mapping[str, Any]],
    *,
    backend_read: bool = False,
    current_change_id: str | None = None,
    current_state: Mapping[str, Any] | None = None,
) -> list[AuditedChange]:
    """Group lines into changes and decide, for each, whether it took effect.

    * An outcome line decides (verified / unverified / failed).
    * Otherwise the writer died between its audit append and its outcome.  Backends that stamp
      change ids (their lines carry ``parent``): the change took effect ("applied") if the
      backend still carries its id or a later change names it as ``parent``, else
      "not-applied"; for the last change that needs ``backend_read`` (the caller read
      ``current_change_id`` from the backend), else "unknown".
    * Backends without ids: the last change is "applied" when ``current_state`` shows its
      values, else "unknown".
    """
    grouped: dict[str, list[dict[str, Any]]] = {}
    outcomes: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if record.get("kind") == "outcome":
            outcomes[record["id"]] = record
        elif record.get("kind") == "change" and isinstance(record.get("flag"), str):
            grouped.setdefault(record["id"], []).append(dict(record))
    order = list(grouped)
    later_parents: dict[str, set[str]] = {}
    seen: set[str] = set()
    for change_id in reversed(order):
        later_parents[change_id] = set(seen)
        parent = grouped[change_id][0].get("parent")
        if isinstance(parent, str):
            seen.add(parent)
    changes = []
    for position, change_id in enumerate(order):
        lines = grouped[change_id]
        first = lines[0]
        flags = {
            line["flag"]: {
                "type": line.get("type"),
                "before": line.get("before"),
                "after": line.get("after"),
            }
            for line in lines
        }
        is_last = position == len(order) - 1
        outcome = outcomes.get(change_id)
        if outcome is not None:
            status = str(outcome.get("status", "unknown"))
            message = str(outcome.get("message", ""))
        elif "parent" in first:
            if change_id == current_change_id or change_id in later_parents[change_id]:
                status, message = "applied", "writer stopped after the change took effect"
            elif not is_last or backend_read:
                status, message = "not-applied", "writer stopped before the change took effect"
            else:
                status, message = "unknown", "writer stopped; backend not read"
        elif is_last and current_state is not None:
            if _state_matches({k: v["after"] for k, v in flags.items()}, current_state):
                status, message = "applied", "writer stopped; the backend shows the new values"
            else:
                status, message = "unknown", "writer stopped; the backend shows other values"
        else:
            status, message = "unknown", "writer stopped before recording the outcome"
        parent = first.get("parent")
        changes.append(
            AuditedChange(
                id=change_id,
                time=str(first.get("time", "")),
                actor=str(first.get("actor", "")),
                reason=str(first.get("reason", "")),
                flags=flags,
                lines=tuple(lines),
                status=status,
                message=message,
                parent=parent if isinstance(parent, str) else None,
            )
        )
    return changes
