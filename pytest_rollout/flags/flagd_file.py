"""The flagd flag-definition file controller (``flagd-file:PATH``), the default backend.

Every change is audited and read back through the flagd provider.  The file format is in
:mod:`pytest_rollout.flags.flagd_format`, the locked atomic writes in
:mod:`pytest_rollout.flags.flagd_store`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_rollout.flags.audit import AuditLog, ChangeContext
from pytest_rollout.flags.base import (
    FlagFormatError,
    FlagState,
    FlagValue,
    FlagVerificationError,
)
from pytest_rollout.flags.controller import AuditedController, BeforeWrite
from pytest_rollout.flags.flagd_format import change_id_of, plan_changes
from pytest_rollout.flags.flagd_store import locked_update, read_document, read_flags
from pytest_rollout.flags.verify import verify_flagd_file

__all__ = ["FlagdFileController", "default_audit_path"]

URI_PREFIX = "flagd-file:"


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
