"""The metric contract of the memory service (design.md): what monitoring and gates rely on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # types only: the fixture classes load when the gates run, as they would without annotations
    from pytest_rollout import Gate, Phase, Prom

# name -> labels every series of it must carry (besides job/instance)
CONTRACT_METRICS: dict[str, tuple[str, ...]] = {
    "engram_recall_duration_seconds_bucket": ("group", "mode", "le"),
    "engram_recall_total": ("group", "outcome"),
    "engram_recall_confidence_bucket": ("group", "le"),
    "engram_recall_results_bucket": ("group", "le"),
    "engram_active_spaces": ("group",),
    "engram_cohort_assignments_total": ("group",),
    "engram_episodes": (),
    "engram_concepts": (),
    "engram_bindings": (),
    "engram_concepts_formed_total": (),
    "engram_concept_formation_errors_total": (),
    "engram_concept_formation_duration_seconds_bucket": ("le",),
    "engram_bindings_created_total": (),
    "engram_concept_coherence": (),
    "engram_semantic_pathway_timeouts_total": (),
    "engram_feature_flag": ("flag",),
    # Which replica a process is (REPLICA_LABEL): phase 1 compares the shadow with its twin.
    "process_resident_memory_bytes": ("replica",),
    "process_cpu_seconds_total": ("replica",),
}

# Phase 1 runs a baseline replica next to the shadow (same traffic, phase 0 flags); the process
# metrics of each carry this label (a target label of the scrape config).
REPLICA_LABEL = "replica"
SHADOW_REPLICA = "shadow"
BASELINE_REPLICA = "baseline"


def require_no_episodes_lost(prom: Prom, phase: Phase, gate: Gate) -> None:
    """RPO 0: the stored-episode count never falls below its peak in the window."""
    w = f"{int(phase.window_s)}s"
    now = prom.value("sum(engram_episodes)")
    peak = prom.value(f"max_over_time(sum(engram_episodes)[{w}:5s])")
    lost = max(peak - now, 0.0)
    limit = phase.threshold("episodes_lost_max")
    gate.observe(
        metric="episodes lost (peak minus now)", observed=lost, threshold=limit, unit="episodes"
    )
    assert lost <= limit, (
        f"episode count fell from {peak:.0f} to {now:.0f} in the last {w}: RPO breached — roll "
        "back (rollback.md) and restore the lost episodes from backup"
    )
