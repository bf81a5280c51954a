"""The part every flag backend shares: audit lines around each change, read-back verification.

A backend subclasses :class:`AuditedController` and implements ``get_all``, ``_plan`` and
``_apply``; it then gets ``set``/``set_cohort_percent``/``set_many``/``snapshot``/``restore``
with the audit rule of ``docs/flags.md`` for free.  Third-party backends (LaunchDarkly, Unleash,
an in-house service) register such a class under the entry-point group
``pytest_rollout.flag_backends``; see :mod:`pytest_rollout.flags.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pytest_rollout.flags.audit import (
    AuditedChange,
    AuditLog,
    ChangeContext,
    change_records,
    new_change_id,
    outcome_record,
)
from pytest_rollout.flags.base import (
    FlagBackendError,
    FlagError,
    FlagState,
    FlagValue,
    FlagValueError,
    FlagVerificationError,
    UnknownFlagError,
    snapshot_of,
)

# Called by a backend once the change is validated and before it can take effect:
# (before states, after states, parent change id or None).
BeforeWrite = Callable[[Mapping[str, FlagState], Mapping[str, FlagState], str | None], None]


class AuditedController(ABC):
    """Base of the built-in controllers; implements the FlagController protocol."""

    #: The URI scheme this backend serves (``flagd-file``, ``http``, ...).
    scheme: ClassVar[str] = ""
    #: True when the backend stores the change id with the flags (enables crash reconciliation).
    stamps_change_ids: ClassVar[bool] = False

    def __init__(self, uri: str, *, audit: AuditLog | None, context: ChangeContext) -> None:
        self.uri = uri
        self.audit = audit
        self.context = context
        #: Audit id of the last change this controller started (None before the first).
        self.last_change_id: str | None = None

    # -- what a backend implements --------------------------------------------------------

    @classmethod
    @abstractmethod
    def from_uri(
        cls, uri: str, *, audit_log: Path | None, context: ChangeContext
    ) -> AuditedController:
        """Build the controller for ``uri``; ``audit_log`` None means the backend's default."""

    @abstractmethod
    def get_all(self) -> dict[str, FlagState]:
        """Every boolean, cohort and number flag the backend holds."""

    @abstractmethod
    def _plan(self, changes: Mapping[str, FlagValue]) -> dict[str, FlagState]:
        """Validate ``changes`` and return the state they would produce, writing nothing."""

    @abstractmethod
    def _apply(
        self,
        changes: Mapping[str, FlagValue],
        *,
        change_id: str,
        reason: str,
        before_write: BeforeWrite,
    ) -> tuple[dict[str, FlagState], dict[str, FlagState]]:
        """Apply and read back; return (before, after) states.

        Must call ``before_write`` after validating and before the change can take effect.
        Raises FlagVerificationError if the read-back disagrees (the change took effect), other
        FlagErrors otherwise.
        """

    @abstractmethod
    def _read_back(self, expected: Mapping[str, FlagValue]) -> None:
        """Raise FlagVerificationError unless the backend now serves ``expected``."""

    def current_change_id(self) -> str | None:
        """The change id the backend carries, for backends with ``stamps_change_ids``."""
        return None

    @property
    def redacted_uri(self) -> str:
        """The URI as it may appear in logs and audit lines (no credentials)."""
        return self.uri

    # -- the FlagController protocol ------------------------------------------------------

    def get(self, name: str) -> FlagState:
        flags = self.get_all()
        if name not in flags:
            known = ", ".join(sorted(flags)) or "none"
            raise UnknownFlagError(f"unknown flag {name!r} in {self.redacted_uri} (known: {known})")
        return flags[name]

    def snapshot(self) -> dict[str, FlagValue]:
        return snapshot_of(self.get_all())

    def set(self, name: str, value: FlagValue, *, reason: str) -> FlagState:
        return self.set_many({name: value}, reason=reason)[name]

    def set_cohort_percent(self, name: str, percent: float, *, reason: str) -> FlagState:
        state = self.get(name)
        if state.type != "cohort":
            raise FlagValueError(f"flag {name!r} is a {state.type} flag, not a cohort flag")
        return self.set(name, percent, reason=reason)

    def restore(self, snapshot: Mapping[str, FlagValue], *, reason: str) -> dict[str, FlagState]:
        return self.set_many(snapshot, reason=reason)

    def verify(self, expected: Mapping[str, FlagValue]) -> None:
        self._read_back(expected)

    def set_many(
        self, changes: Mapping[str, FlagValue], *, reason: str, dry_run: bool = False
    ) -> dict[str, FlagState]:
        if not reason.strip():
            raise FlagValueError("a reason is required for every flag change (it is audited)")
        if not changes:
            return self.get_all()
        if dry_run:
            return self._plan(changes)
        change_id = new_change_id()
        self.last_change_id = change_id
        audited: list[bool] = []

        def before_write(
            before: Mapping[str, FlagState], after: Mapping[str, FlagState], parent: str | None
        ) -> None:
            if self.audit is not None:
                self.audit.append(
                    change_records(
                        change_id,
                        self.context,
                        backend=self.redacted_uri,
                        reason=reason,
                        before=before,
                        after=after,
                        flags=list(changes),
                        parent=parent,
                        with_parent=self.stamps_change_ids,
                    )
                )
            audited.append(True)

        try:
            _, after = self._apply(
                changes, change_id=change_id, reason=reason, before_write=before_write
            )
        except FlagVerificationError as exc:
            self._outcome(change_id, "unverified", str(exc))
            raise
        except FlagBackendError as exc:
            if audited:
                status = "failed" if exc.took_effect is False else "unknown"
                self._outcome(change_id, status, str(exc))
            raise
        except FlagError as exc:
            if audited:
                self._outcome(change_id, "failed", str(exc))
            raise
        self._outcome(change_id, "verified", "read back: " + _describe(after, changes))
        return after

    def history(self, *, read_backend: bool = True) -> list[AuditedChange]:
        """The audit log's changes with reconciled statuses (reads the backend if it can)."""
        if self.audit is None:
            return []
        current_id: str | None = None
        current_state: dict[str, Any] | None = None
        backend_read = False
        if read_backend:
            try:
                current_id = self.current_change_id()
                current_state = dict(self.snapshot())
                backend_read = self.stamps_change_ids
            except FlagError:
                pass  # history stays readable when the backend is down
        return self.audit.changes(
            backend_read=backend_read, current_change_id=current_id, current_state=current_state
        )

    def _outcome(self, change_id: str, status: str, message: str) -> None:
        if self.audit is not None:
            self.audit.append([outcome_record(change_id, status, message)])


def _describe(after: Mapping[str, FlagState], names: Mapping[str, object]) -> str:
    return ", ".join(f"{name}={after[name].value!r}" for name in names if name in after)
