"""rollout.toml (or ``[tool.pytest_rollout]`` in pyproject.toml): schema and strict validation.

Every problem is a :class:`ConfigError` that names the file, the key and the bad value; the plugin
turns it into ``pytest.UsageError``.  Unknown keys are errors too: a typo in a threshold name must
never silently fall back to a default.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_rollout.config_table import ConfigError as ConfigError
from pytest_rollout.config_table import TableReader as TableReader

DEFAULT_WINDOW_S = 3600.0
DEFAULT_MIN_SAMPLES = 1000
DEFAULT_ALPHA = 0.05
DEFAULT_MAX_STALENESS_S = 300.0
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 1

# Built-in phases: always registered as markers, so gates work with no config file at all.
DEFAULT_PHASES: dict[str, tuple[str, str]] = {
    "phase0": ("pre-deployment", "pre-deployment checks before anything reaches production"),
    "phase1": ("shadow", "new code paths run in shadow mode, not used for answers"),
    "phase2": ("canary", "the new behaviour serves a small cohort"),
    "phase3": ("ramp", "the cohort grows step by step while SLOs stay green"),
    "phase4": ("ramp", "the cohort grows step by step while SLOs stay green"),
    "phase5": ("full rollout", "all traffic on the new behaviour, post-rollout analysis"),
}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METRIC_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
FlagValue = bool | float


@dataclass(frozen=True)
class PhaseConfig:
    key: str  # marker name, e.g. "phase2"
    name: str
    description: str
    window_s: float = DEFAULT_WINDOW_S
    duration_s: float | None = None
    min_samples: int = DEFAULT_MIN_SAMPLES
    alpha: float = DEFAULT_ALPHA
    # Gates are re-run during a hold, so always-valid inference is the default; set
    # sequential = false only for a single pre-planned look (docs/statistics.md).
    sequential: bool = True
    holm: bool = False
    cohort_percent: float | None = None
    # A/B evidence: "phase" counts everything since the phase began (docs/phase-start.md);
    # "window" keeps the sliding ``window`` (e.g. for a one-off check).
    evidence: str = "phase"
    min_hold_s: float | None = None  # no GO before the phase has run this long
    planned_n: int | None = None  # treatment samples of the plan (default: duration x rate)
    look_every_s: float | None = None  # `rollout watch`'s interval between looks (default 10m)
    flags: Mapping[str, FlagValue] = field(default_factory=dict)
    rollback: Mapping[str, FlagValue] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    # gate-name keyword -> why this environment cannot decide those gates (environment only)
    waived: Mapping[str, str] = field(default_factory=dict)
    signoffs: tuple[str, ...] = ()  # roles that must approve (rollout approve) before GO


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    prometheus_url: str | None = None
    flags: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    max_staleness_s: float = DEFAULT_MAX_STALENESS_S
    # How far back the metrics backend keeps data: a phase start older than this is judged on
    # incomplete counts, so its A/B gates are inconclusive (docs/phase-start.md).
    retention_s: float | None = None
    audit_log: str | None = None
    webhook: str | None = None
    service_url: str | None = None
    baseline: str | None = None  # saved baseline (rollout baseline save) the gates compare with
    phase_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutConfig:
    source: str  # file the config came from, or "<defaults>"
    default_environment: str | None = None
    group_label: str = "group"
    control: str = "control"
    treatment: str = "treatment"
    # The flag gauge the service exports; the phase start is read from it when no audit log says
    flag_metric: str = "engram_feature_flag"
    environments: Mapping[str, EnvironmentConfig] = field(default_factory=dict)
    phases: Mapping[str, PhaseConfig] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    # [slo] and [monitoring] are validated by their consumer (pytest_rollout.monitoring), which
    # raises ConfigError on its own unknown keys; here they only have to be tables.
    slo: Mapping[str, Any] = field(default_factory=dict)
    monitoring: Mapping[str, Any] = field(default_factory=dict)

    @property
    def known_phases(self) -> tuple[str, ...]:
        """Every phase a gate or a phase-keyed table may name."""
        return known_phases(self.phases)

    def phase(self, key: str, environment: str | None = None) -> PhaseConfig:
        """Phase settings with the environment's overrides applied (defaults if undefined)."""
        base = self.phases.get(key)
        if base is None:
            name, description = DEFAULT_PHASES.get(key, (key, key))
            base = PhaseConfig(key=key, name=name, description=description)
        env = self.environments.get(environment or "") if environment else None
        if env is None or key not in env.phase_overrides:
            return base
        return replace(base, **env.phase_overrides[key])

    def threshold(self, name: str, phase: str | None = None) -> float:
        """A named threshold: the phase's own first, then the global table."""
        if phase is not None and name in self.phase(phase).thresholds:
            return self.phase(phase).thresholds[name]
        if name in self.thresholds:
            return self.thresholds[name]
        where = f"[phases.{phase}.thresholds] or [thresholds]" if phase else "[thresholds]"
        raise ConfigError(f"{self.source}: threshold {name!r} is not defined; add it to {where}")


