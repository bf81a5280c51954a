"""`rollout watch` on the staging stack with the real gates in the `ci` environment.

One stack and one traffic run serve both tests (stack up, seed and traffic as the runbook's
rehearsal does). A regression injected mid-watch (latency on the treatment path, staging's
chaos endpoint) must end in ABORT with a verified rollback within two looks; a healthy phase 2
with --promote-to phase3 must reach phase 3's flags, set through the flag controller.
The abort comes from the gates' own abort triggers; the watch only re-runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from staging.client import EngramClient
from staging.seed import seed
from staging.stack import Stack
from staging.traffic import drive

ROOT = Path(__file__).resolve().parents[2]
ACTOR = "watch staging test"
EVERY = "20s"  # the ci profile's look_every, given explicitly: the test's cost depends on it
CHAOS_MS = 80.0  # phase 3's chaos_latency_ms, as in the rehearsal


@dataclass
class Staging:
    stack: Stack
    env: dict[str, str]
    audit_log: Path


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staging]:
    workdir = tmp_path_factory.mktemp("watch-stack")
    # Consolidation every 30 s as in the rehearsal; no twin: phase 2 does not compare with it.
    stack = Stack.up(workdir / "stack", formation_interval_s=30.0, twin=False)
    stop = threading.Event()
    traffic: threading.Thread | None = None
    try:
        seed(stack.engram_url, episodes=2000, spaces=1000, skew=0.5)
        traffic = threading.Thread(
            target=drive,
            kwargs={
                "base_url": stack.engram_url,
                "duration_s": 900.0,
                "rps": 300.0,
                "spaces": 1000,
                "skew": 0.5,
                "threads": 16,
                "stop": stop,
            },
            daemon=True,
        )
        traffic.start()
        audit_log = workdir / "flags-audit.jsonl"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("ROLLOUT_", "ENGRAM_"))}
        env = {
            **clean,
            **stack.env(),
            "PYTHONPATH": str(ROOT),
            "ROLLOUT_CONFIG": "gates/rollout.toml",
            "ROLLOUT_ENV": "ci",
            "ROLLOUT_FLAGS_AUDIT_LOG": str(audit_log),
            "ROLLOUT_ACTOR": ACTOR,
        }
        yield Staging(stack, env, audit_log)
    finally:
        stop.set()
        if traffic is not None:
            traffic.join(timeout=15)
        stack.down()


def rollout(staging: Staging, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_rollout", *args],
        cwd=ROOT,
        env=staging.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_phase2(staging: Staging) -> None:
    """Phase 2's flags (the ci override: blended_recall 50), audited: the phase starts now.

    Then both sign-offs phase 2 requires, so the gates can reach GO."""
    for flag, value in (("dual_memory_types", "on"), ("concept_formation", "on")):
        done = rollout(staging, "flags", "set", flag, value, "--phase", "phase2", "--reason", "t")
        assert done.returncode == 0, done.stderr
    done = rollout(
        staging, "flags", "cohort", "blended_recall", "50", "--phase", "phase2", "--reason", "t"
    )
    assert done.returncode == 0, done.stderr
    # phase 2's sign-off gates ([phases.phase2] signoffs): approved after the phase began.
    for role in ("service owner", "on-call"):
        done = rollout(staging, "approve", "phase2", "--role", role, "--by", ACTOR, "--reason", "t")
        assert done.returncode == 0, done.stdout + done.stderr


def served_flags(staging: Staging) -> dict[str, Any]:
    with EngramClient(staging.stack.engram_url, staging.stack.admin_token) as client:
        return {name: f["value"] for name, f in client.features()["flags"].items()}


def read_timeline(out: Path) -> list[dict[str, Any]]:
    path = out / "timeline.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def test_regression_mid_watch_aborts_and_rolls_back_within_two_looks(
    staging: Staging, tmp_path: Path
) -> None:
    start_phase2(staging)
    out = tmp_path / "watch"
    command = [sys.executable, "-m", "pytest_rollout", "watch", "phase2", "--every", EVERY]
    command += ["--out", str(out), "--on-abort", "rollback", "--max-looks", "6"]
    watch = subprocess.Popen(
        command,
        cwd=ROOT,
        env=staging.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = EngramClient(staging.stack.engram_url, staging.stack.admin_token)
    try:
        deadline = time.monotonic() + 90
        while not read_timeline(out):  # the first look, before the regression
            assert watch.poll() is None, watch.communicate()
            assert time.monotonic() < deadline, "no first look within 90 s"
            time.sleep(0.5)
        healthy_looks = len(read_timeline(out))
        client.chaos(latency_ms=CHAOS_MS, duration_s=600)
        stdout, stderr = watch.communicate(timeout=240)
    finally:
        if watch.poll() is None:
            watch.kill()
        client.clear_chaos()
        client.close()
    looks = read_timeline(out)
    assert watch.returncode == 10, stdout + stderr
    assert looks[-1]["decision"] == "ABORT"
    assert {e["decision"] for e in looks[:-1]} <= {"HOLD"}
    # Within two looks of the regression (the look running when it began may be one of them).
    assert looks[-1]["look"] <= healthy_looks + 2, stdout
    fired = [g["name"] for g in looks[-1]["gates"] if g["verdict"] == "FAIL"]
    assert "test_abort_when_p99_regresses_over_20ms" in fired, stdout
    record = json.loads((out / looks[-1]["record"]).read_text())
    (rollback,) = [a for a in record["actions"] if a["action"] == "rollback"]
    assert rollback["result"] == "verified"
    assert served_flags(staging)["blended_recall"] == 0
    assert "Timeline of the watch" in (out / looks[-1]["report"]).read_text()


def test_healthy_phase2_with_promote_to_reaches_phase3_flags(
    staging: Staging, tmp_path: Path
) -> None:
    start_phase2(staging)
    out = tmp_path / "watch"
    done = rollout(
        staging,
        "watch", "phase2", "--every", EVERY, "--out", str(out), "--promote-to", "phase3",
        "--max-looks", "12",
        timeout=400,
    )  # fmt: skip
    looks = read_timeline(out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert looks[-1]["decision"] == "GO" and looks[-1]["promotion"]["ok"] is True
    assert served_flags(staging)["blended_recall"] == 25  # [phases.phase3.flags]
    audit = [json.loads(line) for line in staging.audit_log.read_text().splitlines()]
    # One change (one audit id, a line per flag) names phase 3 and the actor, verified.
    promoted = [r for r in audit if r.get("kind") == "change" and r.get("phase") == "phase3"]
    assert {r["id"] for r in promoted} == {promoted[0]["id"]}
    assert {r["actor"] for r in promoted} == {ACTOR}
    assert {r["flag"]: r["after"] for r in promoted}["blended_recall"] == 25
    outcome = [r for r in audit if r.get("kind") == "outcome" and r["id"] == promoted[0]["id"]]
    assert [r["status"] for r in outcome] == ["verified"]


def drill_look(staging: Staging, out: Path) -> dict[str, Any]:
    """One look at phase 3's drill gate alone: its gate entry in the record."""
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "gates", "-m", "phase3", "-k", "chaos_drill",
            "-p", "no:cacheprovider", f"--rollout-decision-json={out}",
        ],
        cwd=ROOT, env=staging.env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.exists(), done.stdout + done.stderr
    record = json.loads(out.read_text())
    (entry,) = [g for g in record["gates"] if "chaos_drill" in g["nodeid"]]
    assert entry["outcome"] == "pass", json.dumps(entry, indent=1)
    return entry


