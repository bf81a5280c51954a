"""The ``[monitoring]`` and ``[slo]`` tables of rollout.toml, validated strictly into settings.

config.py passes both tables through raw; this module is their only consumer, so it owns their
schema.  Every problem is a :class:`ConfigError` naming the file, the key and the bad value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pytest_rollout.config import ConfigError, PhaseConfig, RolloutConfig
from pytest_rollout.durations import parse_duration

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
    "abort_for",
    "metrics",
    "environments",
)
_ENVIRONMENT_KEYS = ("abort_for",)
_SLO_KEYS = ("availability", "latency_objective_s", "latency_target")


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


def _fail(source: str, key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{source}: {key} = {value!r}: expected {expected}")


def _reject_unknown(
    source: str, where: str, table: Mapping[str, Any], known: tuple[str, ...]
) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {where}.{unknown[0]} (known here: {', '.join(sorted(known))})"
        )


def _string(
    source: str,
    table: Mapping[str, Any],
    where: str,
    key: str,
    pattern: re.Pattern[str] | None,
    default: str | None = None,
) -> str:
    value = table.get(key, default)
    if value is None:
        raise ConfigError(f"{source}: {where}.{key} is required")
    if not isinstance(value, str) or not value or (pattern and not pattern.match(value)):
        expected = f"a string matching {pattern.pattern}" if pattern else "a non-empty string"
        raise _fail(source, f"{where}.{key}", value, expected)
    return value


def _duration(source: str, table: Mapping[str, Any], where: str, key: str, default: str) -> float:
    value = table.get(key, default)
    try:
        return parse_duration(value)
    except ValueError:
        raise _fail(source, f"{where}.{key}", value, "a duration such as '30s' or '5m'") from None


def _fraction(source: str, table: Mapping[str, Any], key: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise _fail(source, f"slo.{key}", value, "a number strictly between 0 and 1")
    return float(value)


def _metrics(source: str, raw: Any) -> MetricNames:
    where = "monitoring.metrics"
    if not isinstance(raw, dict):
        raise _fail(source, where, raw, f"a table with {', '.join(_REQUIRED_METRICS)}")
    _reject_unknown(source, where, raw, _REQUIRED_METRICS + _OPTIONAL_METRICS)
    names = {key: _string(source, raw, where, key, _METRIC) for key in _REQUIRED_METRICS}
    derived = raw.get("derived_items", [])
    if not isinstance(derived, list) or not all(
        isinstance(d, str) and _METRIC.match(d) for d in derived
    ):
        raise _fail(source, f"{where}.derived_items", derived, "a list of metric names")
    return MetricNames(
        **names,
        derived_items=tuple(derived),
        outcome_label=_string(source, raw, where, "outcome_label", _LABEL, "outcome"),
        ok_outcome=_string(source, raw, where, "ok_outcome", None, "ok"),
        flag_label=_string(source, raw, where, "flag_label", _LABEL, "flag"),
    )


def _slo(source: str, raw: Mapping[str, Any]) -> Slo:
    _reject_unknown(source, "slo", raw, _SLO_KEYS)
    objective = raw.get("latency_objective_s")
    if objective is not None and (
        isinstance(objective, bool) or not isinstance(objective, int | float) or objective <= 0
    ):
        raise _fail(source, "slo.latency_objective_s", objective, "seconds > 0 (a bucket bound)")
    slo = Slo(
        availability=_fraction(source, raw, "availability"),
        latency_objective_s=None if objective is None else float(objective),
        latency_target=_fraction(source, raw, "latency_target"),
    )
    if (slo.latency_objective_s is None) != (slo.latency_target is None):
        raise ConfigError(
            f"{source}: slo.latency_objective_s and slo.latency_target go together; "
            "set both or neither"
        )
    return slo


def load_settings(config: RolloutConfig, environment: str | None = None) -> MonitoringSettings:
    """Validate ``[monitoring]``/``[slo]`` and resolve the phases for ``environment``."""
    source, raw = config.source, dict(config.monitoring)
    if not raw:
        raise ConfigError(f"{source}: no [monitoring] table; see docs/operations/monitoring.md")
    _reject_unknown(source, "monitoring", raw, _MONITORING_KEYS)
    if environment is not None and environment not in config.environments:
        known = ", ".join(sorted(config.environments)) or "none"
        raise ConfigError(f"{source}: environment {environment!r} is not defined (known: {known})")
    where = "monitoring"
    # Scalars first, in the order of the table: the first error a reader sees is the first line.
    title = _string(source, raw, where, "title", None)
    alert_prefix = _string(source, raw, where, "alert_prefix", _ALERT_PREFIX)
    uid_prefix = _string(source, raw, where, "uid_prefix", _UID)
    job = _string(source, raw, where, "job", None)
    runbook = _string(source, raw, where, "runbook", None)
    metrics = _metrics(source, raw.get("metrics"))
    envs = raw.get("environments", {})
    if not isinstance(envs, dict):
        raise _fail(source, "monitoring.environments", envs, "a table of environment tables")
    for name, table in sorted(envs.items()):
        if name not in config.environments:
            raise _fail(
                source,
                f"monitoring.environments.{name}",
                name,
                "the name of an [environments.NAME] table",
            )
        if not isinstance(table, dict):
            raise _fail(source, f"monitoring.environments.{name}", table, "a table")
        _reject_unknown(source, f"monitoring.environments.{name}", table, _ENVIRONMENT_KEYS)
    overrides: Mapping[str, Any] = envs.get(environment, {}) if environment else {}
    abort_for_s = _duration(source, raw, where, "abort_for", "5m")
    if "abort_for" in overrides:
        abort_for_s = _duration(
            source, overrides, f"monitoring.environments.{environment}", "abort_for", "5m"
        )
    # A profile shortens windows; alerts still tell phases apart by the production flag states
    # (a rehearsal may run its canary at another cohort size, which must not reshuffle phases).
    phases = {
        key: replace(config.phase(key, environment), flags=config.phases[key].flags)
        for key in sorted(config.phases)
    }
    baseline = _string(source, raw, where, "baseline_phase", None, "phase0")
    if baseline not in phases:
        raise _fail(
            source,
            "monitoring.baseline_phase",
            baseline,
            f"one of the phases ({', '.join(phases)})",
        )
    return MonitoringSettings(
        source=source,
        title=title,
        alert_prefix=alert_prefix,
        uid_prefix=uid_prefix,
        job=job,
        runbook=runbook,
        baseline_phase=baseline,
        abort_for_s=abort_for_s,
        metrics=metrics,
        slo=_slo(source, config.slo),
        environment=environment,
        phases=phases,
        group_label=config.group_label,
        control=config.control,
        treatment=config.treatment,
    )
