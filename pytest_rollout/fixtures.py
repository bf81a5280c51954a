"""The fixtures gates receive: ``rollout``, ``gate``, ``phase``, ``prom``, ``flags``, ``soak``,
``baseline`` and ``ab``. Their types are exported from :mod:`pytest_rollout` for annotations.

Heavy modules (numpy, scipy, locust) load inside the fixtures, when a gate first asks for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_rollout._state import context_key
from pytest_rollout.context import PhaseView, RolloutContext
from pytest_rollout.gate import GateRecord
from pytest_rollout.marks import gate_of, phase_of

if TYPE_CHECKING:
    from pytest_rollout.ab import AB
    from pytest_rollout.evidence import Evidence
    from pytest_rollout.flags.base import FlagController
    from pytest_rollout.load.comparator import BaselineComparator
    from pytest_rollout.load.runner import SoakRunner
    from pytest_rollout.metrics.prometheus import PromQuery


@pytest.fixture(scope="session")
def rollout(pytestconfig: pytest.Config) -> RolloutContext:
    """The run's shared context: config, environment, pinned instant, backends."""
    return pytestconfig.stash[context_key]


@pytest.fixture
def gate(request: pytest.FixtureRequest) -> GateRecord:
    """This gate's record: call ``gate.observe(metric=..., observed=..., threshold=...)``."""
    return gate_of(request.node)


@pytest.fixture
def phase(request: pytest.FixtureRequest, rollout: RolloutContext) -> PhaseView:
    """Settings of the phase this gate is marked with (window, min samples, thresholds)."""
    key = phase_of(request.node, rollout)
    if key is None:
        raise LookupError(
            f"{request.node.nodeid} has no phase marker; add e.g. "
            "@pytest.mark.phase2 (or pytestmark = pytest.mark.phase2)"
        )
    return rollout.phase(key)


@pytest.fixture
def prom(rollout: RolloutContext, gate: GateRecord) -> PromQuery:
    """Prometheus at the pinned instant; empty, NaN, stale or failing queries -> inconclusive."""
    from pytest_rollout.metrics.prometheus import PromQuery

    return PromQuery(rollout.prometheus(), gate)


@pytest.fixture
def flags(request: pytest.FixtureRequest, rollout: RolloutContext) -> FlagController:
    """The flag backend of this environment (read flags, snapshot; changes are audited).

    Per gate, so a change it makes is audited with the gate's phase; one controller per phase.
    """
    return rollout.flag_controller(phase_of(request.node, rollout))


@pytest.fixture
def soak(tmp_path: Path) -> SoakRunner:
    """Runs Locust soaks in a subprocess: ``soak.run(SoakConfig(...))`` -> SoakResult."""
    from pytest_rollout.load.runner import SoakRunner

    return SoakRunner(tmp_path / "soak")


@pytest.fixture
def baseline(prom: PromQuery, gate: GateRecord, rollout: RolloutContext) -> BaselineComparator:
    """Compares the gate's window with a saved baseline (``rollout baseline save``).

    The file: ROLLOUT_BASELINE, else ``baseline`` of the environment in rollout.toml.
    """
    from pytest_rollout.load.comparator import BaselineComparator

    path = rollout.settings.baseline
    return BaselineComparator(prom, gate=gate, default_path=Path(path) if path else None)


@pytest.fixture
def ab(
    request: pytest.FixtureRequest,
    prom: PromQuery,
    gate: GateRecord,
    phase: PhaseView,
    rollout: RolloutContext,
) -> AB:
    """A/B comparisons of treatment against control over the phase's window."""
    from pytest_rollout.ab import AB, ABSettings
    from pytest_rollout.durations import format_duration

    cfg = rollout.config
    family = 1
    if phase.config.holm:
        # Holm's first step (alpha / k) over the phase's A/B gates: each gate runs alone and
        # cannot see the others' p-values. Every xdist worker collects all items, so k agrees.
        family = max(
            1,
            sum(
                1
                for item in request.session.items
                if "ab" in getattr(item, "fixturenames", ())
                and phase_of(item, rollout) == phase.key
            ),
        )
    evidence = _evidence(rollout, phase, gate)
    settings = ABSettings(
        group_label=cfg.group_label,
        control=cfg.control,
        treatment=cfg.treatment,
        window=format_duration(phase.window_s),
        min_samples=phase.config.min_samples,
        alpha=phase.config.alpha,
        sequential=phase.config.sequential,
        holm_family_size=family,
    )
    return AB(prom, gate, settings, evidence)


def _evidence(rollout: RolloutContext, phase: PhaseView, gate: GateRecord) -> Evidence:
    """Since the phase start (default), or the sliding window (``evidence = "window"`` or an
    explicit --rollout-window)."""
    from dataclasses import replace

    from pytest_rollout.evidence import Evidence

    explicit = rollout.window_override_s is not None
    window = Evidence(
        kind="window",
        at=rollout.at,
        window_s=phase.window_s,
        duration_s=phase.config.duration_s,
        planned_n=phase.config.planned_n,
        role=gate.kind,
        explicit_window=explicit,
    )
    if explicit or phase.config.evidence == "window":
        return window
    start = rollout.phase_start(phase.key)
    return replace(
        window,
        kind="phase",
        since=start.since,
        since_source=start.source,
        since_detail=start.detail,
        problem=start.problem,
    )