# ---------------------------------------------------------------------------------------------
# loading


def load_config(path: Path | None) -> RolloutConfig:
    """Read and validate a config file; ``None`` gives the defaults."""
    if path is None:
        return RolloutConfig(source="<defaults>")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read rollout config: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason}") from None
    if path.name == "pyproject.toml":
        raw = raw.get("tool", {}).get("pytest_rollout", {})
        return parse_config(raw, f"{path} [tool.pytest_rollout]")
    return parse_config(raw, str(path))


def find_config(rootdir: Path, test_paths: Sequence[str] = ()) -> Path | None:
    """rollout.toml beside the tests asked for (``pytest gates`` -> gates/rollout.toml), else in
    rootdir, else a pyproject.toml with [tool.pytest_rollout]."""
    candidates = []
    for arg in test_paths:
        path = Path(arg.split("::", 1)[0])
        directory = path if path.is_dir() else path.parent
        candidates.append(directory / "rollout.toml")
    candidates.append(rootdir / "rollout.toml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    pyproject = rootdir / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return None  # not ours to judge; pytest reports a broken pyproject itself
        if "pytest_rollout" in data.get("tool", {}):
            return pyproject
    return None


def known_phases(defined: Iterable[str]) -> tuple[str, ...]:
    """The built-in phases, then the file's own ``[phases.X]``, each once."""
    return tuple(dict.fromkeys([*DEFAULT_PHASES, *defined]))


def _flag_state(reader: TableReader | None) -> dict[str, FlagValue]:
    if reader is None:
        return {}
    state: dict[str, FlagValue] = {}
    for key, value in reader.items():
        if isinstance(value, bool):
            state[key] = value
        elif isinstance(value, int | float) and math.isfinite(value):
            state[key] = float(value)
        else:
            reader.fail(key, value, "true, false or a number")
    return state


def _waivers(reader: TableReader | None) -> dict[str, str]:
    """``[environments.E.phases.P.waive]``: gate-name keyword = why E cannot decide it."""
    if reader is None:
        return {}
    out: dict[str, str] = {}
    for key, value in reader.items():
        if not _IDENT.match(key):
            reader.fail(key, value, "a gate-name keyword of letters, digits and underscores")
        if not isinstance(value, str) or not value.strip():
            reader.fail(key, value, "the reason this environment cannot decide these gates")
        out[key] = value.strip()
    return out


def _thresholds(reader: TableReader | None) -> dict[str, float]:
    if reader is None:
        return {}
    out: dict[str, float] = {}
    for key, value in reader.items():
        if not _IDENT.match(key):
            reader.fail(key, value, "a threshold name of letters, digits and underscores")
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value):
            reader.fail(key, value, "a finite number")
        out[key] = float(value)
    return out


_PHASE_OVERRIDABLE = (
    "window",
    "duration",
    "min_samples",
    "alpha",
    "cohort_percent",
    "evidence",
    "min_hold",
    "planned_n",
    "look_every",
)
_EVIDENCE = re.compile(r"^(phase|window)$")


def _phase_fields(r: TableReader, defaults: PhaseConfig | None) -> dict[str, Any]:
    d = defaults
    return {
        "window_s": r.duration("window", d.window_s if d else DEFAULT_WINDOW_S),
        "duration_s": r.duration("duration", d.duration_s if d else None),
        "min_samples": r.integer("min_samples", d.min_samples if d else DEFAULT_MIN_SAMPLES, 1),
        "alpha": r.number("alpha", d.alpha if d else DEFAULT_ALPHA, 1e-9, 0.5),
        "cohort_percent": r.number("cohort_percent", d.cohort_percent if d else None, 0, 100),
        "evidence": r.string("evidence", d.evidence if d else "phase", _EVIDENCE),
        "min_hold_s": r.duration("min_hold", d.min_hold_s if d else None),
        "planned_n": _planned_n(r, d.planned_n if d else None),
        "look_every_s": r.duration("look_every", d.look_every_s if d else None),
    }


