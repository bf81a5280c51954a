"""The flagd flag-definition file backend (``flagd-file:PATH``), the default.

File format (flagd JSON, https://flagd.dev/schema/v0/flags.json):

* boolean: ``{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}``
* cohort:  like boolean with ``"defaultVariant": "off"`` and
  ``"targeting": {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "space_id"}]},
  ["on", P], ["off", 100 - P]]}``.  flagd only accepts integer weights, so a percent with a
  fractional part (2.5) is written as ``["on", 250], ["off", 9750]`` (basis points); both forms
  put a space in the "on" cohort exactly when ``murmur3(key) < P/100 * 2**32``, so cohorts only
  grow when P grows ("on" stays the first variant).
* number:  ``{"state": "ENABLED", "variants": {"value": 0.3}, "defaultVariant": "value"}``

Anything else in the file (other flags, unknown keys, ``$evaluators``, ``metadata``) survives a
rewrite.  Writes are atomic (temp file, fsync, ``os.replace``, directory fsync) and serialised by
a file lock ``<path>.lock``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytest_rollout.flags.audit import AuditLog, ChangeContext
from pytest_rollout.flags.base import (
    FlagBackendError,
    FlagFormatError,
    FlagState,
    FlagValue,
    FlagVerificationError,
    UnknownFlagError,
    coerce_value,
)
from pytest_rollout.flags.controller import AuditedController, BeforeWrite

__all__ = [
    "SCHEMA_URL",
    "CHANGE_ID_KEY",
    "LOCK_TIMEOUT_S",
    "FlagState",
    "read_flags",
    "apply_changes",
    "read_document",
    "parse_flags",
    "change_id_of",
    "cohort_definition",
    "FlagdFileController",
    "URI_PREFIX",
]

URI_PREFIX = "flagd-file:"

SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json"
# Flag-set metadata key stamping the audit change id of the last audited write; flagd accepts
# string metadata and ignores it, and the audit log uses it to tell whether a change took effect.
CHANGE_ID_KEY = "rolloutChangeId"
LOCK_TIMEOUT_S = 30.0
# Integer percents keep the documented [on, P], [off, 100-P] form; others go to basis points.
_FINE_SCALE = 10_000
_BUCKET_BY: dict[str, Any] = {"cat": [{"var": "$flagd.flagKey"}, {"var": "space_id"}]}
_BOOL_VARIANTS = {"on": True, "off": False}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cohort_percent(targeting: object) -> float | None:
    """The "on" percent of a two-variant fractional rule, or None if it is not that shape."""
    if not isinstance(targeting, dict) or set(targeting) != {"fractional"}:
        return None
    args = targeting["fractional"]
    if not isinstance(args, list) or len(args) != 3:
        return None
    on, off = args[1], args[2]
    if not (isinstance(on, list) and isinstance(off, list) and len(on) == 2 and len(off) == 2):
        return None
    if on[0] != "on" or off[0] != "off" or not _is_number(on[1]) or not _is_number(off[1]):
        return None
    on_weight, off_weight = float(on[1]), float(off[1])
    if on_weight < 0 or off_weight < 0 or on_weight + off_weight <= 0:
        return None
    return round(100.0 * on_weight / (on_weight + off_weight), 6)


def _classify(name: str, definition: object) -> FlagState | None:
    """A FlagState for flags this tool manages; None for flags it leaves alone."""
    if not isinstance(definition, dict) or definition.get("state") != "ENABLED":
        return None
    variants = definition.get("variants")
    default = definition.get("defaultVariant")
    if not isinstance(variants, dict) or default not in variants:
        return None
    targeting = definition.get("targeting")
    if variants == _BOOL_VARIANTS:
        if targeting in (None, {}):
            return FlagState(name, "boolean", bool(variants[default]))
        percent = _cohort_percent(targeting)
        if percent is not None:
            return FlagState(name, "cohort", percent)
        return None
    if targeting in (None, {}) and variants and all(_is_number(v) for v in variants.values()):
        return FlagState(name, "number", float(variants[default]))
    return None


def parse_flags(document: Mapping[str, Any]) -> dict[str, FlagState]:
    """Boolean, cohort and number flags of a parsed flagd document (others are left out)."""
    flags = document.get("flags")
    if not isinstance(flags, dict):
        raise FlagFormatError('flagd document has no "flags" object')
    states = {}
    for name, definition in flags.items():
        state = _classify(name, definition)
        if state is not None:
            states[name] = state
    return states


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


def change_id_of(document: Mapping[str, Any]) -> str | None:
    """The audit change id stamped by the last audited write, if any."""
    metadata = document.get("metadata")
    if isinstance(metadata, dict):
        value = metadata.get(CHANGE_ID_KEY)
        if isinstance(value, str):
            return value
    return None


def _weights(percent: float) -> tuple[int, int]:
    if float(percent).is_integer():
        on = int(percent)
        return on, 100 - on
    on = round(percent * _FINE_SCALE / 100)
    return on, _FINE_SCALE - on


def cohort_definition(percent: float) -> dict[str, Any]:
    """A fresh cohort flag definition with ``percent`` of spaces "on"."""
    on, off = _weights(percent)
    return {
        "state": "ENABLED",
        "variants": dict(_BOOL_VARIANTS),
        "defaultVariant": "off",
        "targeting": {"fractional": [json.loads(json.dumps(_BUCKET_BY)), ["on", on], ["off", off]]},
    }


def _rewrite(definition: dict[str, Any], state: FlagState, value: FlagValue) -> None:
    """Change ``definition`` in place to carry ``value``, keeping keys this tool does not own."""
    if state.type == "boolean":
        definition["defaultVariant"] = "on" if value else "off"
    elif state.type == "cohort":
        on, off = _weights(float(value))
        # Keep the existing bucketing expression: changing it would reshuffle the cohorts.
        bucket_by = definition["targeting"]["fractional"][0]
        definition["targeting"] = {"fractional": [bucket_by, ["on", on], ["off", off]]}
    else:
        number = float(value)
        stored: float | int = int(number) if number.is_integer() else number
        variants: dict[str, Any] = definition["variants"]
        for key, existing in variants.items():
            if existing == number:  # an existing named variant already has this value
                definition["defaultVariant"] = key
                return
        variants["value"] = stored
        definition["defaultVariant"] = "value"


def plan_changes(
    document: Mapping[str, Any], changes: Mapping[str, object]
) -> tuple[dict[str, Any], dict[str, FlagState], dict[str, FlagState]]:
    """Validate ``changes`` against ``document``; return (new document, before, after states).

    Pure: nothing is written.  Raises FlagValueError (a ValueError) for unknown flags, wrong
    types or percents outside 0..100, naming the flag.
    """
    before = parse_flags(document)
    new_document: dict[str, Any] = json.loads(json.dumps(document))
    for name, raw in changes.items():
        state = before.get(name)
        if state is None:
            known = ", ".join(sorted(before)) or "none"
            raise UnknownFlagError(
                f"unknown flag {name!r}: not a boolean, cohort or number flag in this file "
                f"(known: {known})"
            )
        value = coerce_value(state, raw)
        _rewrite(new_document["flags"][name], state, value)
    after = parse_flags(new_document)
    return new_document, before, after


def write_document_atomically(path: Path, document: Mapping[str, Any]) -> None:
    """Temp file in the same directory, fsync, os.replace, fsync the directory.

    A reader (or a crash) sees either the old or the new file, never a torn one.
    """
    text = json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n"
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):  # keep the old file's permissions
            os.chmod(tmp_name, os.stat(path).st_mode & 0o777)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(directory)


def _remove_orphaned_temp_files(path: Path) -> None:
    # Only called under the lock: no live writer has a temp file, so any left is a dead one's.
    for orphan in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            orphan.unlink()


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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


class FlagdFileController(AuditedController):
    """``flagd-file:PATH``: a flagd JSON file, audited, verified through the flagd provider.

    The default audit log is ``<PATH>.audit.jsonl`` next to the flag file.
    """

    scheme = "flagd-file"
    stamps_change_ids = True

    def __init__(
        self, path: str | os.PathLike[str], *, audit: AuditLog | None, context: ChangeContext
    ) -> None:
        self.path = Path(path)
        super().__init__(URI_PREFIX + os.fspath(path), audit=audit, context=context)

    @classmethod
    def from_uri(
        cls, uri: str, *, audit_log: Path | None, context: ChangeContext
    ) -> FlagdFileController:
        if not uri.startswith(URI_PREFIX) or not uri[len(URI_PREFIX) :]:
            raise FlagFormatError(f"not a flagd-file URI (expected flagd-file:PATH): {uri!r}")
        path = Path(uri[len(URI_PREFIX) :]).expanduser()
        if audit_log is None:
            audit_log = default_audit_path(path)
        return cls(path, audit=AuditLog(audit_log), context=context)

    def get_all(self) -> dict[str, FlagState]:
        return read_flags(self.path)

    def current_change_id(self) -> str | None:
        return change_id_of(read_document(self.path))

    def _plan(self, changes: Mapping[str, FlagValue]) -> dict[str, FlagState]:
        _, _, after = plan_changes(read_document(self.path), changes)
        return after

    def _apply(
        self,
        changes: Mapping[str, FlagValue],
        *,
        change_id: str,
        reason: str,
        before_write: BeforeWrite,
    ) -> tuple[dict[str, FlagState], dict[str, FlagState]]:
        def audit_first(
            document: dict[str, Any], before: dict[str, FlagState], after: dict[str, FlagState]
        ) -> None:
            before_write(before, after, change_id_of(document))

        def read_back(after: dict[str, FlagState]) -> None:
            self._verify_states({name: after[name].value for name in changes}, after, change_id)

        before, after, _ = locked_update(
            self.path,
            changes,
            before_replace=audit_first,
            after_replace=read_back,
            change_id=change_id,
        )
        return before, after

    def _read_back(self, expected: Mapping[str, FlagValue]) -> None:
        self._verify_states(expected, self.get_all(), None)

    def _verify_states(
        self,
        expected: Mapping[str, FlagValue],
        states: Mapping[str, FlagState],
        change_id: str | None,
    ) -> None:
        from pytest_rollout.flags.verify import verify_flagd_file

        missing = [name for name in expected if name not in states]
        if missing:
            raise FlagVerificationError(f"flags {missing} are not in {os.fspath(self.path)!r}")
        report = verify_flagd_file(self.path, expected, states, change_id=change_id)
        if not report.ok:
            raise FlagVerificationError(
                f"read-back through the flagd provider disagrees: {report.summary()}"
            )


def default_audit_path(flag_file: str | os.PathLike[str]) -> Path:
    """``<flag file>.audit.jsonl``, next to the flag file."""
    return Path(os.fspath(flag_file) + ".audit.jsonl")
