"""The baseline twin: a second replica with its own data and phase 0 flags, fed the same traffic."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import requests

from staging.client import EngramClient
from staging.stack import Stack
from staging.traffic import drive


def _integrity(url: str, prefix: str) -> dict[str, Any]:
    spaces = requests.get(f"{url}/api/v1/dual_memory/integrity", timeout=10).json()["spaces"]
    return {name: s for name, s in spaces.items() if name.startswith(prefix)}


def test_mirrored_traffic_grows_both_replicas_alike_in_their_own_data(
    staging_stack: Stack,
) -> None:
    prefix = f"mirror-{uuid.uuid4().hex[:6]}"
    summary = drive(
        staging_stack.engram_url,
        duration_s=1.5,
        rps=60,
        spaces=8,
        write_ratio=0.5,
        prefix=prefix,
        mirror_urls=[staging_stack.baseline_url],
    )
    assert summary.by_kind["remember"] > 5 and summary.mirror_failures == 0
    assert summary.mirrored == summary.requests
    shadow = _integrity(staging_stack.engram_url, prefix)
    twin = _integrity(staging_stack.baseline_url, prefix)
    # Same episodes in each space, written to two stores: the same content, not the same files.
    assert shadow and shadow == twin
    state = staging_stack.state
    assert state.data_dir != state.baseline_data_dir
    for data_dir in (state.data_dir, state.baseline_data_dir):
        assert any(p.name.startswith(prefix) for p in Path(data_dir).rglob("*"))


def test_flags_change_the_shadow_replica_only(staging_stack: Stack, engram: EngramClient) -> None:
    engram.set_flags(dual_memory_types=True, concept_formation=True)
    with EngramClient(staging_stack.baseline_url) as twin:
        assert twin.status()["flags"] == {
            "dual_memory_types": False,
            "concept_formation": False,
            "blended_recall": 0.0,
            "semantic_weight": 0.3,
        }
    assert engram.status()["flags"]["concept_formation"] is True


def test_stopping_one_replica_keeps_the_other_running_and_both_datasets(
    staging_stack: Stack,
) -> None:
    space = f"keep-{uuid.uuid4().hex[:6]}"
    for url in (staging_stack.engram_url, staging_stack.baseline_url):
        requests.post(f"{url}/api/v1/spaces/{space}/episodes", json={"text": "a b"}, timeout=5)
    before = {
        url: _integrity(url, space)
        for url in (staging_stack.engram_url, staging_stack.baseline_url)
    }
    staging_stack.stop_replica("baseline")
    try:
        assert not staging_stack.running()
        # The service serves on, with its data, while its twin is down.
        assert _integrity(staging_stack.engram_url, space) == before[staging_stack.engram_url]
    finally:
        staging_stack.start_replica("baseline")
    assert staging_stack.running()
    assert _integrity(staging_stack.baseline_url, space) == before[staging_stack.baseline_url]


def test_prometheus_labels_each_replica_and_keeps_only_the_twins_process_metrics(
    staging_stack: Stack,
) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        replicas = {
            r["metric"].get("replica"): r["metric"]["job"]
            for r in staging_stack.query("process_resident_memory_bytes")
        }
        if len(replicas) == 2:
            break
        time.sleep(0.2)
    assert replicas == {"shadow": "engram", "baseline": "engram-baseline"}
    twin_series = staging_stack.query('{replica="baseline", __name__=~"engram_.+"}')
    assert twin_series == []  # its engram_* would join every sum the gates take
    assert staging_stack.query('engram_episodes{replica="shadow"}')
