"""`rollout watch` against a small gates project whose gates follow a script, look by look.

Each look is a real gate run (a pytest subprocess with the plugin), the flags a real flagd file
with its audit log; only the gates' numbers are scripted, so the stop rules can be checked in
seconds. The staging end-to-end runs are in test_watch_staging.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout.flags.flagd_store import read_flags
from tests.test_rollback_on_abort import FLAG_FILE

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
from pathlib import Path

HERE = Path(__file__).parent


def pytest_sessionstart(session):
    counter = HERE / "counter.txt"
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
"""

GATES = """
from pathlib import Path

import pytest

from pytest_rollout import inconclusive

pytestmark = pytest.mark.phase2
HERE = Path(__file__).parent
CI = {"hold": (-0.004, 0.016), "go": (-0.003, 0.006), "abort": (0.031, 0.09)}


def state():
    script = (HERE / "script.txt").read_text().split()
    n = int((HERE / "counter.txt").read_text())
    return script[min(n, len(script)) - 1]


def test_p99_latency_not_worse_than_control_by_10ms(gate):
    s = state()
    lo, hi = CI[s]
    gate.observe(metric="p99 delta <b>", observed=(lo + hi) / 2, threshold=0.010, unit="s",
                 ci=(lo, hi))
    if s == "hold":
        inconclusive("interval still spans the margin")
    assert hi <= 0.010


@pytest.mark.abort
def test_abort_when_p99_regresses_over_20ms(gate):
    lo, hi = CI[state()]
    gate.observe(metric="p99 delta <b>", observed=(lo + hi) / 2, threshold=0.020, unit="s",
                 ci=(lo, hi))
    assert lo <= 0.020, f"p99 delta proven over +20 ms (lower bound {lo})"
"""

