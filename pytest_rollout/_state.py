"""What the plugin, the session and the report plugins share, with no imports from the package.

The stash keys, the ``user_properties`` entry that carries a gate's result from an xdist worker to
the controller, and :class:`RunView`: the read-only view of the run that report plugins receive
(the way pytest-html hands its report a ``ReportData``), instead of reading the session's state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:  # types only: this module must not import the package at run time
    from pytest_rollout.context import RolloutContext
    from pytest_rollout.gate import GateRecord
    from pytest_rollout.selection import Selection

USER_PROPERTY = "rollout_gate"  # key of the user_properties entry carrying a gate's result

context_key: pytest.StashKey[RolloutContext] = pytest.StashKey()
gate_key: pytest.StashKey[GateRecord] = pytest.StashKey()
outcome_key = pytest.StashKey[tuple[str, str]]()  # a gate's merged (outcome, reason) so far
marker_problem_key = pytest.StashKey[str]()  # a gate's marker misuse, raised at its setup
view_key = pytest.StashKey["RunView"]()
selection_key: pytest.StashKey[Selection] = pytest.StashKey()


class RunView(Protocol):
    """The run as the controller sees it; read-only for everyone but the session."""

    @property
    def results(self) -> Mapping[str, Mapping[str, Any]]:
        """Each gate's latest payload (see :func:`gate_payload`) by node id."""
        ...

    @property
    def record(self) -> Mapping[str, Any] | None:
        """The decision record, once decided (``None`` before ``pytest_sessionfinish``)."""
        ...

    @property
    def problems(self) -> list[str]:
        """What went wrong around the decision (an unwritable record, a failing hook)."""
        ...

    def phases_asked(self) -> list[str]:
        """The phases named in ``-m``, in the config's order."""
        ...

    def secret_urls(self) -> list[str | None]:
        """URLs this run was configured with that may carry credentials (for redaction)."""
        ...


def gate_payload(report: pytest.TestReport) -> dict[str, Any] | None:
    """The gate result a report carries, if any (works on the controller under xdist)."""
    # Collection reports reach pytest_report_teststatus too and have no user_properties.
    for key, value in getattr(report, "user_properties", ()):
        if key == USER_PROPERTY:
            data: dict[str, Any] = json.loads(value)
            return data
    return None
