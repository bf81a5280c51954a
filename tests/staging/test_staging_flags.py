"""Flags are read per request through the flagd provider: a change bites within a second."""

from __future__ import annotations

import time
import uuid

from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

from staging.client import EngramClient
from staging.stack import Stack


def _wait_for_mode(engram: EngramClient, space: str, mode: str, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if engram.recall(space, "garlic basil")["mode"] == mode:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"space {space} not in mode {mode} after {timeout_s} s")


def test_blended_recall_turns_on_and_off_within_a_second(engram: EngramClient) -> None:
    space = f"flip-{uuid.uuid4().hex[:8]}"
    engram.remember(space, "garlic basil tomato")
    assert engram.recall(space, "garlic basil")["mode"] == "episodic"

    engram.set_flags(dual_memory_types=True, wait=False)
    engram.set_flags(blended_recall=100, wait=False)
    took_on = _wait_for_mode(engram, space, "blended", timeout_s=3)
    answer = engram.recall(space, "garlic basil")
    assert answer["group"] == "treatment"

    engram.set_flags(blended_recall=0, wait=False)
    took_off = _wait_for_mode(engram, space, "episodic", timeout_s=3)
    assert engram.recall(space, "garlic basil")["group"] == "control"
    assert took_on < 1.2 and took_off < 1.2, (took_on, took_off)


def test_dual_memory_types_is_the_master_switch(engram: EngramClient) -> None:
    space = f"master-{uuid.uuid4().hex[:8]}"
    engram.remember(space, "trail summit ridge")
    engram.set_flags(blended_recall=100)
    assert engram.recall(space, "trail summit")["mode"] == "episodic"
    engram.set_flags(dual_memory_types=True)
    assert engram.recall(space, "trail summit")["mode"] == "blended"


def test_status_and_flag_gauges_show_what_the_service_sees(engram: EngramClient) -> None:
    engram.set_flags(dual_memory_types=True, semantic_weight=0.6, blended_recall=40)
    status = engram.status()
    assert status["provider"] == "READY"
    assert status["flags"] == {
        "dual_memory_types": True,
        "concept_formation": False,
        "blended_recall": 40.0,
        "semantic_weight": 0.6,
    }
    metrics = engram.request("GET", "/metrics").text
    assert 'engram_feature_flag{flag="dual_memory_types"} 1.0' in metrics
    assert 'engram_feature_flag{flag="blended_recall"} 40.0' in metrics
    assert 'engram_feature_flag{flag="semantic_weight"} 0.6' in metrics


def test_cohort_assignment_matches_flagd_bucketing(
    engram: EngramClient, staging_stack: Stack
) -> None:
    """The service's group for a space is exactly what an independent flagd evaluation says."""
    engram.set_flags(dual_memory_types=True, blended_recall=50)
    provider = FlagdProvider(
        resolver_type=ResolverType.FILE,
        offline_flag_source_path=str(staging_stack.flags_path),
        deadline_ms=500,
    )
    domain = f"test-{uuid.uuid4().hex}"
    api.set_provider_and_wait(provider, domain=domain)
    try:
        client = api.get_client(domain)
        spaces = [f"cohort-{i:03d}" for i in range(60)]
        expected = {
            s: client.get_boolean_value(
                "blended_recall",
                False,
                EvaluationContext(targeting_key=s, attributes={"space_id": s}),
            )
            for s in spaces
        }
    finally:
        provider.shutdown()
    seen = {s: engram.recall(s, "anything here")["group"] == "treatment" for s in spaces}
    assert seen == expected
    assert 15 <= sum(seen.values()) <= 45  # about half, and both cohorts present
