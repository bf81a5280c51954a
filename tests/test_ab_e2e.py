"""End to end: the ``ab`` client against a real Prometheus, and a real VictoriaMetrics, holding
backfilled canary scenarios.

One server per backend serves every scenario (told apart by a ``scenario`` label that the selectors
carry); each scenario is generated here with a known truth and must give the phase decision a
reviewer expects: healthy -> GO, p99 regression -> ABORT, error spike -> ABORT, too little
treatment traffic -> HOLD, sample ratio mismatch -> HOLD.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from pytest_rollout.ab import AB, ABSettings
from pytest_rollout.gate import GateRecord
from pytest_rollout.metrics.prometheus import PrometheusSource, PromQuery, PromSettings
from pytest_rollout.openmetrics import OpenMetricsWriter
from pytest_rollout.outcomes import Inconclusive
from tests.prom_harness import PrometheusServer
from tests.vm_harness import BACKENDS, serving

START = 1_764_000_000  # 2025-11-24, whole minutes
STEP = 60
STEPS = 90  # 90 minutes of history; gates read the last hour
END = START + STEP * (STEPS - 1)
CONFIDENCE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))

# scenario: (treatment queries per hour, treatment latency tail, treatment error rate,
#            active spaces control/treatment)
SCENARIOS: dict[str, dict[str, float]] = {
    "healthy": {"per_hour": 40_000, "tail": 0.0, "errors": 0.001, "spaces_t": 50},
    "p99_regression": {"per_hour": 40_000, "tail": 0.05, "errors": 0.001, "spaces_t": 50},
    "error_spike": {"per_hour": 40_000, "tail": 0.0, "errors": 0.01, "spaces_t": 50},
    "low_traffic": {"per_hour": 500, "tail": 0.0, "errors": 0.001, "spaces_t": 50},
    "srm": {"per_hour": 40_000, "tail": 0.0, "errors": 0.001, "spaces_t": 20},
}
CONTROL_PER_HOUR = 400_000


def _openmetrics() -> str:
    rng = np.random.default_rng(20261125)
    w = OpenMetricsWriter()
    times = [START + i * STEP for i in range(STEPS)]
    for name, sc in SCENARIOS.items():
        for group, per_hour in (("control", CONTROL_PER_HOUR), ("treatment", sc["per_hour"])):
            treated = group == "treatment"
            labels = {"job": "engram", "scenario": name, "group": group}
            per_step = rng.poisson(per_hour / 60.0, STEPS)
            latencies = []
            for k in per_step:
                x = rng.lognormal(np.log(0.006), 0.6, k)
                if treated and sc["tail"]:
                    # A slow path hit by a few % of queries: p50 barely moves, p99 by +50 ms.
                    x = x + np.where(rng.random(k) < sc["tail"], 0.050, 0.0)
                latencies.append(x)
            w.histogram("engram_recall_duration_seconds", labels, times, latencies)
            conf = [rng.beta(7, 3, k) for k in per_step]
            w.histogram("engram_recall_confidence", labels, times, conf, CONFIDENCE_BUCKETS)
            rate = sc["errors"] if treated else 0.001
            errors = rng.binomial(per_step, rate)
            w.counter("engram_recall", {**labels, "outcome": "ok"}, times, per_step - errors)
            w.counter("engram_recall", {**labels, "outcome": "error"}, times, errors)
            spaces = sc["spaces_t"] if treated else 950
            w.gauge("engram_active_spaces", labels, times, [spaces] * STEPS)
    return w.render()


@pytest.fixture(scope="module", params=BACKENDS)
def prometheus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """The scenarios on each PromQL backend in turn (Prometheus, then VictoriaMetrics)."""
    with serving(request.param, _openmetrics(), tmp_path_factory.mktemp("ab_e2e")) as server:
        server.wait_for_data(f'engram_recall_total{{scenario="healthy"}} @ {END}')
        yield server


def _ab(server: PrometheusServer, gate: GateRecord, **overrides: object) -> AB:
    source = PrometheusSource(PromSettings(url=server.url, timeout_s=10, retries=0), at=END)
    settings = ABSettings(window="1h", min_samples=1000, **overrides)  # type: ignore[arg-type]
    return AB(PromQuery(source, gate), gate, settings)


def _outcome(fn: Callable[[], object]) -> str:
    try:
        fn()
    except AssertionError:
        return "fail"
    except Inconclusive:
        return "inconclusive"
    return "pass"


def _phase2(server: PrometheusServer, scenario: str) -> tuple[str, dict[str, str]]:
    """The canary phase's gates for one scenario, and the GO/HOLD/ABORT they add up to."""
    sel = f'{{scenario="{scenario}"}}'
    latency = f"engram_recall_duration_seconds{sel}"
    errors = f'engram_recall_total{{scenario="{scenario}", outcome!="ok"}}'
    total = f"engram_recall_total{sel}"
    confidence = f"engram_recall_confidence{sel}"
    criteria: dict[str, Callable[[AB], object]] = {
        "p99": lambda ab: ab.quantile_delta(latency, q=0.99, margin=0.010).require(),
        "p50": lambda ab: ab.quantile_delta(latency, q=0.5, margin=0.005).require(),
        "errors": lambda ab: ab.proportion_delta(errors, total, margin=0.001).require(),
        "confidence": lambda ab: ab.mean_delta(confidence, margin=0.05, worse="either").require(),
        "srm": lambda ab: ab.srm(
            f"engram_active_spaces{sel}", expected={"control": 0.95, "treatment": 0.05}
        ).require(),
    }
    aborts: dict[str, Callable[[AB], object]] = {
        "p99_abort": lambda ab: ab.quantile_delta(latency, q=0.99, margin=0.020).abort_if_worse(),
        "errors_abort": lambda ab: ab.proportion_delta(
            errors, total, margin=0.001
        ).abort_if_worse(),
        "confidence_abort": lambda ab: ab.mean_delta(
            confidence, margin=0.10, worse="lower"
        ).abort_if_worse(),
    }
    outcomes: dict[str, str] = {}
    for name, gate_fn in {**criteria, **aborts}.items():
        gate = GateRecord(
            nodeid=f"{scenario}::{name}", kind="abort" if name.endswith("_abort") else "criterion"
        )
        ab = _ab(server, gate)
        outcomes[name] = _outcome(lambda gate_fn=gate_fn, ab=ab: gate_fn(ab))
        assert gate.extra["comparisons"], "every comparison is recorded on its gate"
        assert gate.queries, "the queries sent are recorded on the gate"
    if any(outcomes[a] == "fail" for a in aborts):
        return "ABORT", outcomes
    if any(outcomes[c] != "pass" for c in criteria) or any(
        outcomes[a] == "inconclusive" for a in aborts
    ):
        return "HOLD", outcomes
    return "GO", outcomes


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("healthy", "GO"),
        ("p99_regression", "ABORT"),
        ("error_spike", "ABORT"),
        ("low_traffic", "HOLD"),
        ("srm", "HOLD"),
    ],
)
def test_canary_scenario_decision(
    prometheus: PrometheusServer, scenario: str, expected: str
) -> None:
    decision, outcomes = _phase2(prometheus, scenario)
    assert decision == expected, outcomes


