"""Reading and writing flagd files: atomic writes serialised by a file lock ``<path>.lock``.

Writes are atomic (temp file, fsync, ``os.replace``, directory fsync), so a reader or a crash
sees either the old or the new file, never a torn one.  The format itself is in
:mod:`pytest_rollout.flags.flagd_format`; auditing and verification are the controller's
(:mod:`pytest_rollout.flags.flagd_file`).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytest_rollout.files import write_text_atomically
from pytest_rollout.flags.base import FlagBackendError, FlagFormatError, FlagState
from pytest_rollout.flags.flagd_format import (
    CHANGE_ID_KEY,
    change_id_of,
    parse_flags,
    plan_changes,
)

__all__ = [
    "read_document",
    "read_flags",
    "write_document_atomically",
    "locked_update",
    "apply_changes",
]

LOCK_TIMEOUT_S = 30.0


def read_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed flagd JSON document; FlagFormatError/FlagBackendError say what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FlagBackendError(f"cannot read flag file {os.fspath(path)!r}: {exc}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FlagFormatError(f"flag file {os.fspath(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise FlagFormatError(f"flag file {os.fspath(path)!r} is not a JSON object")
    return document


def read_flags(path: str | os.PathLike[str]) -> dict[str, FlagState]:
    """Boolean, cohort and number flags defined in a flagd file (other flags are left out)."""
    document = read_document(path)
    try:
        return parse_flags(document)
    except FlagFormatError as exc:
        raise FlagFormatError(f"flag file {os.fspath(path)!r}: {exc}") from exc


def write_document_atomically(path: Path, document: Mapping[str, Any]) -> None:
    """Temp file in the same directory, fsync, os.replace, fsync the directory.

    A reader (or a crash) sees either the old or the new file, never a torn one.
    """
    write_text_atomically(
        path, json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n"
    )


def _remove_orphaned_temp_files(path: Path) -> None:
    # Only called under the lock: no live writer has a temp file, so any left is a dead one's.
    for orphan in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            orphan.unlink()


def _refuse_read_only(path: Path) -> None:
    """Raise FlagBackendError unless the flag file itself may be written.

    ``os.replace`` needs only a writable directory, and root passes every ``os.access`` check,
    so the file's own owner-write bit is what tells us someone meant it not to change.
    """
    mode = os.stat(path).st_mode
    if mode & stat.S_IWUSR and os.access(path, os.W_OK):
        return
    shown = os.fspath(path)
    why = "is read-only" if not mode & stat.S_IWUSR else "is not writable by this user"
    raise FlagBackendError(
        f"flag file {shown!r} {why} (mode {stat.S_IMODE(mode):04o}): refusing to replace it. "
        f"Run 'chmod u+w {shown}' if its flags are meant to change, or point "
        "--flags at a writable flag file"
    )


def lock_path(path: str | os.PathLike[str]) -> str:
    return os.fspath(path) + ".lock"


def locked_update(
    path: str | os.PathLike[str],
    changes: Mapping[str, object],
    *,
    before_replace: Callable[[dict[str, Any], dict[str, FlagState], dict[str, FlagState]], None]
    | None = None,
    after_replace: Callable[[dict[str, FlagState]], None] | None = None,
    change_id: str | None = None,
    dry_run: bool = False,
) -> tuple[dict[str, FlagState], dict[str, FlagState], str | None]:
    """Read, validate, (hook), write atomically, (hook), all under ``<path>.lock``.

    ``before_replace(old_document, before, after)`` runs after validation and before the new
    file replaces the old one: the audit log appends its lines there, so a change that took
    effect always has its audit line.  ``after_replace(after)`` runs once the new file is in
    place, still under the lock, so a read-back sees this writer's file and not a racing
    writer's.  ``change_id`` is stamped into the flag-set metadata.  Returns (before, after,
    previous change id).
    """
    from filelock import FileLock, Timeout

    target = Path(path)
    try:
        lock = FileLock(lock_path(target), timeout=LOCK_TIMEOUT_S)
        with lock:
            document = read_document(target)
            new_document, before, after = plan_changes(document, changes)
            previous_id = change_id_of(document)
            if dry_run:
                return before, after, previous_id
            if change_id is not None:
                metadata = new_document.setdefault("metadata", {})
                if not isinstance(metadata, dict):
                    raise FlagFormatError(
                        f'flag file {os.fspath(path)!r}: "metadata" is not an object'
                    )
                metadata[CHANGE_ID_KEY] = change_id
            if before_replace is not None:
                before_replace(document, before, after)
            # After the audit lines, like any failed write: the refused attempt is on record.
            _refuse_read_only(target)
            _remove_orphaned_temp_files(target)
            write_document_atomically(target, new_document)
            if after_replace is not None:
                after_replace(after)
            return before, after, previous_id
    except Timeout as exc:
        raise FlagBackendError(
            f"could not lock {lock_path(target)!r} within {LOCK_TIMEOUT_S:g} s "
            "(another writer is holding it)"
        ) from exc
    except OSError as exc:
        raise FlagBackendError(f"cannot write flag file {os.fspath(path)!r}: {exc}") from exc


def apply_changes(
    path: str | os.PathLike[str], changes: Mapping[str, bool | float]
) -> dict[str, FlagState]:
    """Apply ``changes`` to a flagd file atomically and return every managed flag's new state.

    Values follow the flag's existing type: booleans take true/false, cohorts a percent 0..100,
    numbers any finite number.  Raises FlagValueError (a ValueError) for an unknown flag, a
    wrong type or a percent outside 0..100, and then the file is untouched.  Not audited: the
    controller (``FlagdFileController``) audits; the staging service calls this directly.
    """
    _, after, _ = locked_update(path, changes)
    return after