CONFIG = """
[rollout]
default_environment = "test"

[environments.test]
flags = "flagd-file:flags.json"
audit_log = "audit.jsonl"

[environments.short.phases.phase2]
duration = "2s"

[environments.short]
flags = "flagd-file:flags.json"
audit_log = "audit.jsonl"

[phases.phase2]
duration = "1h"
look_every = "1s"

[phases.phase2.flags]
blended_recall = 5

[phases.phase2.rollback]
blended_recall = 0

[phases.phase3.flags]
blended_recall = 25
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "conftest.py").write_text(CONFTEST)
    (gates / "test_gates.py").write_text(GATES)
    (gates / "rollout.toml").write_text(CONFIG)
    (tmp_path / "flags.json").write_text(json.dumps(FLAG_FILE))
    return tmp_path


def script(project: Path, *states: str) -> None:
    (project / "gates" / "script.txt").write_text("\n".join(states))


def watch_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest_rollout", "watch", *args]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    env["PYTHONPATH"] = str(ROOT)
    env["ROLLOUT_ACTOR"] = "watch test"
    return env


def watch(project: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        watch_command(*args),
        cwd=project,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def timeline(project: Path) -> list[dict[str, Any]]:
    lines = (project / "out" / "timeline.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_abort_at_the_third_look_rolls_back_and_stops_with_exit_10(project: Path) -> None:
    script(project, "hold", "hold", "abort", "go")
    done = watch(
        project,
        "phase2",
        "--every",
        "1s",
        "--out",
        "out",
        "--on-abort",
        "rollback",
        "--",
        "-p",
        "no:benchmark",
    )
    assert done.returncode == 10, done.stdout + done.stderr
    looks = timeline(project)
    assert [(e["look"], e["decision"], e["exit_code"]) for e in looks] == [
        (1, "HOLD", 1),
        (2, "HOLD", 1),
        (3, "ABORT", 10),
    ]
    record = json.loads((project / "out" / "looks" / "3" / "record.json").read_text())
    (rollback,) = [a for a in record["actions"] if a["action"] == "rollback"]
    assert rollback["result"] == "verified"
    assert read_flags(project / "flags.json")["blended_recall"].value == 0
    # The timeline format of docs/watch.md: per gate verdict, bounds, margins, n, ETA.
    gates = {g["name"]: g for g in looks[2]["gates"]}
    abort_gate = gates["test_abort_when_p99_regresses_over_20ms"]
    assert abort_gate["verdict"] == "FAIL"
    assert (abort_gate["lower"], abort_gate["upper"]) == (0.031, 0.09)
    assert abort_gate["abort_margin"] == 0.020 and abort_gate["margin"] is None
    assert gates["test_p99_latency_not_worse_than_control_by_10ms"]["margin"] == 0.010
    assert looks[2]["record"] == "looks/3/record.json"
    assert looks[2]["report"] == "looks/3/report.html"
    # The rollback the gate run made is marked as a flag change on the ABORT look.
    assert [(c["flag"], c["after"]) for c in looks[2]["flag_changes"]] == [("blended_recall", 0)]
    # One progress line per look, and the stop line.
    lines = done.stdout.splitlines()
    assert sum(": HOLD; open: test_p99" in line for line in lines) == 2
    assert "ABORT at look 3" in lines[-1] and "rollback verified" in lines[-1]


def test_go_with_promote_to_sets_the_next_phase_flags_verified_and_audited(project: Path) -> None:
    script(project, "hold", "go")
    done = watch(
        project,
        "phase2",
        "--every",
        "1s",
        "--out",
        "out",
        "--promote-to",
        "phase3",
        "--",
        "-p",
        "no:benchmark",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert read_flags(project / "flags.json")["blended_recall"].value == 25
    audit = [json.loads(line) for line in (project / "audit.jsonl").read_text().splitlines()]
    (change,) = [r for r in audit if r.get("kind") == "change"]
    assert change["phase"] == "phase3" and change["actor"] == "watch test"
    assert "phase2 GO at look 2" in change["reason"]
    assert [r["status"] for r in audit if r.get("kind") == "outcome"] == ["verified"]
    looks = timeline(project)
    assert [e["decision"] for e in looks] == ["HOLD", "GO"]
    assert looks[1]["promotion"]["ok"] is True
    assert [(c["flag"], c["after"]) for c in looks[1]["flag_changes"]] == [("blended_recall", 25)]
    assert "phase3 flags set and read back" in done.stdout


def test_hold_until_the_phase_duration_is_over_exits_1(project: Path) -> None:
    script(project, "hold")
    done = watch(
        project,
        "phase2",
        "--env",
        "short",
        "--every",
        "1s",
        "--out",
        "out",
        "--",
        "-p",
        "no:benchmark",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "phase duration over without a decision" in done.stdout
    looks = timeline(project)
    assert len(looks) >= 2 and {e["decision"] for e in looks} == {"HOLD"}


def test_max_looks_stops_an_undecided_watch_with_exit_1(project: Path) -> None:
    script(project, "hold")
    done = watch(project, "phase2", "--max-looks", "2", "--out", "out", "--", "-p", "no:benchmark")
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(timeline(project)) == 2  # look_every = 1s from rollout.toml
    assert "--max-looks 2" in done.stdout


def test_sigterm_stops_between_looks_leaving_whole_lines(project: Path) -> None:
    script(project, "hold")
    proc = subprocess.Popen(
        watch_command("phase2", "--every", "60s", "--out", "out", "--", "-p", "no:benchmark"),
        cwd=project,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line_file = project / "out" / "timeline.jsonl"
        deadline = time.monotonic() + 60
        while not (line_file.exists() and line_file.read_text().endswith("\n")):
            assert time.monotonic() < deadline, "no look within 60 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    assert "stopped by SIGTERM after look 1" in out
    assert len(timeline(project)) == 1


def test_the_look_report_carries_the_timeline_chart_escaped(project: Path) -> None:
    script(project, "hold", "hold", "go")
    done = watch(project, "phase2", "--every", "1s", "--out", "out", "--", "-p", "no:benchmark")
    assert done.returncode == 0, done.stdout + done.stderr
    report = (project / "out" / "looks" / "3" / "report.html").read_text()
    assert "Timeline of the watch" in report
    assert "3 look(s): #1 HOLD, #2 HOLD, #3 GO" in report
    assert report.count('class="rollout-timeline-plot"') == 1  # one metric, two gates
    assert "p99 delta &lt;b&gt;" in report and "p99 delta <b>" not in report
    assert "decision became certain at look #3" in report


def test_bad_input_exits_2_naming_the_problem(project: Path) -> None:
    done = watch(project, "phase9", "--out", "out")
    assert done.returncode == 2
    assert "phase 'phase9' is not in" in done.stderr
    done = watch(project, "phase2", "--promote-to", "phase7", "--out", "out")
    assert done.returncode == 2 and "--promote-to 'phase7'" in done.stderr
    done = watch(project, "phase2", "--every", "soon", "--out", "out")
    assert done.returncode == 2 and "--every" in done.stderr and "'soon'" in done.stderr
