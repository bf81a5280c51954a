"""The ``[monitoring]`` and ``[slo]`` tables of rollout.toml, validated strictly into settings.

config.py passes both tables through raw; this module is their only consumer, so it owns their
schema.  Every problem is a :class:`ConfigError` naming the file, the key and the bad value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pytest_rollout.config import ConfigError, PhaseConfig, RolloutConfig, TableReader

_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ALERT_PREFIX = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_UID = re.compile(r"^[a-z0-9][a-z0-9-]{0,23}$")  # leaves room for "-overview" in Grafana's 40

# Sections of the runbook that are not phases; the runbook owns these headings.
ROLLBACK_ANCHOR = "rollback"
SLO_ANCHOR = "slo-burn-rate-alerts"

_REQUIRED_METRICS = (
    "requests",
    "latency",
    "quality",
    "stored_items",
    "formations",
    "formation_errors",
    "formation_latency",
    "fallbacks",
    "active_units",
    "flag",
    "rss",
    "cpu",
)
_OPTIONAL_METRICS = ("derived_items", "outcome_label", "ok_outcome", "flag_label")
_MONITORING_KEYS = (
    "title",
    "alert_prefix",
    "uid_prefix",
    "job",
    "runbook",
    "baseline_phase",
    "twin_job",
    "abort_for",
    "metrics",
    "environments",
)
_ENVIRONMENT_KEYS = ("abort_for",)
_SLO_KEYS = ("availability", "latency_objective_s", "latency_target")
_DEFAULT_ABORT_FOR_S = 300.0  # an abort condition must hold 5m to page


@dataclass(frozen=True)
class MetricNames:
    """Which series play which role; the renderer knows roles, rollout.toml knows names."""

    requests: str  # counter with the group label and ``outcome_label``
    latency: str  # histogram (``_bucket``/``_sum``/``_count``) with the group label
    quality: str  # histogram of a 0..1 quality score per request, with the group label
    stored_items: str  # gauge of items that must never drop (the RPO)
    formations: str  # counter of shadow work done
    formation_errors: str  # counter of failed shadow work
    formation_latency: str  # histogram of one unit of shadow work
    fallbacks: str  # counter of requests that fell back to the old path
    active_units: str  # gauge per group of distinct cohort units (the SRM denominator)
    flag: str  # gauge per flag: the flag value as the service sees it
    rss: str
    cpu: str  # counter of CPU seconds
    derived_items: tuple[str, ...] = ()  # gauges of state the new path builds (shadow panel)
    outcome_label: str = "outcome"
    ok_outcome: str = "ok"
    flag_label: str = "flag"


@dataclass(frozen=True)
class Slo:
    availability: float | None
    latency_objective_s: float | None
    latency_target: float | None


@dataclass(frozen=True)
class MonitoringSettings:
    source: str
    title: str
    alert_prefix: str
    uid_prefix: str
    job: str
    runbook: str
    baseline_phase: str
    # The job of a baseline replica running next to the service (same traffic, baseline flags):
    # resource-overhead alerts compare with it concurrently instead of the recorded baseline.
    twin_job: str | None
    abort_for_s: float
    metrics: MetricNames
    slo: Slo
    environment: str | None
    phases: Mapping[str, PhaseConfig]  # with the environment's overrides applied
    group_label: str
    control: str
    treatment: str

    def anchor(self, phase: str) -> str:
        """The runbook heading of a phase: "phase2" + "canary" -> "phase-2-canary"."""
        spaced = re.sub(r"^phase(\d+)$", r"phase \1", phase)
        return slug(f"{spaced} {self.phases[phase].name}")

    def runbook_url(self, anchor: str) -> str:
        return f"{self.runbook}#{anchor}"


def slug(text: str) -> str:
    """A heading's anchor: lower case, every run of other characters one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _metrics(monitoring: TableReader) -> MetricNames:
    r = TableReader(
        monitoring.source,
        monitoring.name("metrics"),
        monitoring.get("metrics"),
        f"a table with {', '.join(_REQUIRED_METRICS)}",
    )
    r.check_keys(_REQUIRED_METRICS + _OPTIONAL_METRICS)
    names = {key: r.required_string(key, _METRIC) for key in _REQUIRED_METRICS}
    derived = r.get("derived_items")
    if derived is None:
        derived = []
    if not isinstance(derived, list) or not all(
        isinstance(d, str) and _METRIC.match(d) for d in derived
    ):
        r.fail("derived_items", derived, "a list of metric names")
    return MetricNames(
        **names,
        derived_items=tuple(derived),
        outcome_label=r.string("outcome_label", "outcome", _LABEL),
        ok_outcome=r.string("ok_outcome", "ok"),
        flag_label=r.string("flag_label", "flag", _LABEL),
    )


