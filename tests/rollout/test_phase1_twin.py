"""Phase 1's overhead gates against the baseline replica (gates/twin.py), on a real Prometheus.

One backfilled history of two replicas under the same load (a shared, autocorrelated load
curve plus each process's own noise), in three hours that are three cases: shadow +2 % CPU and
+3 % RSS; shadow +30 % CPU; the baseline replica missing.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

from pytest_rollout.config import load_config
from pytest_rollout.context import PhaseView
from pytest_rollout.gate import GateRecord
from pytest_rollout.metrics.prometheus import PrometheusSource, PromQuery, PromSettings
from pytest_rollout.openmetrics import OpenMetricsWriter
from pytest_rollout.outcomes import Inconclusive
from tests.prom_harness import PrometheusServer, start_backfilled

GATES = Path(__file__).resolve().parents[2] / "gates"
sys.path.insert(0, str(GATES))  # the gates import their helpers as top-level modules

import twin  # noqa: E402

START = 1_764_000_000
STEP = 15  # a production-like scrape interval
HOUR = 3600
CASES = {"small": (0.02, 0.03, True), "cpu_over": (0.30, 0.03, True), "no_twin": (0.0, 0.0, False)}


def _history() -> str:
    rng = np.random.default_rng(17)
    w = OpenMetricsWriter()
    n = HOUR // STEP
    for index, (cpu_over, rss_over, with_twin) in enumerate(CASES.values()):
        begin = START + index * 3 * HOUR  # two idle hours between cases
        times = [begin + i * STEP for i in range(n + 1)]
        load = 0.2 * (1 + 0.3 * np.sin(np.arange(n + 1) / 20.0))  # cores both replicas need
        replicas = [("shadow", "engram", cpu_over, rss_over)]
        if with_twin:
            replicas.append(("baseline", "engram-baseline", 0.0, 0.0))
        for replica, job, cpu_extra, rss_extra in replicas:
            labels = {"job": job, "replica": replica}
            cores = load * (1 + cpu_extra) * rng.lognormal(0, 0.05, n + 1)
            ticks = np.round(cores * STEP, 2)  # CPU seconds per scrape, in 10 ms ticks
            ticks[0] = 100.0
            w.counter("process_cpu_seconds", labels, times, ticks)
            # Both grow with the same data; each wobbles on its own (GC, arenas), autocorrelated.
            wobble = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n + 1)) * 1e6
            rss = (300e6 + 30e6 * np.arange(n + 1) / n) * (1 + rss_extra) + wobble
            w.gauge("process_resident_memory_bytes", labels, times, np.round(rss / 4096) * 4096)
    return w.render()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = start_backfilled(_history(), Path(tmp_path_factory.mktemp("phase1_twin")))
    try:
        server.wait_for_data(f"process_resident_memory_bytes @ {START + HOUR}")
        yield server
    finally:
        server.stop()


def _run(server: PrometheusServer, case: str, check: object, *args: object) -> GateRecord:
    at = START + list(CASES).index(case) * 3 * HOUR + HOUR
    gate = GateRecord(nodeid=f"test::{case}")
    source = PrometheusSource(
        PromSettings(url=server.url, timeout_s=10, retries=0, max_staleness_s=3600), at=at
    )
    config = load_config(GATES / "rollout.toml")
    phase = PhaseView(config.phase("phase1", "staging"), 3600.0, config)
    check(PromQuery(source, gate), phase, gate, *args)  # type: ignore[operator]
    return gate


def test_a_small_overhead_passes_both_criteria_and_aborts(prometheus: PrometheusServer) -> None:
    cpu = _run(prometheus, "small", twin.require_overhead_under, twin.CPU, "cpu_overhead_pct_max")
    assert cpu.observed is not None and cpu.ci is not None
    assert 0 < cpu.ci[1] < 5 and cpu.ci[0] < 2 < cpu.ci[1], cpu.explanation
    rss = _run(prometheus, "small", twin.require_overhead_under, twin.RSS, "rss_overhead_pct_max")
    assert rss.ci is not None and rss.ci[0] < 3 < rss.ci[1] < 10, rss.explanation
    _run(
        prometheus, "small", twin.abort_if_overhead_proven_over, twin.CPU, "cpu_overhead_pct_abort"
    )


def test_a_proven_cpu_overhead_fails_the_abort_trigger(prometheus: PrometheusServer) -> None:
    with pytest.raises(AssertionError, match=r"proven over \+10 %.*roll back shadow mode"):
        _run(
            prometheus,
            "cpu_over",
            twin.abort_if_overhead_proven_over,
            twin.CPU,
            "cpu_overhead_pct_abort",
        )


def test_a_missing_baseline_replica_is_inconclusive_naming_it_and_the_query(
    prometheus: PrometheusServer,
) -> None:
    with pytest.raises(Inconclusive) as raised:
        _run(prometheus, "no_twin", twin.require_overhead_under, twin.RSS, "rss_overhead_pct_max")
    message = str(raised.value)
    assert "the baseline replica reported RSS at 0 of 120" in message
    assert 'process_resident_memory_bytes{replica="baseline"}' in message


def test_formation_share_is_recorded_not_judged(prometheus: PrometheusServer) -> None:
    gate = _run(prometheus, "small", twin.observe_formation_cpu_share)
    share = gate.extra["formation_cpu_share"]
    assert share["share"] is None or math.isfinite(share["share"])
    assert "engram_concept_formation_duration_seconds_sum" in share["query"]
    assert gate.observed is None  # not a criterion: nothing headline, no verdict
