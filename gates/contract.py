"""The metric contract of the memory service (design.md): what monitoring and gates rely on."""

from __future__ import annotations

# name -> labels every series of it must carry (besides job/instance)
CONTRACT_METRICS: dict[str, tuple[str, ...]] = {
    "engram_recall_duration_seconds_bucket": ("group", "mode", "le"),
    "engram_recall_total": ("group", "outcome"),
    "engram_recall_confidence_bucket": ("group", "le"),
    "engram_recall_results_bucket": ("group", "le"),
    "engram_active_spaces": ("group",),
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
    "process_resident_memory_bytes": (),
    "process_cpu_seconds_total": (),
}
