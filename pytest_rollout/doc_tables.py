"""Markdown tables of a rollout's phases and thresholds, rendered from rollout.toml.

A runbook keeps them between markers so docs and gates cannot drift::

    <!-- rollout-table: phases -->
    ...generated...
    <!-- /rollout-table -->

    <!-- rollout-table: phase2 -->
    ...

``sync(doc_text, config)`` rewrites every marked block; a test compares the committed doc with
its re-rendered self.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pytest_rollout.config import RolloutConfig
from pytest_rollout.durations import format_duration

_BLOCK = re.compile(
    r"(<!-- rollout-table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /rollout-table -->)",
    re.DOTALL,
)


def _value(value: bool | float) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}"


def _flags(state: Mapping[str, bool | float]) -> str:
    return ", ".join(f"`{k} = {_value(v)}`" for k, v in state.items()) or "—"


def phases_table(config: RolloutConfig) -> str:
    rows = [
        "| phase | name | duration | window | cohort | min samples / group | alpha | "
        "sequential | flags | rollback to |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, phase in config.phases.items():
        duration = format_duration(phase.duration_s) if phase.duration_s else "—"
        cohort = f"{phase.cohort_percent:g} %" if phase.cohort_percent is not None else "—"
        rows.append(
            f"| `{key}` | {phase.name} | {duration} | {format_duration(phase.window_s)} | "
            f"{cohort} | {phase.min_samples} | {phase.alpha:g} | "
            f"{'yes' if phase.sequential else 'no'} | {_flags(phase.flags)} | "
            f"{_flags(phase.rollback)} |"
        )
    return "\n".join(rows) + "\n"


def thresholds_table(config: RolloutConfig, phase_key: str) -> str:
    phase = config.phases[phase_key]
    rows = ["| threshold (rollout.toml) | value |", "|---|---|"]
    rows += [f"| `{name}` | {value:g} |" for name, value in phase.thresholds.items()]
    return "\n".join(rows) + "\n"


def environments_table(config: RolloutConfig) -> str:
    rows = [
        "| environment | Prometheus | flags | timeout | max staleness | phase overrides |",
        "|---|---|---|---|---|---|",
    ]
    for name, env in config.environments.items():
        overrides = (
            "; ".join(
                f"{key}: " + ", ".join(_override(k, v) for k, v in values.items())
                for key, values in env.phase_overrides.items()
            )
            or "—"
        )
        rows.append(
            f"| `{name}` | {env.prometheus_url or 'from ROLLOUT_PROMETHEUS_URL'} | "
            f"{env.flags or 'from ROLLOUT_FLAGS'} | {format_duration(env.timeout_s)} | "
            f"{format_duration(env.max_staleness_s)} | {overrides} |"
        )
    return "\n".join(rows) + "\n"


def _override(key: str, value: Any) -> str:
    if key == "flags":
        return "flags " + _flags(value)
    if key == "waived":  # the reasons are in rollout.toml and in every decision record
        return "waives " + ", ".join(f"`{keyword}`" for keyword in value)
    if key.endswith("_s"):
        return f"{key.removesuffix('_s')} {format_duration(value)}"
    return f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"


def render(name: str, config: RolloutConfig) -> str:
    """One named table: ``phases``, ``environments`` or a phase key's thresholds."""
    if name == "phases":
        return phases_table(config)
    if name == "environments":
        return environments_table(config)
    if name in config.phases:
        return thresholds_table(config, name)
    raise KeyError(
        f"unknown rollout-table {name!r}: use phases, environments or a phase key "
        f"({', '.join(config.phases)})"
    )


def sync(doc: str, config: RolloutConfig) -> str:
    """The document with every marked table re-rendered from ``config``."""
    return _BLOCK.sub(lambda m: m.group(1) + render(m.group("name"), config) + m.group(4), doc)
