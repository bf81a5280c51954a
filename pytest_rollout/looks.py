"""One look at a phase: one ``pytest GATES -m PHASE`` run in a subprocess, its record read back.

``rollout watch`` takes a look every interval (and ``rollout serve`` may take one per request).
The gate run is the same command an operator types, so a look decides exactly as a manual run
would; this module only runs it, writes into the look's directory and reads the answer back,
failing closed: anything but a verified record with the exit status it implies is a HOLD.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_rollout.decision import Decision, verify_record

RECORD_NAME = "record.json"
REPORT_NAME = "report.html"
_BY_EXIT = {d.exit_status: d for d in Decision}


@dataclass(frozen=True)
class LookResult:
    """What one look decided; ``record`` is the decision record (empty when none was read)."""

    decision: Decision
    exit_code: int
    reason: str
    record: Mapping[str, Any]
    record_path: Path
    report_path: Path
    output_tail: str = ""
    problems: tuple[str, ...] = field(default_factory=tuple)


def look_command(
    gates: Path, phase: str, directory: Path, pytest_args: Sequence[str] = ()
) -> list[str]:
    """The gate run of one look (the contract in docs/watch.md)."""
    return [
        sys.executable,
        "-m",
        "pytest",
        str(gates),
        "-m",
        phase,
        "-p",
        "no:cacheprovider",
        "--rollout-decision-json",
        str(directory / RECORD_NAME),
        "--html",
        str(directory / REPORT_NAME),
        "--self-contained-html",
        *pytest_args,
    ]


def run_look(
    gates: Path,
    phase: str,
    directory: Path,
    pytest_args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float | None = None,
) -> LookResult:
    """Run the phase's gates once into ``directory`` and return what they decided.

    Never raises for a failed run: a run that cannot start, times out, exits with a status that
    is not a decision, or leaves no record that verifies is a HOLD saying why.
    """
    directory.mkdir(parents=True, exist_ok=True)
    record_path, report_path = directory / RECORD_NAME, directory / REPORT_NAME
    command = look_command(gates, phase, directory, pytest_args)
    try:
        done = subprocess.run(
            command,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return _hold(
            -1, f"gate run timed out after {timeout_s:g}s: {phase}", record_path, report_path
        )
    except OSError as exc:
        return _hold(-1, f"gate run could not start: {exc}", record_path, report_path)
    tail = (done.stdout[-2000:] + done.stderr[-2000:]).strip()
    (directory / "output.txt").write_text(done.stdout + done.stderr, encoding="utf-8")
    return read_look(done.returncode, record_path, report_path, tail)


def read_look(exit_code: int, record_path: Path, report_path: Path, tail: str = "") -> LookResult:
    """The look's result from the gate run's exit status and the record it wrote."""
    record = _read_record(record_path)
    if isinstance(record, str):
        why = f"gate run failed: exit {exit_code}" if exit_code not in _BY_EXIT else record
        return _hold(exit_code, why, record_path, report_path, tail, problems=(record,))
    decision = _BY_EXIT.get(exit_code)
    recorded = str(record.get("decision"))
    if decision is None:
        return _hold(
            exit_code, f"gate run failed: exit {exit_code}", record_path, report_path, tail, record
        )
    if decision.value != recorded:
        why = f"exit {exit_code} means {decision.value} but {record_path} says {recorded}"
        return _hold(exit_code, why, record_path, report_path, tail, record)
    return LookResult(
        decision, exit_code, str(record.get("reason", "")), record, record_path, report_path, tail
    )


def _read_record(path: Path) -> dict[str, Any] | str:
    """The verified record, or what is wrong with it."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"the gate run wrote no decision record at {path}"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"cannot read the decision record {path}: {exc}"
    if not isinstance(record, dict) or not verify_record(record):
        return f"the decision record {path} does not verify (digest mismatch or no digest)"
    return record


def _hold(
    exit_code: int,
    reason: str,
    record_path: Path,
    report_path: Path,
    tail: str = "",
    record: Mapping[str, Any] | None = None,
    problems: tuple[str, ...] = (),
) -> LookResult:
    return LookResult(
        Decision.HOLD,
        exit_code,
        reason,
        record or {},
        record_path,
        report_path,
        tail,
        problems or (reason,),
    )


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment plus ``extra`` (e.g. ROLLOUT_TIMELINE for the report)."""
    return {**os.environ, **extra}
