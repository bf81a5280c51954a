"""The ``ab`` client fills ``gate.series`` for the report's plot, on a real backfilled Prometheus.

The bundled ``healthy`` scenario (examples/scenarios.py): one-minute samples, control and
treatment cohorts behaving alike, ending at ``END``. Each comparison kind must plot both groups
over the one-hour window ending at the pinned instant, with finite points of the compared
statistic, and tell the report what its threshold bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest

from examples.scenarios import END, generate
from pytest_rollout.ab import AB, ABSettings, Comparison
from pytest_rollout.gate import GateRecord
from pytest_rollout.metrics.prometheus import PrometheusSource, PromQuery, PromSettings
from pytest_rollout.promserver import PrometheusServer
from tests.vm_harness import BACKENDS, serving

WINDOW_S = 3600.0
LATENCY = "engram_recall_duration_seconds"


@pytest.fixture(scope="module", params=BACKENDS)
def prometheus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """The scenario on each PromQL backend in turn (Prometheus, then VictoriaMetrics)."""
    with serving(
        request.param, generate("healthy"), tmp_path_factory.mktemp("ab_series")
    ) as server:
        server.wait_for_data(f"engram_recall_total @ {END}")
        yield server


def _ab(server: PrometheusServer, gate: GateRecord) -> AB:
    source = PrometheusSource(PromSettings(url=server.url, timeout_s=10, retries=0), at=END)
    return AB(PromQuery(source, gate), gate, ABSettings(window="1h", min_samples=1000))


# kind: (comparison, plausible range of the plotted statistic per group, threshold_on)
CASES: dict[str, tuple[Callable[[AB], Comparison], tuple[float, float], str]] = {
    # lognormal latency with median 4 ms: p99 around 15 ms, far below the 60 ms a slow path adds
    "quantile_delta": (
        lambda ab: ab.quantile_delta(LATENCY, q=0.99, margin=0.010),
        (0.005, 0.05),
        "delta",
    ),
    "proportion_delta": (
        lambda ab: ab.proportion_delta(
            'engram_recall_total{outcome!="ok"}', "engram_recall_total", margin=0.001
        ),
        (0.0, 0.02),
        "delta",
    ),
    "mean_delta": (lambda ab: ab.mean_delta(LATENCY, margin=0.002), (0.003, 0.007), "delta"),
    "srm": (
        lambda ab: ab.srm("engram_active_spaces", expected={"control": 0.9, "treatment": 0.1}),
        (90.0, 910.0),
        "none",
    ),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_each_comparison_plots_both_groups_over_the_window(
    prometheus: PrometheusServer, kind: str
) -> None:
    compare, (low, high), threshold_on = CASES[kind]
    gate = GateRecord(nodeid=kind)
    comparison = compare(_ab(prometheus, gate))

    assert comparison.kind == kind
    assert set(gate.series) == {"control", "treatment"}
    for group, points in gate.series.items():
        # 1h / 60 = one-minute steps: 61 points from END - 1h to END, minus any rate() gap
        assert 50 <= len(points) <= 61, (group, len(points))
        times = [t for t, _ in points]
        assert times == sorted(times)
        assert END - WINDOW_S <= times[0] <= times[-1] <= END
        assert times[-1] == END, "the plot ends at the pinned instant"
        assert all(math.isfinite(v) and low <= v <= high for _, v in points), (group, points)
    assert gate.extra["threshold_on"] == threshold_on
    plotted = gate.queries[-1]
    assert plotted.range is not None and plotted.range["step"] == 60.0
    if kind != "srm":  # a gauge is plotted as it is; the rest are rates over 4 steps
        assert "[4m]" in plotted.query


def test_srm_plot_shows_the_units_the_comparison_counted(prometheus: PrometheusServer) -> None:
    gate = GateRecord(nodeid="srm")
    comparison = _ab(prometheus, gate).srm(
        "engram_active_spaces", expected={"control": 0.9, "treatment": 0.1}
    )
    for group, points in gate.series.items():
        assert points[-1][1] == comparison.n[group]


def test_a_gates_own_series_and_the_first_comparisons_plot_are_kept(
    prometheus: PrometheusServer,
) -> None:
    mine = {"control": [[float(END), 1.0]], "treatment": [[float(END), 2.0]]}
    gate = GateRecord(nodeid="own", series=dict(mine))
    _ab(prometheus, gate).quantile_delta(LATENCY, q=0.99, margin=0.010)
    assert gate.series == mine
    assert "threshold_on" not in gate.extra
    # Range queries here are the design effect's per-interval counts, never a plot's.
    plots = [q for q in gate.queries if q.range and "histogram_quantile" in q.query]
    assert not plots, "no plot query when the gate has its own series"

    gate = GateRecord(nodeid="two")
    ab = _ab(prometheus, gate)
    ab.srm("engram_active_spaces", expected={"control": 0.9, "treatment": 0.1})
    first = {g: list(p) for g, p in gate.series.items()}
    ab.quantile_delta(LATENCY, q=0.99, margin=0.010)
    assert gate.series == first
    assert gate.extra["threshold_on"] == "none"
