"""Where each setting comes from: command line > environment variable > ini > rollout.toml.

One resolver for the plugin, the run's context and the ``rollout`` commands (the way
pytest-timeout's ``get_env_settings`` serves its plugin), so the precedence is written once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_rollout.config import RolloutConfig

# Option strings: tests and docs import these instead of spelling them again.
OPT_CONFIG = "--rollout-config"
OPT_ENV = "--rollout-env"
OPT_PROMETHEUS_URL = "--rollout-prometheus-url"
OPT_AT = "--rollout-at"
OPT_WINDOW = "--rollout-window"
OPT_SINCE = "--rollout-since"
OPT_DECISION_JSON = "--rollout-decision-json"
OPT_FLAGS = "--rollout-flags"
OPT_ON_ABORT = "--rollout-on-abort"

ENV_CONFIG = "ROLLOUT_CONFIG"
ENV_ENV = "ROLLOUT_ENV"
ENV_PROMETHEUS_URL = "ROLLOUT_PROMETHEUS_URL"
ENV_FLAGS = "ROLLOUT_FLAGS"
ENV_FLAGS_AUDIT_LOG = "ROLLOUT_FLAGS_AUDIT_LOG"
ENV_WEBHOOK = "ROLLOUT_WEBHOOK"
ENV_BASELINE = "ROLLOUT_BASELINE"
ENV_SINCE = "ROLLOUT_SINCE"

# setting -> (environment variable, key of [environments.NAME] in rollout.toml)
_SOURCES: dict[str, tuple[str, str | None]] = {
    "prometheus_url": (ENV_PROMETHEUS_URL, "prometheus_url"),
    "flags": (ENV_FLAGS, "flags"),
    "audit_log": (ENV_FLAGS_AUDIT_LOG, "audit_log"),
    "webhook": (ENV_WEBHOOK, "webhook"),
    "baseline": (ENV_BASELINE, "baseline"),
}


class SettingsError(ValueError):
    """A setting names something that does not exist (e.g. an unknown environment)."""


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one run or command; ``origin`` says where each came from."""

    environment: str | None = None
    prometheus_url: str | None = None
    flags: str | None = None
    audit_log: str | None = None
    webhook: str | None = None
    baseline: str | None = None
    origin: Mapping[str, str] = field(default_factory=dict)


def pick(
    name: str,
    *,
    cli: Mapping[str, object | None],
    environ: Mapping[str, str],
    ini: Mapping[str, object | None],
    env_var: str | None,
) -> tuple[str | None, str]:
    """(value, where it came from) for one setting, before rollout.toml is consulted."""
    if cli.get(name):
        return str(cli[name]), "command line"
    if env_var and environ.get(env_var):
        return environ[env_var], env_var
    if ini.get(name):
        return str(ini[name]), f"ini rollout_{name}"
    return None, ""


def resolve_settings(
    cli: Mapping[str, object | None],
    environ: Mapping[str, str] | None = None,
    ini: Mapping[str, object | None] | None = None,
    config: RolloutConfig | None = None,
) -> Settings:
    """Resolve every setting: CLI > environment variable > ini > rollout.toml's environment.

    ``cli`` and ``ini`` map setting names (``environment``, ``prometheus_url``, ``flags``,
    ``audit_log``, ``webhook``, ``baseline``) to their values; missing or empty means unset.
    """
    env = os.environ if environ is None else environ
    ini = ini or {}
    environment, origin_env = pick("environment", cli=cli, environ=env, ini=ini, env_var=ENV_ENV)
    if environment is None and config is not None and config.default_environment:
        environment, origin_env = config.default_environment, f"{config.source}"
    if (
        environment
        and config is not None
        and config.environments
        and environment not in config.environments
    ):
        known = ", ".join(sorted(config.environments))
        raise SettingsError(
            f"environment {environment!r} (from {origin_env}) is not an environment in "
            f"{config.source} (known: {known})"
        )
    env_table = config.environments.get(environment or "") if config is not None else None
    values: dict[str, str | None] = {}
    origin: dict[str, str] = {"environment": origin_env} if environment else {}
    for name, (env_var, toml_key) in _SOURCES.items():
        value, where = pick(name, cli=cli, environ=env, ini=ini, env_var=env_var)
        if value is None and env_table is not None and toml_key is not None:
            value = getattr(env_table, toml_key)
            where = f"[environments.{environment}] {toml_key} in {config.source}" if config else ""
        values[name] = value
        if value is not None:
            origin[name] = where
    return Settings(environment=environment, origin=origin, **values)
