"""Real soaks: Locust in subprocesses against toy targets started here, judged like a gate.

Runs are short (about 12 s with 1 s sampling), so the leak limit used here is sized to what such a
run can judge; the 1 %/h production limit is shown to come out *inconclusive* on a short run.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pytest_rollout.gate import GateRecord
from pytest_rollout.load.result import SoakResult
from pytest_rollout.load.runner import SoakRunner
from pytest_rollout.load.soak_config import SoakConfig
from pytest_rollout.outcomes import Inconclusive
from tests.load.helpers import TOY_LOCUSTFILE, TargetFactory

# About 6 s of samples after the warm-up can only judge limits whose minimum duration
# (leak.min_leak_duration_s) is shorter: 1500 %/h needs 3.6 s. The leaking target grows by tens
# of thousands of %/h (8 KB per request on a ~27 MB process).
SHORT_RUN_LIMIT_PCT_H = 1500.0
LEAK_BYTES_PER_REQUEST = 8192


def _config(url: str, **overrides: object) -> SoakConfig:
    base: dict[str, object] = dict(
        target=url, locustfile=TOY_LOCUSTFILE, users=5, spawn_rate=50.0, duration_s=12.0,
        warmup_s=4.0, interval_s=1.0, sample_interval_s=1.0, progress_every_s=5.0,
    )  # fmt: skip
    base.update(overrides)
    return SoakConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def soaks(
    toy_targets: TargetFactory, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, object]:
    """A healthy target under 2 Locust workers and a leaking one under 1 process, side by side."""
    healthy = toy_targets.start()
    leaking = toy_targets.start(leak_bytes=LEAK_BYTES_PER_REQUEST)
    workdir = tmp_path_factory.mktemp("soaks")
    progress = io.StringIO()
    runner = SoakRunner(workdir, progress=progress)
    with ThreadPoolExecutor(2) as pool:
        healthy_run = pool.submit(
            runner.run,
            _config(healthy.url, workers=2, target_metrics_url=healthy.metrics_url),
            workdir / "healthy.json",
        )
        leaking_run = pool.submit(runner.run, _config(leaking.url, target_pid=leaking.pid))
        return {
            "healthy": healthy_run.result(timeout=90),
            "leaking": leaking_run.result(timeout=90),
            "progress": progress.getvalue(),
            "healthy_json": workdir / "healthy.json",
        }


def test_leaking_target_is_caught(soaks: dict[str, object]) -> None:
    result = soaks["leaking"]
    assert isinstance(result, SoakResult)
    gate = GateRecord(nodeid="soak::leak")
    with pytest.raises(AssertionError, match="memory leak: RSS slope"):
        result.check_no_leak(limit_pct_per_hour=SHORT_RUN_LIMIT_PCT_H, gate=gate)
    assert gate.ci is not None and gate.ci[0] > SHORT_RUN_LIMIT_PCT_H
    assert gate.unit == "%/h" and gate.series["rss_bytes"]
    result.check_no_crash(max_failure_ratio=0.0)  # leaking, but alive and answering


def test_healthy_target_passes_under_two_workers(soaks: dict[str, object]) -> None:
    result = soaks["healthy"]
    assert isinstance(result, SoakResult)
    gate = GateRecord(nodeid="soak::healthy")
    verdict = result.check_no_leak(limit_pct_per_hour=SHORT_RUN_LIMIT_PCT_H, gate=gate)
    assert verdict.outcome == "pass"
    assert verdict.estimate.ci_pct_per_hour[1] < SHORT_RUN_LIMIT_PCT_H
    result.check_no_crash(gate=gate, max_failure_ratio=0.0)
    summary = result.summary()
    assert summary["workers"] == 2, "both Locust workers must have reported"
    assert summary["requests"] > 500 and summary["failures"] == 0
    assert summary["p50_ms"] is not None and summary["p99_ms"] >= summary["p50_ms"]
    assert summary["cpu_cores_mean"] is not None and 0 < summary["cpu_cores_mean"] < 2


def test_short_run_cannot_prove_one_percent_per_hour(soaks: dict[str, object]) -> None:
    result = soaks["healthy"]
    assert isinstance(result, SoakResult)
    with pytest.raises(
        Inconclusive, match=r"too short to tell a leak .* 1 %/h limit; soak for at least 90 min"
    ):
        result.check_no_leak(limit_pct_per_hour=1.0)


def test_warmup_is_excluded_from_figures(soaks: dict[str, object]) -> None:
    result = soaks["healthy"]
    assert isinstance(result, SoakResult)
    warm = [i for i in result.intervals if i.warmup]
    measured = result.measured_intervals()
    assert warm and measured
    assert all(i.t0 >= result.warmup_end for i in measured)
    assert sum(i.requests for i in measured) == result.summary()["requests"]
    assert sum(result.measured_histogram.values()) == result.summary()["requests"]
    assert result.leak_estimate().n == len([s for s in result.resources if not s.warmup])


def test_results_json_round_trips(soaks: dict[str, object]) -> None:
    path = soaks["healthy_json"]
    assert isinstance(path, Path)
    data = json.loads(path.read_text())
    assert data["kind"] == "soak" and data["config"]["workers"] == 2
    assert {"p50_ms", "p95_ms", "p99_ms", "rps", "failures"} <= set(data["intervals"][-1])
    assert (
        data["leak"]["slope_pct_per_hour"] is not None and len(data["leak"]["ci_pct_per_hour"]) == 2
    )
    assert data["resources"] and {"rss_bytes", "cpu_seconds"} <= set(data["resources"][0])
    loaded = SoakResult.load(path)
    original = soaks["healthy"]
    assert isinstance(original, SoakResult)
    assert loaded.summary() == original.summary()
    assert loaded.leak_verdict(SHORT_RUN_LIMIT_PCT_H).outcome == "pass"


def test_progress_lines_are_shown(soaks: dict[str, object]) -> None:
    progress = str(soaks["progress"])
    assert "master + 2 local worker(s)" in progress
    assert progress.count("req/s p50") >= 2, progress
    assert "rss " in progress and "done (run time reached)" in progress


@pytest.fixture(scope="module")
def crashes(
    toy_targets: TargetFactory, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, SoakResult]:
    """One target restarts mid-soak (same port, new process); another one dies for good."""
    restarting = toy_targets.start()
    dying = toy_targets.start()
    workdir = tmp_path_factory.mktemp("crashes")
    runner = SoakRunner(workdir, progress=io.StringIO())

    def restart_then_kill() -> None:
        time.sleep(5.0)
        restarting.stop()
        toy_targets.start(port=restarting.port)
        dying.stop()

    chaos = threading.Thread(target=restart_then_kill)
    with ThreadPoolExecutor(2) as pool:
        restarted = pool.submit(
            runner.run,
            _config(restarting.url, duration_s=10.0, warmup_s=2.0,
                    target_metrics_url=restarting.metrics_url),
        )  # fmt: skip
        died = pool.submit(runner.run, _config(dying.url, duration_s=10.0, target_pid=dying.pid))
        chaos.start()
        results = {"restarted": restarted.result(timeout=60), "died": died.result(timeout=60)}
    chaos.join()
    return results


def test_restart_is_detected(crashes: dict[str, SoakResult]) -> None:
    result = crashes["restarted"]
    assert len(result.restarts) == 1
    restart = result.restarts[0]
    assert restart.start_time - restart.previous_start_time > 3.0
    with pytest.raises(AssertionError, match=r"target restarted 1 time\(s\)"):
        result.check_no_crash()
    assert result.completed


def test_target_that_dies_fails_the_soak_early(crashes: dict[str, SoakResult]) -> None:
    result = crashes["died"]
    assert result.target_gone is not None and "is gone" in result.target_gone
    assert not result.completed and result.stop_reason.startswith("target went away")
    assert result.ended_at - result.started_at < 9.0, "the soak must stop once the target is gone"
    with pytest.raises(AssertionError, match="target went away"):
        result.check_no_crash()


def test_soak_cli_fails_on_leak(toy_targets: TargetFactory, tmp_path: Path) -> None:
    leaking = toy_targets.start(leak_bytes=LEAK_BYTES_PER_REQUEST)
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest_rollout", "soak", "--target", leaking.url,
            "--locustfile", str(TOY_LOCUSTFILE), "--users", "4", "--spawn-rate", "40",
            "--duration", "9s", "--warmup", "2s", "--interval", "1s", "--sample-interval", "1s",
            "--progress-every", "3s", "--target-pid", str(leaking.pid),
            "--leak-limit", str(SHORT_RUN_LIMIT_PCT_H), "--out", str(out),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL          RSS growth: memory leak" in proc.stdout
    assert "pass          no crash" in proc.stdout
    assert "[rollout soak]" in proc.stderr and "req/s" in proc.stderr
    data = json.loads(out.read_text())
    assert data["leak"]["ci_pct_per_hour"][0] > SHORT_RUN_LIMIT_PCT_H
    assert data["summary"]["requests"] > 0


def test_soak_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_rollout", "soak", "--target", "http://127.0.0.1:9",
         "--locustfile", str(tmp_path / "missing.py"), "--duration", "1x"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "bad duration '1x'" in proc.stderr
    zero = subprocess.run(
        [sys.executable, "-m", "pytest_rollout", "soak", "--target", "http://127.0.0.1:9",
         "--locustfile", str(tmp_path / "missing.py"), "--leak-limit", "0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert zero.returncode == 2
    assert "--leak-limit: must be the largest acceptable RSS growth in %/h, above 0" in zero.stderr
