"""A short real soak of the staging service, sampled through its Prometheus like production."""

from __future__ import annotations

import io
from pathlib import Path

from pytest_rollout.load.runner import SoakRunner
from pytest_rollout.load.soak_config import SoakConfig
from staging.stack import Stack
from staging.testing import staging_stack

__all__ = ["staging_stack"]  # the fixture, used by name below

REPO = Path(__file__).resolve().parents[2]


def test_short_soak_of_staging_is_clean(staging_stack: Stack, tmp_path: Path) -> None:
    progress = io.StringIO()
    config = SoakConfig(
        target=staging_stack.engram_url, locustfile=REPO / "staging" / "locustfile.py",
        users=8, spawn_rate=8.0, duration_s=14.0, warmup_s=4.0, progress_every_s=5.0,
        prometheus_url=staging_stack.prometheus_url, prometheus_selector='{job="engram"}',
    )  # fmt: skip
    result = SoakRunner(tmp_path, progress=progress).run(config, out=tmp_path / "staging.json")
    result.check_no_crash(max_failure_ratio=0.0)
    summary = result.summary()
    # 8 users with 10-100 ms think time ask for ~150 req/s; the generator must deliver it.
    assert summary["rps"] is not None and summary["rps"] > 60, summary
    assert summary["rss_samples"] >= 8 and summary["cpu_cores_mean"] is not None
    assert result.leak_estimate().n == summary["rss_samples"]
    assert (tmp_path / "staging.json").is_file()
    assert "sampling http://127.0.0.1" in progress.getvalue()
