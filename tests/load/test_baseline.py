"""Baselines on a real Prometheus (and a real VictoriaMetrics) scraping toy targets under real
Locust load.

Three targets share one load window: the baseline one, an identical one, and one slowed on purpose
(+1.5 ms on a ~3 ms request, +50 %), so `rollout compare` must fail it and not fail its twin.
"""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_rollout.durations import parse_duration
from pytest_rollout.gate import GateRecord
from pytest_rollout.load.baseline import (
    BaselineSpec,
    Snapshot,
    compare,
)
from pytest_rollout.load.comparator import BaselineComparator
from pytest_rollout.load.runner import SoakRunner
from pytest_rollout.load.soak_config import SoakConfig
from pytest_rollout.metrics.prometheus import PrometheusSource, PromQuery, PromSettings
from pytest_rollout.outcomes import Inconclusive
from tests import vm_harness
from tests.load.helpers import TOY_LOCUSTFILE, TargetFactory
from tests.prom_harness import PrometheusServer, start_scraping

LOAD_S = 18.0
WARMUP_S = 4.0
WINDOW_S = 12.0


@pytest.fixture(scope="module")
def scraped(toy_targets: TargetFactory, tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = toy_targets.start(delay_ms=3.0)
    twin = toy_targets.start(delay_ms=3.0)
    slow = toy_targets.start(delay_ms=4.5)
    workdir = tmp_path_factory.mktemp("baseline")
    targets = [f"127.0.0.1:{t.port}" for t in (base, twin, slow)]
    # Both backends scrape the same targets through the same load window: one load run, two
    # stores of it, and every baseline test below runs against each.
    servers: dict[str, PrometheusServer] = {}
    try:
        servers["prometheus"] = start_scraping(targets, workdir / "prom", job="toy")
        servers["victoriametrics"] = vm_harness.start_scraping(targets, workdir / "vm", job="toy")
        for server in servers.values():
            server.wait_for_data('up{job="toy"} == 1')
        runner = SoakRunner(workdir, progress=io.StringIO())
        configs = [
            SoakConfig(target=t.url, locustfile=TOY_LOCUSTFILE, users=4, spawn_rate=40.0,
                       duration_s=LOAD_S, warmup_s=WARMUP_S, progress_every_s=60.0)
            for t in (base, twin, slow)
        ]  # fmt: skip
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(runner.run, configs))
        # The evaluation instant: inside the load, after the warm-up of every run.
        at = min(r.started_at for r in results) + LOAD_S - 0.5
        assert at - WINDOW_S >= max(r.warmup_end for r in results)
        yield {
            "servers": servers,
            "at": at,
            "sel": {name: f'{{job="toy",instance="127.0.0.1:{t.port}"}}'
                    for name, t in (("base", base), ("twin", twin), ("slow", slow))},
            "workdir": workdir,
        }  # fmt: skip
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module", params=vm_harness.BACKENDS)
def backend_url(request: pytest.FixtureRequest, scraped: Any) -> str:
    """The URL of each backend that scraped the load window, in turn."""
    url: str = scraped["servers"][request.param].url
    return url


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_rollout", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def baseline_file(scraped: Any, backend_url: str) -> Path:
    out = Path(scraped["workdir"]) / f"baseline-{backend_url.rsplit(':', 1)[1]}.json"
    proc = _cli(
        "baseline", "save", "--out", str(out), "--prometheus", backend_url,
        "--selector", scraped["sel"]["base"], "--latency-metric", "toy_request_duration_seconds",
        "--window", f"{WINDOW_S:g}s", "--step", "1s", "--at", f"{scraped['at']:.3f}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "baseline saved to" in proc.stdout
    return out


def test_baseline_save_captures_window(baseline_file: Path) -> None:
    data = json.loads(baseline_file.read_text())
    assert data["kind"] == "baseline" and data["latency"]["le"][-1] == "+Inf"
    cumulative = data["latency"]["cumulative"]
    assert cumulative == sorted(cumulative) and cumulative[-1] > 1000
    assert data["rps"] > 50
    assert len(data["rss_bytes"]) >= WINDOW_S - 2 and data["rss_bytes"][0][1] > 1e6
    assert len(data["cpu_cores"]) >= WINDOW_S - 3
    assert any("increase(toy_request_duration_seconds_bucket" in q for q in data["queries"])


def test_compare_fails_the_slowed_target(
    scraped: Any, backend_url: str, baseline_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "comparison.json"
    proc = _cli(
        "compare", str(baseline_file), "--prometheus", backend_url,
        "--at", f"{scraped['at']:.3f}", "--selector", scraped["sel"]["slow"], "--json", str(out),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["metric", "baseline", "current"]
    p50 = next(line for line in lines if line.startswith("p50 latency"))
    assert p50.rstrip().endswith("FAIL"), proc.stdout
    assert "verdict: FAIL" in proc.stdout
    rows = {r["metric"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["p50 latency"]["outcome"] == "fail"
    assert rows["p50 latency"]["ci_pct"][0] > 5.0
    assert rows["request rate"]["outcome"] == "info"


def test_compare_does_not_fail_an_identical_twin(
    scraped: Any, backend_url: str, baseline_file: Path
) -> None:
    proc = _cli(
        "compare", str(baseline_file), "--prometheus", backend_url,
        "--at", f"{scraped['at']:.3f}", "--selector", scraped["sel"]["twin"],
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    for line in proc.stdout.splitlines():
        if line.startswith(("p50 latency", "p99 latency", "RSS")):
            assert not line.rstrip().endswith("FAIL"), proc.stdout
    rss = next(line for line in proc.stdout.splitlines() if line.startswith("RSS"))
    assert rss.rstrip().endswith("pass"), proc.stdout


def test_baseline_fixture_class_records_the_gate(
    scraped: Any, backend_url: str, baseline_file: Path
) -> None:
    gate = GateRecord(nodeid="gates/test_phase0.py::test_latency_within_baseline")
    settings = PromSettings(url=backend_url)
    prom = PromQuery(PrometheusSource(settings, scraped["at"]), gate)
    comparator = BaselineComparator(prom, default_path=baseline_file)
    with pytest.raises(AssertionError, match=r"latency regressed \+\d+\.\d %"):
        comparator.check(selector=scraped["sel"]["slow"])
    assert gate.metric is not None and gate.metric.endswith("latency vs baseline")
    assert gate.observed is not None and gate.observed > 5.0 and gate.threshold == 5.0
    assert "verdict: FAIL" in gate.extra["baseline_table"]
    assert any("toy_request_duration_seconds_bucket" in q.query for q in gate.queries)


def test_compare_is_inconclusive_when_prometheus_is_down(baseline_file: Path) -> None:
    from pytest_rollout.net import free_port

    proc = _cli("compare", str(baseline_file), "--prometheus", f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == 1
    assert "INCONCLUSIVE" in proc.stdout and "cannot connect" in proc.stdout


# ---- compare() on synthetic windows (no Prometheus) ------------------------------------------

BOUNDS = [0.001, 0.002, 0.003, 0.004, 0.005, 0.0065, 0.008, 0.01, 0.02, 0.05, math.inf]


def _snapshot(counts: list[float], rss: float = 30e6, cpu: float = 0.2, n: int = 60) -> Snapshot:
    cumulative = [float(sum(counts[: i + 1])) for i in range(len(counts))]
    return Snapshot(
        spec=BaselineSpec(selector='{job="x"}', latency_metric="x", window_s=float(n), step_s=1.0),
        at=1.8e9, bounds=BOUNDS, cumulative=cumulative, requests=cumulative[-1],
        rps=cumulative[-1] / n,
        rss=[[1.8e9 - n + i, rss] for i in range(n)],
        cpu=[[1.8e9 - n + i, cpu + (0.01 if i % 2 else -0.01)] for i in range(n)],
    )  # fmt: skip


HEALTHY = [0, 2000, 30000, 40000, 20000, 5000, 2000, 600, 300, 100, 0]


def test_identical_windows_pass_the_means_and_name_the_buckets_for_the_quantiles() -> None:
    # Bucket-honest bounds: a p50/p99 bucket 10-50 % wide cannot prove a 5 % bound, however
    # identical the windows; the row says which buckets to add instead of "longer windows".
    result = compare(_snapshot(HEALTHY), _snapshot(HEALTHY))
    assert [r.outcome for r in result.rows] == [
        "inconclusive",
        "inconclusive",
        "pass",
        "pass",
        "info",
    ]
    for row in result.rows[:2]:
        assert "undecidable with these buckets" in row.explanation, row.explanation
        assert "longer" not in row.explanation
    assert result.outcome == "inconclusive"


def test_fine_buckets_let_identical_windows_pass_the_latency_criteria() -> None:
    # Buckets 2 % apart where the latencies lie (what production needs, see rollout.toml's ci
    # waiver): the same criteria become decidable, and identical windows pass them.
    fine = [round(0.002 * 1.02**i, 7) for i in range(120)] + [math.inf]
    rng = np.random.default_rng(5)
    counts = np.histogram(rng.lognormal(np.log(0.004), 0.3, 400_000), bins=[0.0, *fine])[0]
    base = _snapshot(list(map(float, counts)))
    base.bounds = fine
    result = compare(base, base)
    assert [r.outcome for r in result.rows][:2] == ["pass", "pass"], result.table()


def test_shifted_latency_and_grown_rss_fail() -> None:
    slower = [0, 0] + HEALTHY[1:-2] + [0]  # every request one bucket slower
    result = compare(_snapshot(HEALTHY), _snapshot(slower, rss=33e6))
    rows = {r.metric: r for r in result.rows}
    assert rows["p50 latency"].outcome == "fail" and rows["RSS"].outcome == "fail"
    assert rows["RSS"].delta_pct == pytest.approx(10.0)
    assert result.outcome == "fail"
    p50 = rows["p50 latency"].explanation
    assert p50.startswith("current p50 is ") and "higher than the baseline's" in p50
    assert "beyond the +" in p50 and "treatment" not in p50


def test_changed_bucket_layout_is_inconclusive() -> None:
    other = _snapshot(HEALTHY)
    other.bounds = [b * 1.5 if math.isfinite(b) else b for b in BOUNDS]
    rows = {r.metric: r for r in compare(_snapshot(HEALTHY), other).rows}
    assert rows["p99 latency"].outcome == "inconclusive"
    assert "bucket layout" in rows["p99 latency"].explanation


def test_too_few_resource_samples_is_inconclusive() -> None:
    result = compare(_snapshot(HEALTHY, n=4), _snapshot(HEALTHY, n=4))
    rows = {r.metric: r for r in result.rows}
    assert rows["RSS"].outcome == "inconclusive" and result.outcome == "inconclusive"
    assert "1 baseline and 1 current batch means" in rows["RSS"].explanation
    assert "compare longer windows (rollout baseline save --window" in rows["RSS"].explanation


def test_undecided_row_is_current_vs_baseline_and_asks_for_a_longer_window() -> None:
    """Issue 17: 'treatment mean CPU ... about 35 treatment / 35 control samples would decide
    it' named groups a baseline comparison does not have, and a sample size its window fixes."""
    rng = np.random.default_rng(4)
    base, cur = _snapshot(HEALTHY), _snapshot(HEALTHY)
    base.cpu = [[t, 0.2 + rng.normal(0, 0.05)] for t, _ in base.cpu]
    cur.cpu = [[t, 0.2 + rng.normal(0, 0.05)] for t, _ in cur.cpu]
    result = compare(base, cur)
    cpu = next(r for r in result.rows if r.metric == "CPU")
    assert cpu.outcome == "inconclusive"
    text = cpu.explanation
    assert "treatment" not in text and "control" not in text and "samples would" not in text
    assert text.startswith("current mean CPU is ") and "the baseline's, 95 % interval" in text
    assert "12 baseline / 12 current batch means), so waiting cannot decide it" in text
    longer = re.search(r"compare windows about (\d+\.\d)x as long \((\w+) windows\)", text)
    assert longer is not None, text
    assert float(longer[1]) > 1.0 and parse_duration(longer[2]) > 60.0  # the window is 60 s
    assert cpu.n == {"baseline": 12, "current": 12}
    table = result.table()
    assert "treatment" not in table and "control" not in table
    assert "INCONCLUSIVE: CPU: current mean CPU is" in table


def test_snapshot_json_round_trip(tmp_path: Path) -> None:
    snap = _snapshot(HEALTHY)
    snap.save(tmp_path / "b.json")
    loaded = Snapshot.load(tmp_path / "b.json")
    assert loaded.bounds == snap.bounds and loaded.cumulative == snap.cumulative
    assert loaded.spec == snap.spec
    with pytest.raises(ValueError, match="not a baseline file"):
        (tmp_path / "bad.json").write_text('{"kind": "soak"}')
        Snapshot.load(tmp_path / "bad.json")


def test_comparator_without_baseline_is_inconclusive() -> None:
    gate = GateRecord(nodeid="x")
    prom = PromQuery(PrometheusSource(PromSettings(url="http://127.0.0.1:9"), 1.8e9), gate)
    with pytest.raises(Inconclusive, match="no baseline file"):
        BaselineComparator(prom).check()
