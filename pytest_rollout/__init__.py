"""pytest-rollout: progressive rollouts as executable go/no-go gates.

The fixture types are exported so gates can annotate their parameters
(``def test_p99(ab: AB, phase: Phase) -> None``). They load on first use: importing the package
(which pytest does at start-up) must not pull in numpy, scipy or locust.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_rollout.decision import Decision
from pytest_rollout.gate import GateRecord
from pytest_rollout.outcomes import Inconclusive, inconclusive

if TYPE_CHECKING:
    from pytest_rollout.ab import AB
    from pytest_rollout.context import PhaseView as Phase
    from pytest_rollout.context import RolloutContext as Rollout
    from pytest_rollout.flags.base import FlagController as Flags
    from pytest_rollout.gate import GateRecord as Gate
    from pytest_rollout.load.comparator import BaselineComparator as Baseline
    from pytest_rollout.load.runner import SoakRunner as Soak
    from pytest_rollout.metrics.prometheus import PromQuery as Prom

__version__ = "0.1.0"

# fixture type -> (module, class): the type of the fixture of the same name in lower case
_FIXTURE_TYPES = {
    "AB": ("pytest_rollout.ab", "AB"),
    "Baseline": ("pytest_rollout.load.comparator", "BaselineComparator"),
    "Flags": ("pytest_rollout.flags.base", "FlagController"),
    "Gate": ("pytest_rollout.gate", "GateRecord"),
    "Phase": ("pytest_rollout.context", "PhaseView"),
    "Prom": ("pytest_rollout.metrics.prometheus", "PromQuery"),
    "Rollout": ("pytest_rollout.context", "RolloutContext"),
    "Soak": ("pytest_rollout.load.runner", "SoakRunner"),
}

__all__ = [
    "AB",
    "Baseline",
    "Decision",
    "Flags",
    "Gate",
    "GateRecord",
    "Inconclusive",
    "Phase",
    "Prom",
    "Rollout",
    "Soak",
    "__version__",
    "inconclusive",
]


def __getattr__(name: str) -> Any:
    if name in _FIXTURE_TYPES:
        module, attribute = _FIXTURE_TYPES[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
