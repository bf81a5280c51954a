"""The runbook's rehearsal blocks and scripts/rehearse.py agree (fast; the full run is
test_rehearsal.py): the blocks parse, walk every phase with all its gates, set every variable
before use, and rehearse.py runs them with nothing of its own but the documented substitutions.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_rollout.config import load_config
from scripts import rehearse
from scripts.runbook_blocks import Command, assigned_names, extract, referenced_names
from staging.stack import StackState

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "operations" / "dual_memory_rollout.md"
CONFIG = load_config(ROOT / "gates" / "rollout.toml")
STAGING_ENV = 'eval "$(python -m staging --workdir "$OUT/stack" env)"'


@pytest.fixture(scope="module")
def commands() -> list[Command]:
    return extract(rehearse.DOCS, ROOT)


def gate_runs(commands: list[Command]) -> list[list[str]]:
    return [c.words() for c in commands if c.words()[:2] == ["pytest", "gates"]]


def test_rehearse_runs_the_blocks_of_the_section_rehearse_in_staging(
    commands: list[Command],
) -> None:
    assert rehearse.DOCS == [RUNBOOK]
    lines = RUNBOOK.read_text().splitlines()
    first = lines.index("## Rehearse in staging") + 1
    ends = (n for n, line in enumerate(lines[first:], first + 1) if line.startswith("## "))
    last = next(ends, len(lines) + 1)
    assert len(commands) > 20
    assert all(first < c.line < last for c in commands), "rehearsal blocks outside the section"
    assert commands[-1].final and not commands[0].final
    section = "\n".join(lines[first:last])
    for name in rehearse.SUBSTITUTIONS:
        assert f"| `{name}` |" in section, f"the runbook's substitution table lacks {name}"


def test_the_gates_of_phases_0_1_2_go_then_phase_2_aborts_with_rollback(
    commands: list[Command],
) -> None:
    runs = [
        (words[words.index("-m") + 1], c.expect_exit, "--rollout-on-abort=rollback" in words)
        for c in commands
        if (words := c.words())[:2] == ["pytest", "gates"]
    ]
    assert [(phase, status) for phase, status, _ in runs] == [
        ("phase0", 0),
        ("phase1", 0),
        ("phase2", 0),
        ("phase2", 10),
    ]
    assert runs[-1][2], "the regression run must roll back on ABORT"


def test_no_gate_run_leaves_a_gate_out(commands: list[Command]) -> None:
    for words in gate_runs(commands):
        assert not {"-k", "--deselect"} & set(words), words
        assert not any(w.startswith(("-k", "--deselect=")) or "::" in w for w in words), words
        assert words[words.index("--rollout-env") + 1] == "ci", words
        assert any(w.startswith("--rollout-decision-json") for w in words), words


def test_each_phase_starts_with_audited_flag_changes_into_its_ci_flags(
    commands: list[Command],
) -> None:
    flags: dict[str, bool | float] = {"dual_memory_types": False, "concept_formation": False}
    flags["blended_recall"] = 0.0
    actor_set = False
    for command in commands:
        words = command.words()
        actor_set = actor_set or "ROLLOUT_ACTOR" in assigned_names(command)
        if words[:2] == ["rollout", "flags"] and words[2] in ("set", "cohort"):
            assert actor_set, f"{command.where}: ROLLOUT_ACTOR is not exported before this change"
            assert "--phase" in words and "--reason" in words, command.where
            name, value = words[3], words[4]
            flags[name] = value == "on" if value in ("on", "off") else float(value)
        if words[:2] == ["pytest", "gates"]:
            phase = words[words.index("-m") + 1]
            assert flags == dict(CONFIG.phase(phase, "ci").flags), (command.where, flags)
    phases = [
        c.words()[c.words().index("--phase") + 1]
        for c in commands
        if c.words()[:3] in (["rollout", "flags", "set"], ["rollout", "flags", "cohort"])
    ]
    assert phases == sorted(phases) and set(phases) == {"phase0", "phase1", "phase2"}


def staging_env_exports(tmp_path: Path) -> set[str]:
    """The names `python -m staging env` exports, from running it on a recorded (idle) stack."""
    dummy = {"str": "x", "int": 1, "float": 1.0}
    state = {f.name: dummy[str(f.type)] for f in dataclasses.fields(StackState)}
    state.update(workdir=str(tmp_path), engram_url="http://127.0.0.1:1", admin_token="t")
    (tmp_path / "state.json").write_text(json.dumps(state))
    done = subprocess.run(
        [sys.executable, "-m", "staging", "--workdir", str(tmp_path), "env"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(re.findall(r"^export ([A-Za-z_]\w*)=", done.stdout, re.M))


def test_every_variable_is_set_by_an_earlier_command(
    commands: list[Command], tmp_path: Path
) -> None:
    exported = staging_env_exports(tmp_path)
    assert {"ROLLOUT_FLAGS_TOKEN", "ENGRAM_URL", "ROLLOUT_PROMETHEUS_URL"} <= exported
    known: set[str] = set()
    for command in commands:
        missing = referenced_names(command) - known
        assert not missing, f"{command.where} uses {missing} before a command sets it"
        known |= assigned_names(command)
        if command.text.startswith(STAGING_ENV):
            known |= exported
    assert {"ROLLOUT_ACTOR", "ROLLOUT_CONFIG", "ROLLOUT_ENV", "ROLLOUT_BASELINE"} <= known
    assert "ROLLOUT_FLAGS_AUDIT_LOG" in known
    for name in rehearse.SUBSTITUTIONS:
        assert sum(c.text.startswith(f"export {name}=") for c in commands) == 1, name


def test_the_files_rehearse_checks_are_written_by_the_blocks(commands: list[Command]) -> None:
    text = "\n".join(c.text for c in commands if not c.final)
    for name in rehearse.READS:
        assert re.search(rf'(>|=|--out) ?"\$OUT/{re.escape(name)}"', text), name


def test_the_injected_latency_is_the_chaos_drills(commands: list[Command]) -> None:
    (inject,) = [c for c in commands if "admin/chaos" in c.text and "--json" in c.words()]
    spec = json.loads(inject.words()[inject.words().index("--json") + 1])
    assert spec["latency_ms"] == CONFIG.threshold(*rehearse.CHAOS)


def test_rehearse_py_has_no_command_list_of_its_own() -> None:
    tree = ast.parse((ROOT / "scripts" / "rehearse.py").read_text())
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    # What building commands would take; recognising the runbook's gate runs is fine.
    runbook_words = {"staging", "seed", "traffic", "sleep", "curl", "baseline", "cohort", "up"}
    assert not strings & runbook_words, strings & runbook_words
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id in ("subprocess", "os", "requests")
    ]
    assert [ast.unparse(c.func) for c in calls] == ["subprocess.call"]
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "requests" not in imports
