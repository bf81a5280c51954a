"""Rehearse the dual-memory rollout end to end on the local staging stack: run the runbook.

    python scripts/rehearse.py --out out/main            # the README's main job
    python scripts/rehearse.py --out out/main --keep-up  # leave the stack running afterwards

The rehearsal *is* the runbook: this script runs the ```` ```sh rehearsal ```` blocks of
docs/operations/dual_memory_rollout.md ("Rehearse in staging"), in order, in one bash shell from
the repository root, with only the substitutions of SUBSTITUTIONS (the runbook lists them). It
has no commands of its own: stack up, traffic, flags, waits, baseline, gates, chaos and clean-up
are all runbook lines. Each command is logged with its line in the runbook and must exit as the
runbook says (0, or its ``# expect exit N``).

After the blocks it checks, in Python, what a command's exit status cannot show, from the files
the blocks wrote: each gate's decision record matches its expected exit, the ABORT rolled back
and verified, the flags are at the phase's rollback state, the audit log names actor and phase,
no recall takes the slowed treatment path any more, no episode lost (RPO 0). rehearsal.json in --out lists every command and
check. Exit 0 when every one held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_rollout.config import load_config  # noqa: E402
from pytest_rollout.decision import Decision  # noqa: E402
from scripts.runbook_blocks import Command, extract, script, substitute  # noqa: E402

DOCS = [ROOT / "docs" / "operations" / "dual_memory_rollout.md"]
CONFIG = ROOT / "gates" / "rollout.toml"
DEFAULT_ACTOR = "staging rehearsal (scripts/rehearse.py)"
# The documented substitutions (the runbook's "Rehearse in staging" shows this table): the value
# of these exports, and nothing else, differs from the runbook as written.
SUBSTITUTIONS = {
    "OUT": "the --out directory",
    "ROLLOUT_ACTOR": f"$ROLLOUT_ACTOR if exported, else {DEFAULT_ACTOR!r}",
}
# Files the checks below read, each written by a runbook command into $OUT.
AUDIT_LOG = "flags-audit.jsonl"
FLAGS_AFTER = "flags-after-rollback.json"
PROBE_AFTER = "after-rollback.json"
INTEGRITY_BEFORE, INTEGRITY_AFTER = "integrity-before.json", "integrity-after.json"
READS = (AUDIT_LOG, FLAGS_AFTER, PROBE_AFTER, INTEGRITY_BEFORE, INTEGRITY_AFTER)
# The injected latency is the ramp's chaos drill's (a test holds the runbook to it).
CHAOS = ("chaos_latency_ms", "phase3")
DECISION_OF_EXIT = {decision.exit_status: decision.value for decision in Decision}


def log(message: str) -> None:
    print(f"[rehearse {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def environment() -> dict[str, str]:
    """The caller's environment without rollout settings: only the runbook's exports count.

    The running Python's scripts come first on PATH, so `python`, `pytest` and `rollout` in the
    runbook are this interpreter's.
    """
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROLLOUT_", "ENGRAM_")) and k != "BASH_ENV"
    }
    bindir = str(Path(sys.executable).parent)
    kept["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
    return kept


def run_blocks(commands: list[Command], out: Path) -> list[dict[str, Any]]:
    """Run the commands in one bash shell; one result per command (ran or not)."""
    status_file = out / "rehearsal-status.jsonl"
    status_file.unlink(missing_ok=True)
    program = out / "rehearsal.sh"
    program.write_text(script(commands, status_file))
    log(f"running {len(commands)} runbook commands in one bash shell ({program})")
    subprocess.call(["bash", str(program)], cwd=ROOT, env=environment())
    ran = {}
    if status_file.exists():
        ran = {r["n"]: r["exit"] for r in map(json.loads, status_file.read_text().splitlines())}
    return [
        {
            "where": c.where,
            "command": c.text,
            "expected_exit": c.expect_exit,
            "exit_status": ran.get(n),
            "ok": ran.get(n) == c.expect_exit,
        }
        for n, c in enumerate(commands)
    ]


class Checks:
    """What exit statuses cannot show, read from the files the runbook's commands wrote."""

    def __init__(self, out: Path, actor: str) -> None:
        self.out, self.actor = out, actor
        self.config = load_config(CONFIG)
        self.steps: list[dict[str, Any]] = []

    def check(self, name: str, ok: bool, detail: Any) -> None:
        self.steps.append({"step": name, "ok": bool(ok), "detail": detail})
        log(f"{name}: {'ok' if ok else 'FAILED'} — {detail}")

    def read(self, name: str) -> Any:
        path = self.out / name
        if not path.exists():
            return None
        text = path.read_text()
        if name.endswith(".jsonl"):
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)

    def written(self, words: list[str], option: str) -> Path | None:
        """The file ``option`` names in a command's words, with the runbook's $OUT expanded."""
        given = [b for a, b in zip(words, words[1:], strict=False) if a == option]
        given += [w.split("=", 1)[1] for w in words if w.startswith(option + "=")]
        if not given:
            return None
        path = Path(given[-1].replace("${OUT}", str(self.out)).replace("$OUT", str(self.out)))
        return path if path.is_absolute() else ROOT / path

    def gate(self, command: Command, exit_status: int | None) -> dict[str, Any] | None:
        """The decision record of a `pytest gates` command against its expected exit."""
        words = command.words()
        if words[:2] != ["pytest", "gates"]:
            return None
        path = self.written(words, "--rollout-decision-json")
        record = json.loads(path.read_text()) if path and path.exists() else {}
        expected = DECISION_OF_EXIT.get(command.expect_exit)
        step = {
            "step": path.stem if path else command.where,
            "where": command.where,
            "phase": words[words.index("-m") + 1] if "-m" in words else None,
            "environment": record.get("environment"),
            "expected": expected,
            "decision": record.get("decision"),
            "exit_status": exit_status,
            "ok": record.get("decision") == expected and exit_status == command.expect_exit,
            "reason": record.get("reason"),
            "actions": record.get("actions", []),
            "rollback_requested": "--rollout-on-abort=rollback" in words,
        }
        self.steps.append(step)
        log(
            f"{step['step']}: {step['decision']} (exit {exit_status}), expected {expected}: "
            f"{'ok' if step['ok'] else 'NOT AS EXPECTED'} — {step['reason']}"
        )
        return step

    def after_abort(self, abort: dict[str, Any]) -> None:
        phase = str(abort["phase"])
        env = str(abort["environment"] or "ci")
        wanted = dict(self.config.phase(phase, env).rollback)
        rollback = [a for a in abort["actions"] if a.get("action") == "rollback"]
        self.check(
            "rollback verified in the decision record",
            len(rollback) == 1 and rollback[0].get("result") == "verified",
            rollback,
        )
        flags = self.read(FLAGS_AFTER) or {}
        now = {name: (flags.get(name) or {}).get("value") for name in wanted}
        self.check(f"flags at {phase}'s rollback state after the rollback", now == wanted, now)
        audit = [a for a in self.read(AUDIT_LOG) or [] if a.get("kind") == "change"]
        lines = [
            a
            for a in audit
            if a.get("flag") in wanted
            and a.get("after") == wanted[a["flag"]]
            and "ABORT" in str(a.get("reason"))
        ]
        self.check(
            "the audit log records the rollback, with actor and phase",
            len(lines) == len(wanted)
            and all(a.get("actor") == self.actor and a.get("phase") == phase for a in lines),
            lines or "no rollback line",
        )
        anonymous = [a for a in audit if a.get("actor") != self.actor or not a.get("phase")]
        self.check(
            "every flag change in the audit log names the actor and its phase",
            bool(audit) and not anonymous,
            anonymous or f"{len(audit)} changes by {self.actor!r}",
        )
        # The chaos slows the blended (treatment) path only, so an answer from another path
        # carries none of it. That, not the probe's own latency, is the evidence: on a shared
        # machine client-side latency follows the load (p50 58 ms, p99 308 ms with nothing
        # slowed at load 20), and a latency bound would judge the machine, not the rollback.
        chaos_ms = self.config.threshold(*CHAOS)
        probe = self.read(PROBE_AFTER) or {}
        groups = probe.get("by_group", {})
        self.check(
            "no recall takes the slowed treatment path after the rollback",
            sum(groups.values()) > 0 and "treatment" not in groups and not probe.get("failures"),
            f"probe after the rollback, chaos ({chaos_ms:g} ms) still on the treatment path: "
            f"answers by group {groups}, {probe.get('failures')} failed; client-side p50 "
            f"{probe.get('p50_ms')} ms, p99 {probe.get('p99_ms')} ms",
        )

    def rpo(self) -> None:
        before, after = self.read(INTEGRITY_BEFORE), self.read(INTEGRITY_AFTER)
        if before is None or after is None:
            self.check("no episode lost (RPO 0)", False, "integrity snapshots missing")
            return
        lost = {
            space: (was["episodes"], after["spaces"].get(space, {}).get("episodes", 0))
            for space, was in before["spaces"].items()
            if after["spaces"].get(space, {}).get("episodes", 0) < was["episodes"]
        }
        self.check(
            "no episode lost (RPO 0)",
            not lost,
            f"{before['episodes']} -> {after['episodes']} episodes; lost in {lost or 'none'}",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "out" / "main",
        help="$OUT of the runbook: decision records, reports, logs and rehearsal.json",
    )
    parser.add_argument(
        "--keep-up",
        action="store_true",
        help="skip the runbook's clean-up blocks (traffic and stack keep running)",
    )
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    actor = os.environ.get("ROLLOUT_ACTOR", "").strip() or DEFAULT_ACTOR
    commands = substitute(extract(DOCS, ROOT), {"OUT": str(out), "ROLLOUT_ACTOR": actor})
    if args.keep_up:
        commands = [c for c in commands if not c.final]
    started = time.monotonic()
    ran = run_blocks(commands, out)
    checks = Checks(out, actor)
    steps = [checks.gate(c, r["exit_status"]) for c, r in zip(commands, ran, strict=True)]
    aborts = [s for s in steps if s and s["expected"] == "ABORT" and s["rollback_requested"]]
    checks.check(
        "the runbook's rehearsal ends a phase in ABORT with --rollout-on-abort=rollback",
        bool(aborts),
        [s["where"] for s in aborts] or "no gate run expects exit 10 with the rollback option",
    )
    for abort in aborts:
        checks.after_abort(abort)
    checks.rpo()
    ok = all(r["ok"] for r in ran) and all(s["ok"] for s in checks.steps)
    summary = {
        "ok": ok,
        "seconds": round(time.monotonic() - started, 1),
        "runbook": [c.relative_to(ROOT).as_posix() for c in DOCS],
        "substitutions": SUBSTITUTIONS,
        "commands": ran,
        "steps": checks.steps,
    }
    (out / "rehearsal.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(
        f"rehearsal {'PASSED' if ok else 'FAILED'} in {summary['seconds']:.0f}s; "
        f"reports and decision records in {out}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