def _planned_n(r: TableReader, default: int | None) -> int | None:
    if r.table.get("planned_n") is None:
        return default
    return r.integer("planned_n", 1, 1)


def parse_config(raw: Mapping[str, Any], source: str) -> RolloutConfig:
    top = TableReader(source, "", dict(raw))
    general = top.sub("rollout") or TableReader(source, "rollout", {})
    default_env = general.string("default_environment")
    group_label = general.string("group_label", "group")
    control = general.string("control", "control")
    treatment = general.string("treatment", "treatment")
    flag_metric = general.string("flag_metric", "engram_feature_flag", _METRIC_NAME)
    general.finish()

    phases: dict[str, PhaseConfig] = {}
    phase_table = top.sub("phases")
    if phase_table is not None:
        for key in phase_table.table:
            if not _IDENT.match(key):
                phase_table.fail(key, key, "a phase key usable as a marker (letters, digits, _)")
            r = phase_table.sub(key)
            assert r is not None
            name, description = DEFAULT_PHASES.get(key, (key, key))
            phases[key] = PhaseConfig(
                key=key,
                name=r.string("name", name),
                description=r.string("description", description),
                sequential=r.boolean("sequential", True),
                holm=r.boolean("holm", False),
                flags=_flag_state(r.sub("flags")),
                rollback=_flag_state(r.sub("rollback")),
                thresholds=_thresholds(r.sub("thresholds")),
                signoffs=r.strings("signoffs"),
                **_phase_fields(r, None),
            )
            r.finish()

    environments: dict[str, EnvironmentConfig] = {}
    env_table = top.sub("environments")
    if env_table is not None:
        for name in env_table.table:
            r = env_table.sub(name)
            assert r is not None
            overrides: dict[str, dict[str, Any]] = {}
            override_table = r.sub("phases")
            if override_table is not None:
                for phase_key in override_table.table:
                    override_table.check_phase(phase_key, known_phases(phases))
                    o = override_table.sub(phase_key)
                    assert o is not None
                    present = [k for k in o.table if k in _PHASE_OVERRIDABLE]  # keep file order
                    parsed = _phase_fields(o, phases.get(phase_key))
                    flag_state = _flag_state(o.sub("flags"))
                    waived = _waivers(o.sub("waive"))
                    o.finish()
                    names = {
                        "window": "window_s",
                        "duration": "duration_s",
                        "min_hold": "min_hold_s",
                        "look_every": "look_every_s",
                    }
                    overrides[phase_key] = {
                        names.get(k, k): parsed[names.get(k, k)] for k in present
                    }
                    if waived:
                        overrides[phase_key]["waived"] = waived
                    if flag_state:
                        # Only the named flags change; the phase's other flags stand.
                        base_flags = phases[phase_key].flags if phase_key in phases else {}
                        overrides[phase_key]["flags"] = {**base_flags, **flag_state}
            url = r.string("prometheus_url")
            if url is not None and not url.startswith(("http://", "https://")):
                r.fail("prometheus_url", url, "an http:// or https:// URL")
            environments[name] = EnvironmentConfig(
                name=name,
                prometheus_url=url,
                flags=r.string("flags"),
                timeout_s=r.duration("timeout", DEFAULT_TIMEOUT_S),
                retries=r.integer("retries", DEFAULT_RETRIES, 0),
                max_staleness_s=r.duration("max_staleness", DEFAULT_MAX_STALENESS_S),
                retention_s=r.duration("retention", None),
                audit_log=r.string("audit_log"),
                webhook=r.string("webhook"),
                service_url=r.string("service_url"),
                baseline=r.string("baseline"),
                phase_overrides=overrides,
            )
            r.finish()

    thresholds = _thresholds(top.sub("thresholds"))
    slo = top.sub("slo")
    monitoring = top.sub("monitoring")
    top.finish()
    if default_env is not None and default_env not in environments:
        raise ConfigError(
            f"{source}: rollout.default_environment = {default_env!r} but no "
            f"[environments.{default_env}] table exists"
        )
    return RolloutConfig(
        source=source,
        default_environment=default_env,
        group_label=group_label,
        control=control,
        treatment=treatment,
        flag_metric=flag_metric,
        environments=environments,
        phases=phases,
        thresholds=thresholds,
        slo=dict(slo.table) if slo else {},
        monitoring=dict(monitoring.table) if monitoring else {},
    )