def drill_changes(staging: Staging) -> int:
    lines = [json.loads(x) for x in staging.audit_log.read_text().splitlines()]
    return len({r["id"] for r in lines if "chaos drill" in str(r.get("reason", ""))})


def drill_lines(staging: Staging) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in staging.audit_log.read_text().splitlines()]
    return [r for r in lines if r.get("kind") == "drill"]


def test_the_ramp_drill_runs_once_per_phase_and_later_looks_judge_its_record(
    staging: Staging, tmp_path: Path
) -> None:
    """A drill's restore restarts the phase's evidence, so drilling on every look of a watch
    would keep the ramp from ever accumulating evidence: later looks reuse the recorded drill."""
    for percent in ("0", "25"):  # phase 3's flags, freshly: the phase starts at the 25
        for flag in ("dual_memory_types", "concept_formation"):
            done = rollout(
                staging, "flags", "set", flag, "on", "--phase", "phase3", "--reason", "t"
            )
            assert done.returncode == 0, done.stderr
        done = rollout(
            staging, "flags", "cohort", "blended_recall", percent, "--phase", "phase3",
            "--reason", "t",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    before, recorded = drill_changes(staging), len(drill_lines(staging))
    first = drill_look(staging, tmp_path / "first.json")
    assert drill_changes(staging) == before + 2  # roll back, restore: one drill
    (drill,) = drill_lines(staging)[recorded:]
    assert drill["phase"] == "phase3" and drill["recovered_s"] == first["observed"]
    second = drill_look(staging, tmp_path / "second.json")
    assert drill_changes(staging) == before + 2  # no second drill in the same phase
    assert len(drill_lines(staging)) == recorded + 1 and second["observed"] == first["observed"]
    # A new change into the phase's flags starts the phase again: the next look drills again.
    for percent in ("0", "25"):
        done = rollout(
            staging, "flags", "cohort", "blended_recall", percent, "--phase", "phase3",
            "--reason", "t",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    drill_look(staging, tmp_path / "third.json")
    assert drill_changes(staging) == before + 4 and len(drill_lines(staging)) == recorded + 2
