"""The flagd flag-definition file format: parse, plan changes, build cohort definitions.

Pure: no file I/O, so the staging service and the verifier can use it without the controller.

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
rewrite.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pytest_rollout.flags.base import (
    FlagFormatError,
    FlagState,
    FlagValue,
    UnknownFlagError,
    coerce_value,
)

__all__ = [
    "SCHEMA_URL",
    "CHANGE_ID_KEY",
    "parse_flags",
    "change_id_of",
    "cohort_definition",
    "plan_changes",
]

SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json"
# Flag-set metadata key stamping the audit change id of the last audited write; flagd accepts
# string metadata and ignores it, and the audit log uses it to tell whether a change took effect.
CHANGE_ID_KEY = "rolloutChangeId"
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
