"""Flag model shared by every backend: the state of one flag, the controller protocol, errors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

FlagType = Literal["boolean", "cohort", "number"]
FlagValue = bool | float

FLAG_TYPES: tuple[FlagType, ...] = ("boolean", "cohort", "number")


@dataclass(frozen=True)
class FlagState:
    """One flag as the service sees it.

    ``value`` is a ``bool`` for boolean flags, the percentage of spaces in the "on" cohort
    (0..100) for cohort flags, and the number for numeric flags.
    """

    name: str
    type: FlagType
    value: FlagValue

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "value": self.value}


class FlagError(Exception):
    """Base class of everything the flag layer raises."""


class FlagValueError(FlagError, ValueError):
    """A requested change is invalid (unknown flag, wrong type, percent outside 0..100)."""


class UnknownFlagError(FlagValueError):
    """The flag does not exist in the backend (or is not a boolean, cohort or number flag)."""


class FlagFormatError(FlagError, ValueError):
    """The flag definition (file or API answer) cannot be understood."""


class FlagBackendError(FlagError):
    """The backend could not be read or written (I/O error, HTTP error, timeout, lock timeout).

    ``took_effect`` is False when the change certainly did not happen, None when nobody can tell
    (e.g. an HTTP request timed out after it was sent).
    """

    def __init__(self, message: str, *, took_effect: bool | None = False) -> None:
        super().__init__(message)
        self.took_effect = took_effect


class FlagVerificationError(FlagError):
    """A change was written but reading it back did not show the requested state."""


def coerce_value(flag: FlagState, raw: object) -> FlagValue:
    """Interpret ``raw`` following the type ``flag`` already has; raise FlagValueError otherwise.

    Booleans accept true/false (and 0/1); cohorts accept a percentage 0..100 (true/false mean
    100/0, so "turn it off" works for both kinds); numbers accept any finite number.
    """
    if flag.type == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int | float) and raw in (0, 1):
            return bool(raw)
        raise FlagValueError(f"flag {flag.name!r} is boolean; got {raw!r} (expected true/false)")
    if isinstance(raw, bool):
        if flag.type == "cohort":
            return 100.0 if raw else 0.0
        raise FlagValueError(f"flag {flag.name!r} is a number; got boolean {raw!r}")
    if not isinstance(raw, int | float) or not math.isfinite(raw):
        raise FlagValueError(
            f"flag {flag.name!r} is a {flag.type}; got {raw!r} (expected a number)"
        )
    value = float(raw)
    if flag.type == "cohort" and not 0.0 <= value <= 100.0:
        raise FlagValueError(f"cohort flag {flag.name!r}: percent {raw!r} is outside 0..100")
    return value


def parse_cli_value(text: str) -> bool | float:
    """Parse a value typed by a person or written in rollout.toml: true/false/on/off or a number."""
    lowered = text.strip().lower()
    if lowered in ("true", "on", "yes"):
        return True
    if lowered in ("false", "off", "no"):
        return False
    try:
        value = float(lowered.rstrip("%"))
    except ValueError:
        raise FlagValueError(
            f"cannot read {text!r} as a flag value (true/false or a number)"
        ) from None
    if not math.isfinite(value):
        raise FlagValueError(f"flag value {text!r} is not finite")
    return value


def snapshot_of(states: Mapping[str, FlagState]) -> dict[str, FlagValue]:
    """JSON-friendly ``{name: value}`` in name order."""
    return {name: states[name].value for name in sorted(states)}


@runtime_checkable
class FlagController(Protocol):
    """What the plugin and the CLI need from a flag backend.

    Implementations audit every change they make and verify it by reading it back; ``set_many``
    either takes effect completely and is audited, or raises without changing anything (a
    verification failure is raised after the change took effect, and is audited as such).
    """

    uri: str

    def get(self, name: str) -> FlagState:
        """One flag; UnknownFlagError if it does not exist."""
        ...

    def get_all(self) -> dict[str, FlagState]:
        """Every flag the backend manages."""
        ...

    def set(self, name: str, value: FlagValue, *, reason: str) -> FlagState:
        """Set a boolean or number flag (or a cohort's percent), audited and verified."""
        ...

    def set_cohort_percent(self, name: str, percent: float, *, reason: str) -> FlagState:
        """Set the share of spaces in a cohort flag's "on" cohort (0..100)."""
        ...

    def set_many(
        self, changes: Mapping[str, FlagValue], *, reason: str, dry_run: bool = False
    ) -> dict[str, FlagState]:
        """Apply several changes atomically; return the full new state (or the would-be state)."""
        ...

    def snapshot(self) -> dict[str, FlagValue]:
        """JSON-friendly ``{name: value}`` of every flag, for decision records."""
        ...

    def restore(self, snapshot: Mapping[str, FlagValue], *, reason: str) -> dict[str, FlagState]:
        """Bring the flags named in ``snapshot`` back to those values (audited, verified)."""
        ...

    def verify(self, expected: Mapping[str, FlagValue]) -> None:
        """Read back and raise FlagVerificationError unless the backend shows ``expected``."""
        ...

    def current_change_id(self) -> str | None:
        """The audit change id the backend says it last applied, if it can tell (else None)."""
        ...
