"""The rehearsal of the dual-memory rollout in staging, end to end (issues 7 and 17).

Runs scripts/rehearse.py exactly as the README's main job does: it runs the runbook's
```sh rehearsal blocks (the real stack, real traffic, the real gates in the `ci` environment),
then checks what the blocks wrote; this test checks every expectation it recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rehearsal_walks_phases_0_to_2_then_aborts_and_rolls_back(tmp_path: Path) -> None:
    out = tmp_path / "rehearsal"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rehearse.py"), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    summary = json.loads((out / "rehearsal.json").read_text())
    steps = {step["step"]: step for step in summary["steps"]}
    assert run.returncode == 0, run.stderr[-4000:]
    assert summary["ok"] is True
    # Every runbook command ran, in order, and exited as the runbook says.
    assert len(summary["commands"]) > 20
    assert all(c["exit_status"] == c["expected_exit"] for c in summary["commands"]), [
        c for c in summary["commands"] if c["exit_status"] != c["expected_exit"]
    ]
    assert "docs/operations/dual_memory_rollout.md:" in (out / "rehearsal.sh").read_text()

    for phase in ("phase0", "phase1", "phase2"):
        assert steps[phase]["decision"] == "GO", steps[phase]["reason"]
        assert steps[phase]["exit_status"] == 0
        record = json.loads((out / f"{phase}.json").read_text())
        assert record["environment"] == "ci"
        assert (out / f"{phase}.html").stat().st_size > 10_000

    regression = steps["phase2-regression"]
    assert (regression["decision"], regression["exit_status"]) == ("ABORT", 10)
    assert "test_abort_when_p99_regresses_over_20ms" in regression["reason"]
    (rollback,) = [a for a in regression["actions"] if a["action"] == "rollback"]
    assert rollback["result"] == "verified"
    assert rollback["after"]["blended_recall"] == 0

    for check in (
        "flags at phase2's rollback state after the rollback",
        "the audit log records the rollback, with actor and phase",
        "every flag change in the audit log names the actor and its phase",
        "no recall takes the slowed treatment path after the rollback",
        "no episode lost (RPO 0)",
    ):
        assert steps[check]["ok"], steps[check]["detail"]
