"""RPO zero: episodes and their checksum survive flag flips, concept formation and kill -9."""

from __future__ import annotations

import time
import uuid

from staging.client import EngramClient
from staging.seed import seed
from staging.stack import Stack


def _ours(integrity: dict, prefix: str) -> dict:
    return {name: v for name, v in integrity["spaces"].items() if name.startswith(prefix)}


def test_integrity_holds_across_flags_formation_and_kill_9(
    engram: EngramClient, staging_stack: Stack
) -> None:
    prefix = f"rpo{uuid.uuid4().hex[:6]}"
    seed(staging_stack.engram_url, episodes=1500, spaces=5, prefix=prefix)
    baseline = _ours(engram.integrity(), prefix)
    assert sum(v["episodes"] for v in baseline.values()) == 1500

    engram.set_flags(dual_memory_types=True, concept_formation=True, blended_recall=100)
    deadline = time.monotonic() + 10
    while engram.status()["concepts"] == 0:
        assert time.monotonic() < deadline, "no concept formed within 10 s"
        time.sleep(0.1)
    engram.set_flags(blended_recall=30, semantic_weight=0.8)
    assert _ours(engram.integrity(), prefix) == baseline

    # Formation is still on while the process dies.
    before = engram.status()
    pid = staging_stack.state.service_pid
    staging_stack.restart_service(kill=True)
    assert staging_stack.state.service_pid != pid

    assert _ours(engram.integrity(), prefix) == baseline
    after = engram.status()
    assert after["episodes"] >= before["episodes"]
    assert after["concepts"] >= before["concepts"] > 0
    assert after["bindings"] >= before["bindings"] > 0
    assert after["flags"]["blended_recall"] == 30.0
    hits = engram.recall(f"{prefix}-0000", "garlic simmer tomato")["results"]
    assert hits and all("concept" in h for h in hits)
    staging_stack.wait_for_scrape(timeout_s=20)
