"""Flags as the service sees them, read per request through the OpenFeature flagd provider.

The provider runs in FILE mode: it re-reads the flag file when its mtime changes (checked every
``deadline_ms``), so a change takes effect within about half a second, no restart. A broken file
keeps the last good flags and turns the provider status to ERROR.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent

from pytest_rollout.flags.base import FlagError
from pytest_rollout.flags.flagd_format import SCHEMA_URL, cohort_definition
from pytest_rollout.flags.flagd_store import read_flags, write_document_atomically

FlagKind = Literal["boolean", "cohort", "number"]
DUAL_MEMORY = "dual_memory_types"
CONCEPT_FORMATION = "concept_formation"
BLENDED_RECALL = "blended_recall"
SEMANTIC_WEIGHT = "semantic_weight"
FLAG_KINDS: dict[str, FlagKind] = {
    DUAL_MEMORY: "boolean",
    CONCEPT_FORMATION: "boolean",
    BLENDED_RECALL: "cohort",
    SEMANTIC_WEIGHT: "number",
}
# What `python -m staging up` starts with: everything off, the control experience for all.
INITIAL_VALUES: dict[str, bool | float] = {
    DUAL_MEMORY: False,
    CONCEPT_FORMATION: False,
    BLENDED_RECALL: 0.0,
    SEMANTIC_WEIGHT: 0.3,
}
DEFAULT_SEMANTIC_WEIGHT = 0.3
POLL_MS = 500


def write_initial_flag_file(path: Path, values: dict[str, bool | float] | None = None) -> None:
    """Create the staging flag file (flagd JSON) with the shared writer's atomic write."""
    chosen = {**INITIAL_VALUES, **(values or {})}
    flags: dict[str, object] = {}
    for name, kind in FLAG_KINDS.items():
        value = chosen[name]
        if kind == "boolean":
            flags[name] = {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "on" if value else "off",
            }
        elif kind == "cohort":
            flags[name] = cohort_definition(float(value))
        else:
            flags[name] = {
                "state": "ENABLED",
                "variants": {"value": float(value)},
                "defaultVariant": "value",
            }
    write_document_atomically(path, {"$schema": SCHEMA_URL, "flags": flags})


@dataclass(frozen=True)
class SpaceFlags:
    """What one request gets: the cohort decides ``group`` and whether recall is blended."""

    blended: bool
    semantic_weight: float

    @property
    def group(self) -> str:
        return "treatment" if self.blended else "control"


class FlagReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._provider = FlagdProvider(
            resolver_type=ResolverType.FILE,
            offline_flag_source_path=os.fspath(path),
            deadline_ms=POLL_MS,
        )
        # A domain of our own: the SDK's registry is process-wide, and tests may run two services.
        self._domain = f"engram-{uuid.uuid4().hex}"
        # And wait: until the file is loaded, every evaluation would answer the default.
        api.set_provider_and_wait(self._provider, domain=self._domain)
        self._client = api.get_client(self._domain)
        self._percent = 0.0
        # Per-space answers until the provider loads a new file: evaluating the fractional
        # cohort costs ~35 us a request, which in a service this small reads as several percent
        # of CPU "overhead" of dual memory that is really flag evaluation.
        self._by_space: dict[str, SpaceFlags] = {}
        self._refresh_percent()
        # The cohort percent is re-read when the provider reports it loaded a new file, so
        # status shows the percent the provider is bucketing with, not a newer file's.
        self._client.add_handler(
            ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, lambda _: self._refresh_percent()
        )

    def close(self) -> None:
        self._provider.shutdown()

    def _bool(self, name: str, context: EvaluationContext | None = None) -> bool:
        return self._client.get_boolean_value(name, False, context)

    def dual_memory(self) -> bool:
        return self._bool(DUAL_MEMORY)

    def formation_enabled(self) -> bool:
        """Concept formation runs only with dual-memory types on (it is their master switch)."""
        return self.dual_memory() and self._bool(CONCEPT_FORMATION)

    def for_space(self, space: str) -> SpaceFlags:
        cached = self._by_space.get(space)
        if cached is not None:
            return cached
        # Cohort bucketing hashes the flag key with space_id: stable across processes.
        context = EvaluationContext(targeting_key=space, attributes={"space_id": space})
        blended = self.dual_memory() and self._bool(BLENDED_RECALL, context)
        weight = self._client.get_float_value(SEMANTIC_WEIGHT, DEFAULT_SEMANTIC_WEIGHT)
        answer = SpaceFlags(blended=blended, semantic_weight=weight)
        if len(self._by_space) < 100_000:  # bounded: a space-id scan cannot grow it forever
            self._by_space[space] = answer
        return answer

    def provider_status(self) -> str:
        return str(self._client.get_provider_status().value)

    @property
    def cohort_percent(self) -> float:
        """The percent the cohort buckets with now (changes when the flag file does)."""
        return self._percent

    def _refresh_percent(self) -> None:
        """The cohort's percent, which no single evaluation shows: parsed from the file by the
        module that writes it. A broken file keeps the last good value, as the provider does.
        Also forgets the per-space answers: the provider has just loaded a new file."""
        self._by_space = {}
        with contextlib.suppress(FlagError, KeyError):
            self._percent = float(read_flags(self.path)[BLENDED_RECALL].value)

    def view(self) -> dict[str, bool | float]:
        """Each flag as the service evaluates it; the cohort as the percent it buckets with."""
        return {
            DUAL_MEMORY: self.dual_memory(),
            CONCEPT_FORMATION: self._bool(CONCEPT_FORMATION),
            BLENDED_RECALL: self._percent,
            SEMANTIC_WEIGHT: self._client.get_float_value(SEMANTIC_WEIGHT, DEFAULT_SEMANTIC_WEIGHT),
        }

    def gauge_values(self) -> dict[str, float]:
        return {name: float(value) for name, value in self.view().items()}