def _fraction(r: TableReader, key: str) -> float | None:
    value = r.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        r.fail(key, value, "a number strictly between 0 and 1")
    return float(value)


def _slo(source: str, raw: Mapping[str, Any]) -> Slo:
    r = TableReader(source, "slo", dict(raw))
    r.check_keys(_SLO_KEYS)
    objective = r.get("latency_objective_s")
    if objective is not None and (
        isinstance(objective, bool)
        or not isinstance(objective, int | float)
        or not 0 < objective < math.inf  # written so NaN fails too
    ):
        r.fail("latency_objective_s", objective, "seconds > 0 (a bucket bound)")
    slo = Slo(
        availability=_fraction(r, "availability"),
        latency_objective_s=None if objective is None else float(objective),
        latency_target=_fraction(r, "latency_target"),
    )
    if (slo.latency_objective_s is None) != (slo.latency_target is None):
        raise ConfigError(
            f"{source}: slo.latency_objective_s and slo.latency_target go together; "
            "set both or neither"
        )
    return slo


def _environment_overrides(
    monitoring: TableReader, config: RolloutConfig, environment: str | None
) -> TableReader:
    """``[monitoring.environments.*]``, each checked; the one for ``environment`` (or empty)."""
    envs = monitoring.sub("environments", "a table of environment tables")
    chosen = TableReader(monitoring.source, monitoring.name(f"environments.{environment}"), {})
    if envs is None:
        return chosen
    for name, table in sorted(envs.items()):
        if name not in config.environments:
            envs.fail(name, name, "the name of an [environments.NAME] table")
        r = TableReader(envs.source, envs.name(name), table)
        r.check_keys(_ENVIRONMENT_KEYS)
        if name == environment:
            chosen = r
    return chosen


def load_settings(config: RolloutConfig, environment: str | None = None) -> MonitoringSettings:
    """Validate ``[monitoring]``/``[slo]`` and resolve the phases for ``environment``."""
    source = config.source
    if not config.monitoring:
        raise ConfigError(f"{source}: no [monitoring] table; see docs/operations/monitoring.md")
    r = TableReader(source, "monitoring", dict(config.monitoring))
    r.check_keys(_MONITORING_KEYS)
    if environment is not None and environment not in config.environments:
        known = ", ".join(sorted(config.environments)) or "none"
        raise ConfigError(f"{source}: environment {environment!r} is not defined (known: {known})")
    # Scalars first, in the order of the table: the first error a reader sees is the first line.
    title = r.required_string("title")
    alert_prefix = r.required_string("alert_prefix", _ALERT_PREFIX)
    uid_prefix = r.required_string("uid_prefix", _UID)
    job = r.required_string("job")
    runbook = r.required_string("runbook")
    metrics = _metrics(r)
    overrides = _environment_overrides(r, config, environment)
    abort_for_s = r.duration("abort_for", _DEFAULT_ABORT_FOR_S)
    if "abort_for" in overrides.table:
        abort_for_s = overrides.duration("abort_for", _DEFAULT_ABORT_FOR_S)
    # A profile shortens windows; alerts still tell phases apart by the production flag states
    # (a rehearsal may run its canary at another cohort size, which must not reshuffle phases).
    phases = {
        key: replace(config.phase(key, environment), flags=config.phases[key].flags)
        for key in sorted(config.phases)
    }
    baseline = r.string("baseline_phase", "phase0")
    r.check_phase(baseline, config.known_phases, "baseline_phase")
    if baseline not in phases:  # built in, but no [phases.X] table: no flags tell it apart
        r.fail("baseline_phase", baseline, f"one of the phases ({', '.join(phases)})")
    twin_job = r.get("twin_job")
    if twin_job is not None and (not isinstance(twin_job, str) or not twin_job or twin_job == job):
        r.fail("twin_job", twin_job, f"the job name of the baseline replica (not {job!r})")
    return MonitoringSettings(
        source=source,
        title=title,
        alert_prefix=alert_prefix,
        uid_prefix=uid_prefix,
        job=job,
        runbook=runbook,
        baseline_phase=baseline,
        twin_job=twin_job,
        abort_for_s=abort_for_s,
        metrics=metrics,
        slo=_slo(source, config.slo),
        environment=environment,
        phases=phases,
        group_label=config.group_label,
        control=config.control,
        treatment=config.treatment,
    )