def test_scenario_specific_gates(prometheus: PrometheusServer) -> None:
    _, regression = _phase2(prometheus, "p99_regression")
    assert regression["p99_abort"] == "fail" and regression["errors_abort"] == "pass"
    _, spike = _phase2(prometheus, "error_spike")
    assert spike["errors_abort"] == "fail" and spike["p99_abort"] == "pass"
    _, low = _phase2(prometheus, "low_traffic")
    assert low["p99"] == "inconclusive" and low["errors"] == "inconclusive"
    _, srm = _phase2(prometheus, "srm")
    assert srm["srm"] == "fail" and srm["p99"] == "pass"


def test_comparison_record_carries_numbers_queries_and_explanation(
    prometheus: PrometheusServer,
) -> None:
    gate = GateRecord(nodeid="healthy::p99")
    c = (
        _ab(prometheus, gate)
        .quantile_delta('engram_recall_duration_seconds{scenario="healthy"}', q=0.99, margin=0.010)
        .require()
    )
    d = c.to_dict()
    assert d["verdict"] == "within margin"
    # 1 h of a 40,000/h cohort, give or take Poisson noise and increase() extrapolation
    assert 36_000 < d["n"]["treatment"] < 44_000
    assert d["ci"][0] < d["estimate"] < d["ci"][1] < 0.010
    assert 'scenario="healthy", group=~"control|treatment"' in d["queries"][0]
    assert "increase(engram_recall_duration_seconds_bucket" in d["queries"][0]
    assert "[1h]" in d["queries"][0]
    assert gate.metric == c.metric and gate.threshold == 0.010 and gate.unit == "s"
    assert gate.p_value is not None and gate.p_value < 0.025
    assert "within the +10.0 ms margin" in (gate.explanation or "")
    assert "mann_whitney" in d["reference"]


def test_sequential_mode_is_more_conservative_on_the_same_data(
    prometheus: PrometheusServer,
) -> None:
    sel = 'engram_recall_duration_seconds{scenario="healthy"}'
    fixed = _ab(prometheus, GateRecord(nodeid="f")).quantile_delta(sel, q=0.99, margin=0.010)
    seq = _ab(prometheus, GateRecord(nodeid="s"), sequential=True).quantile_delta(
        sel, q=0.99, margin=0.010
    )
    # Bounds sit on bucket edges, so the wider sequential ranks may land in the same bucket:
    # the sequential interval contains the fixed one, not necessarily strictly.
    (s_lo, s_hi), (f_lo, f_hi) = seq.to_dict()["ci"], fixed.to_dict()["ci"]
    assert s_lo <= f_lo and s_hi >= f_hi
    assert "always-valid" in seq.explanation


def test_missing_metric_is_inconclusive(prometheus: PrometheusServer) -> None:
    ab = _ab(prometheus, GateRecord(nodeid="missing"))
    with pytest.raises(Inconclusive, match="no .* histogram data"):
        ab.quantile_delta('nonexistent_seconds{scenario="healthy"}', q=0.99, margin=0.01)
