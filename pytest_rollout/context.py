"""What every gate of one run shares: config, environment, the pinned instant, the backends."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_rollout.config import ConfigError, EnvironmentConfig, PhaseConfig, RolloutConfig
from pytest_rollout.flags.audit import UNKNOWN_ACTOR, default_actor, unknown_actor_warning
from pytest_rollout.instants import rfc3339
from pytest_rollout.redact import redact_url
from pytest_rollout.settings import Settings

if TYPE_CHECKING:
    from pytest_rollout.flags.base import FlagController
    from pytest_rollout.metrics.prometheus import PrometheusSource
    from pytest_rollout.phase_start import PhaseStart


@dataclass(frozen=True)
class PhaseView:
    """The ``phase`` fixture: the settings of the phase a gate belongs to."""

    config: PhaseConfig
    window_s: float
    rollout: RolloutConfig

    @property
    def key(self) -> str:
        return self.config.key

    def threshold(self, name: str) -> float:
        """Named threshold from rollout.toml (phase table first, then global)."""
        try:
            return self.rollout.threshold(name, self.config.key)
        except ConfigError as exc:
            # A missing threshold is a configuration mistake: the gate errors (blocks GO).
            raise LookupError(str(exc)) from None


@dataclass
class RolloutContext:
    """Session-wide state; one per process (controller and each xdist worker)."""

    config: RolloutConfig
    environment: str | None
    at: float  # pinned evaluation instant, unix seconds
    window_override_s: float | None
    prometheus_url: str | None
    flags_uri: str | None
    on_abort: str
    run_id: str = ""
    settings: Settings = field(default_factory=Settings)
    since_option: str | None = None  # --rollout-since, as given
    _source: PrometheusSource | None = field(default=None, repr=False)
    _starts: dict[str, PhaseStart] = field(default_factory=dict, repr=False)
    # One controller per phase: each audit line records the phase its change belongs to.
    _flags: dict[str | None, FlagController] = field(default_factory=dict, repr=False)
    _actor_warned: bool = field(default=False, repr=False)

    @property
    def env(self) -> EnvironmentConfig:
        if self.environment and self.environment in self.config.environments:
            return self.config.environments[self.environment]
        return EnvironmentConfig(name=self.environment or "default")

    def phase(self, key: str) -> PhaseView:
        cfg = self.config.phase(key, self.environment)
        return PhaseView(cfg, self.window_override_s or cfg.window_s, self.config)

    def window(self, key: str | None) -> dict[str, str]:
        seconds = self.phase(key).window_s if key else (self.window_override_s or 3600.0)
        return {"start": rfc3339(self.at - seconds), "end": rfc3339(self.at)}

    def prometheus(self) -> PrometheusSource:
        """The shared Prometheus client; a missing URL is a clear gate error."""
        if self._source is None:
            from pytest_rollout.metrics.prometheus import PrometheusSource, PromSettings

            if not self.prometheus_url:
                raise LookupError(
                    "no Prometheus URL: pass --rollout-prometheus-url, set ROLLOUT_PROMETHEUS_URL, "
                    f"or set prometheus_url in [environments.{self.environment or '<name>'}] "
                    f"of {self.config.source}"
                )
            env = self.env
            settings = PromSettings.from_env(
                self.prometheus_url,
                timeout_s=env.timeout_s,
                retries=env.retries,
                max_staleness_s=env.max_staleness_s,
                origin=f"[environments.{self.environment}] of {self.config.source}"
                if self.environment
                else "the defaults (no environment selected)",
            )
            self._source = PrometheusSource(settings, self.at)
        return self._source

    def phase_start(self, key: str) -> PhaseStart:
        """When phase ``key`` began (cached per process; every xdist worker resolves the same
        answer: the sources are read as of the pinned instant). See docs/phase-start.md."""
        if key not in self._starts:
            from pathlib import Path

            from pytest_rollout.gate import GateRecord
            from pytest_rollout.metrics.prometheus import PromQuery
            from pytest_rollout.phase_start import resolve_phase_start

            prom = None
            if self.prometheus_url:
                prom = PromQuery(self.prometheus(), GateRecord(nodeid=f"rollout::since[{key}]"))
            from pytest_rollout.outcomes import Inconclusive
            from pytest_rollout.phase_start import PhaseStart

            audit = self.settings.audit_log
            try:
                self._starts[key] = resolve_phase_start(
                    phase=key,
                    phase_flags=self.phase(key).config.flags,
                    at=self.at,
                    option=self.since_option,
                    env=os.environ,
                    audit_log=Path(audit) if audit else None,
                    prom=prom,
                    flag_metric=self.config.flag_metric,
                    retention_s=self.env.retention_s,
                )
            except (Exception, Inconclusive) as exc:  # never a crash, never a silent window
                self._starts[key] = PhaseStart(
                    since=None,
                    source="none",
                    detail="",
                    problem=f"cannot find when {key} began: {type(exc).__name__}: {exc}; "
                    "pass --rollout-since TIME or set ROLLOUT_SINCE",
                )
        return self._starts[key]

    @property
    def flags_display(self) -> str:
        """The flag backend URI without credentials."""
        uri = self.flags_uri or "<none>"
        return redact_url(uri) if "://" in uri else uri

    def flag_controller(self, phase: str | None = None) -> FlagController:
        """The shared flag controller of ``phase`` (recorded in its audit lines; None when no
        phase is known); a missing backend is a clear gate error."""
        if phase not in self._flags:
            from pathlib import Path

            from pytest_rollout.flags.registry import open_controller

            if not self.flags_uri:
                raise LookupError(
                    "no flag backend: pass --rollout-flags, set ROLLOUT_FLAGS, or set flags in "
                    f"[environments.{self.environment or '<name>'}] of {self.config.source}"
                )
            audit = self.settings.audit_log  # same precedence as `rollout flags`
            self._flags[phase] = open_controller(
                self.flags_uri,
                audit_log=Path(audit) if audit else None,
                actor=default_actor(),
                environment=self.environment,
                phase=phase,
                run_id=self.run_id,
            )
        return self._flags[phase]

    def wrote_flags(self) -> bool:
        """Did a flag controller of this process start a change (so it wrote audit lines)?"""
        return any(getattr(c, "last_change_id", None) for c in self._flags.values())

    def warn_if_actor_unknown(self) -> None:
        """Once per process: say on stderr that the operator is unknown and how to name it.

        Called only where the actor is recorded (audit lines, a decision record), so a plain
        pytest run with the plugin installed stays quiet.
        """
        if self._actor_warned or default_actor() != UNKNOWN_ACTOR:
            return
        self._actor_warned = True
        print(unknown_actor_warning("pytest-rollout"), file=sys.stderr, flush=True)

    def __repr__(self) -> str:
        # Gates receive this object: pytest prints a failing test's arguments (-l, -vv, JUnit),
        # and the Prometheus URL may carry user:password@.
        shown = self.describe()
        return (
            f"RolloutContext(environment={self.environment!r}, at={rfc3339(self.at)!r}, "
            f"prometheus_url={shown['prometheus_url']!r}, flags={shown['flags']!r}, "
            f"on_abort={self.on_abort!r}, run_id={self.run_id!r})"
        )

    def describe(self) -> Mapping[str, Any]:
        """Context for the decision record and report, free of credentials."""
        return {
            "prometheus_url": redact_url(self.prometheus_url) if self.prometheus_url else None,
            "operator": default_actor(),  # same sources as the audit log's actor
            "ci": bool(os.environ.get("CI")),
            "run_id": self.run_id,
            "flags": self.flags_display if self.flags_uri else None,
        }
