"""Which gates a test is: its phase marker, abort marker, and the checks on gate markers."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

import pytest

from pytest_rollout._state import context_key, gate_key, marker_problem_key
from pytest_rollout.config import DEFAULT_PHASES
from pytest_rollout.context import RolloutContext
from pytest_rollout.gate import GateRecord


def phases_in(markexpr: str, known: Iterable[str] = DEFAULT_PHASES) -> list[str]:
    """The phases a ``-m`` expression names, in the order of ``known``."""
    return [k for k in known if re.search(rf"\b{re.escape(k)}\b", markexpr)]


def phase_of(item: pytest.Item, context: RolloutContext) -> str | None:
    known = set(DEFAULT_PHASES) | set(context.config.phases)
    for marker in item.iter_markers():
        if marker.name in known:
            if marker.args or marker.kwargs:
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.{marker.name} takes no arguments"
                )
            return marker.name
    return None


def kind_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("abort")
    if marker is None:
        return "criterion"
    if marker.args or marker.kwargs:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.abort takes no arguments")
    return "abort"


def gate_of(item: pytest.Item) -> GateRecord:
    if gate_key not in item.stash:
        context = item.config.stash[context_key]
        item.stash[gate_key] = GateRecord(
            nodeid=item.nodeid, kind=kind_of(item), phase=phase_of(item, context)
        )
    return item.stash[gate_key]


def is_gate_run(config: pytest.Config) -> bool:
    """Gates ran from a rollout config, or a phase was asked for: markers are then strict."""
    context = config.stash[context_key]
    return context.config.source != "<defaults>" or bool(
        phases_in(str(config.getoption("markexpr") or ""))
    )


def unknown_markers(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """A gate marker typo (``@pytest.mark.abrot``) must not turn an abort trigger into a
    criterion with only a warning: every marker on a gate must be registered."""
    known = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    problems = []
    for item in items:
        for marker in item.iter_markers():
            if marker.name not in known:
                close = difflib.get_close_matches(marker.name, sorted(known), n=1)
                hint = f" (did you mean @pytest.mark.{close[0]}?)" if close else ""
                message = (
                    f"{item.nodeid}: unknown marker @pytest.mark.{marker.name}{hint}; gate "
                    "markers are strict: register it under `markers` in the pytest settings "
                    "or fix the name"
                )
                problems.append(message)
                item.stash[marker_problem_key] = message
    return problems
