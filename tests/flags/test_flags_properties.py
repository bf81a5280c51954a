"""Hypothesis round-trips of flag definitions through apply_changes/read_flags."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rollout.flags.flagd_format import SCHEMA_URL, cohort_definition, parse_flags
from pytest_rollout.flags.flagd_store import apply_changes, read_flags

names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
percents = st.one_of(
    st.integers(0, 100).map(float),
    st.integers(0, 10_000).map(lambda bp: bp / 100),  # two decimals: basis points
)
numbers = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
extra_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def documents(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    kinds = draw(
        st.dictionaries(
            names, st.sampled_from(["boolean", "cohort", "number"]), min_size=1, max_size=6
        )
    )
    flags: dict[str, Any] = {}
    for name, kind in kinds.items():
        if kind == "boolean":
            flags[name] = {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": draw(st.sampled_from(["on", "off"])),
            }
        elif kind == "cohort":
            flags[name] = cohort_definition(draw(percents))
        else:
            flags[name] = {
                "state": "ENABLED",
                "variants": {"value": draw(numbers)},
                "defaultVariant": "value",
            }
        if draw(st.booleans()):
            flags[name]["metadata"] = {"owner": draw(st.text(max_size=8))}
    flags["untouched_string_flag"] = {
        "state": "ENABLED",
        "variants": {"a": "x"},
        "defaultVariant": "a",
        "x-extra": draw(extra_json),
    }
    document = {"$schema": SCHEMA_URL, "flags": flags, "x-top": draw(extra_json)}
    return document, kinds


@st.composite
def document_and_changes(
    draw: st.DrawFn,
) -> tuple[dict[str, Any], dict[str, str], dict[str, bool | float]]:
    document, kinds = draw(documents())
    chosen = draw(st.lists(st.sampled_from(sorted(kinds)), unique=True, min_size=1))
    values = {"boolean": st.booleans(), "cohort": percents, "number": numbers}
    changes = {name: draw(values[kinds[name]]) for name in chosen}
    return document, kinds, changes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document_and_changes())
def test_apply_then_read_returns_exactly_what_was_set_and_keeps_the_rest(
    case: tuple[dict[str, Any], dict[str, str], dict[str, bool | float]],
) -> None:
    document, kinds, changes = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flags.json"
        path.write_text(json.dumps(document))
        before = read_flags(path)
        assert {n: s.type for n, s in before.items()} == kinds
        after = apply_changes(path, changes)
        assert read_flags(path) == after
        for name, state in after.items():
            expected = changes.get(name, before[name].value)
            assert state.value == expected, name
            assert state.type == kinds[name]
        written = json.loads(path.read_text())
        assert written["x-top"] == document["x-top"]
        assert (
            written["flags"]["untouched_string_flag"] == document["flags"]["untouched_string_flag"]
        )
        for name in kinds:
            if "metadata" in document["flags"][name]:
                assert written["flags"][name]["metadata"] == document["flags"][name]["metadata"]
        # Re-applying the same values changes nothing in the parsed state (idempotent).
        assert parse_flags(written) == apply_changes(path, changes)
