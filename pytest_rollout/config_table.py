"""One table of rollout.toml, read strictly: typed getters and precise errors.

Kept apart from config.py (the schema) so each stays readable; config.py re-exports both names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NoReturn, overload

from pytest_rollout.durations import parse_duration


class ConfigError(ValueError):
    """A problem in rollout configuration; the message names file, key and value."""


class TableReader:
    """Typed access to one table of rollout.toml that reports bad values and unknown keys
    precisely: every problem is a :class:`ConfigError` naming the file, the key and the value.

    ``where`` is the dotted name of the table (``phases.phase2``, ``""`` for the top level).
    Read keys with the typed getters, then call :meth:`finish` to refuse keys nobody read, or
    :meth:`check_keys` up front when the table's schema is a fixed list.
    """

    def __init__(self, source: str, where: str, table: Any, expected: str = "a table") -> None:
        self.source, self.where = source, where
        if not isinstance(table, dict):
            self.fail("", table, expected)
        self.table: dict[str, Any] = table
        self.used: set[str] = set()

    def name(self, key: str) -> str:
        """The dotted name of ``key`` in this table, as a reader finds it in the file."""
        return ".".join(part for part in (self.where, key) if part) or "top level"

    def fail(self, key: str, value: Any, expected: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {self.name(key)} = {value!r}: expected {expected}")

    def get(self, key: str) -> Any:
        self.used.add(key)
        return self.table.get(key)

    def items(self) -> Iterator[tuple[str, Any]]:
        """Every entry, for tables whose keys are names (flags, thresholds), not a schema."""
        for key, value in self.table.items():
            self.used.add(key)
            yield key, value

    @overload
    def string(self, key: str, default: str, pattern: re.Pattern[str] | None = None) -> str: ...
    @overload
    def string(
        self, key: str, default: None = None, pattern: re.Pattern[str] | None = None
    ) -> str | None: ...
    def string(
        self, key: str, default: str | None = None, pattern: re.Pattern[str] | None = None
    ) -> str | None:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, str) or not value or (pattern and not pattern.match(value)):
            expected = f"a string matching {pattern.pattern}" if pattern else "a non-empty string"
            self.fail(key, value, expected)
        return value

    def required_string(self, key: str, pattern: re.Pattern[str] | None = None) -> str:
        value = self.string(key, None, pattern)
        if value is None:
            raise ConfigError(f"{self.source}: {self.name(key)} is required")
        return value

    def number(self, key: str, default: float | None, lo: float, hi: float) -> float | None:
        value = self.get(key)
        if value is None:
            return default
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not lo <= value <= hi:
            self.fail(key, value, f"a number between {lo:g} and {hi:g}")
        return float(value)

    def integer(self, key: str, default: int, lo: int) -> int:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            self.fail(key, value, f"a whole number >= {lo}")
        return int(value)

    def strings(self, key: str) -> tuple[str, ...]:
        """A list of distinct non-empty strings, e.g. ``signoffs = ["service owner"]``."""
        value = self.get(key)
        items = value if isinstance(value, list) else []
        ok = value is None or (isinstance(value, list) and all(isinstance(v, str) for v in items))
        if not ok or not all(v.strip() for v in items) or len({*items}) != len(items):
            self.fail(key, value, "a list of distinct non-empty strings")
        return tuple(v.strip() for v in items)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, value, "true or false")
        return bool(value)

    @overload
    def duration(self, key: str, default: float) -> float: ...
    @overload
    def duration(self, key: str, default: None) -> float | None: ...
    def duration(self, key: str, default: float | None) -> float | None:
        value = self.get(key)
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError:
            self.fail(key, value, "a duration such as '30s', '5m', '1h' or '7d'")

    def sub(self, key: str, expected: str = "a table") -> TableReader | None:
        """The sub-table ``key``, or None when it is absent."""
        value = self.get(key)
        if value is None:
            return None
        return TableReader(self.source, self.name(key), value, expected)

    def check_keys(self, known: Iterable[str]) -> None:
        """Refuse any key not in ``known``, naming the first one and the keys allowed here."""
        allowed = set(known)
        unknown = sorted(set(self.table) - allowed)
        if unknown:
            raise ConfigError(
                f"{self.source}: unknown key {self.name(unknown[0])} "
                f"(known here: {', '.join(sorted(allowed))})"
            )

    def check_phase(self, name: str, known: Sequence[str], key: str | None = None) -> None:
        """Refuse a phase name that is neither built in nor a ``[phases.X]`` of the file: a typo
        would otherwise apply nothing and the phase would run on its defaults.  ``key`` is the
        key holding ``name`` as a value; without it ``name`` is a sub-table of this table."""
        if name in known:
            return
        where = f"[{self.where}] {key} = {name!r}" if key else f"[{self.name(name)}]"
        raise ConfigError(
            f"{self.source}: {where}: {name!r} is not a phase (known phases: "
            f"{', '.join(known)}); fix the name or define [phases.{name}]"
        )

    def finish(self) -> None:
        """Refuse keys that no getter asked for: a typo must not fall back to a default."""
        self.check_keys(self.used)
