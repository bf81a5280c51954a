"""`signoffs` in rollout.toml: a list of distinct non-empty roles, in [phases.X] only."""

from __future__ import annotations

import pytest

from pytest_rollout.config import ConfigError, parse_config


def test_signoffs_are_read_from_the_phase_table() -> None:
    config = parse_config({"phases": {"phase2": {"signoffs": ["service owner", "on-call"]}}}, "t")
    assert config.phase("phase2").signoffs == ("service owner", "on-call")
    assert config.phase("phase3").signoffs == ()


@pytest.mark.parametrize("value", ["service owner", ["on-call", ""], ["a", "a"], [1], False])
def test_a_bad_signoffs_value_names_the_key(value: object) -> None:
    with pytest.raises(ConfigError, match=r"phases\.phase2\.signoffs = .*distinct non-empty"):
        parse_config({"phases": {"phase2": {"signoffs": value}}}, "t")


def test_an_environment_cannot_drop_the_signoffs() -> None:
    raw = {
        "phases": {"phase2": {"signoffs": ["on-call"]}},
        "environments": {"ci": {"phases": {"phase2": {"signoffs": []}}}},
    }
    with pytest.raises(
        ConfigError, match=r"unknown key environments\.ci\.phases\.phase2\.signoffs"
    ):
        parse_config(raw, "t")


def test_the_dual_memory_rollout_requires_the_checklists_roles() -> None:
    from pathlib import Path

    from pytest_rollout.config import load_config

    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "gates" / "rollout.toml")
    checklists = (root / "docs" / "operations" / "checklists.md").read_text()
    for phase in ("phase1", "phase2", "phase3", "phase4", "phase5"):
        roles = config.phase(phase, "ci").signoffs
        assert roles == ("service owner", "on-call")
        assert all(f"**{role}**" in checklists for role in roles)
    assert config.phase("phase0").signoffs == ()
