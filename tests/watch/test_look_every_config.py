"""`look_every` in rollout.toml: a duration per phase, overridable per environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rollout.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_look_every_is_parsed_and_overridden_per_environment() -> None:
    config = parse_config(
        {
            "phases": {"phase2": {"look_every": "10m"}},
            "environments": {"ci": {"phases": {"phase2": {"look_every": "20s"}}}},
        },
        "rollout.toml",
    )
    assert config.phase("phase2").look_every_s == 600.0
    assert config.phase("phase2", "ci").look_every_s == 20.0
    assert config.phase("phase3").look_every_s is None


@pytest.mark.parametrize("value", ["soon", "0s", 10])
def test_a_bad_look_every_names_the_key_and_value(value: object) -> None:
    with pytest.raises(ConfigError, match=r"phases\.phase2\.look_every.*duration"):
        parse_config({"phases": {"phase2": {"look_every": value}}}, "rollout.toml")


def test_the_dual_memory_rollout_sets_look_every_for_production_and_ci() -> None:
    config = load_config(ROOT / "gates" / "rollout.toml")
    for key in ("phase2", "phase3", "phase4", "phase5"):
        every = config.phase(key).look_every_s
        assert every is not None and every >= 600  # production: minutes, not seconds
        assert config.phase(key, "ci").look_every_s == 20.0
