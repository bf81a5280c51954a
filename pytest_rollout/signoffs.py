"""Sign-offs as gates: ``signoffs = ["service owner", "on-call"]`` in ``[phases.X]``.

Each required role adds the built-in gate ``rollout::signoff[ROLE]`` to the phase's run (no gate
code).  It passes when the flag audit log holds an approval line (``rollout approve``) for the
phase and role, in the run's environment, made after the phase start the run resolved and no
later than the pinned instant, for the git commit the gates are at now.  Anything else, or an
audit log whose hash chain is broken, is inconclusive (HOLD), saying what to run.
See docs/signoffs.md.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_rollout.decision import GateResult
from pytest_rollout.instants import parse_instant, rfc3339

if TYPE_CHECKING:
    from pytest_rollout.config import RolloutConfig
    from pytest_rollout.context import RolloutContext

APPROVAL_KIND = "approval"


def gates_dir(config: RolloutConfig) -> Path:
    """The directory of the rollout.toml the gates use (its git commit is what is approved)."""
    source = config.source.split(" [tool.", 1)[0]  # "pyproject.toml [tool.pytest_rollout]"
    path = Path(source)
    return path.resolve().parent if path.is_file() else Path.cwd()


def gates_commit(directory: Path) -> str | None:
    """The last commit that changed the gates directory, or None outside a git checkout.

    Not HEAD: a commit elsewhere in the repository (a doc, another service) leaves the gates as
    they were, so it must not void their sign-offs; any commit that changes them does.
    """
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "log", "-1", "--format=%H", "--", "."],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def approvals(records: Sequence[Mapping[str, Any]], phase: str) -> list[dict[str, Any]]:
    """The approval lines of ``phase``, in log order."""
    return [dict(r) for r in records if r.get("kind") == APPROVAL_KIND and r.get("phase") == phase]


def approve_command(phase: str, role: str) -> str:
    return f"rollout approve {phase} --role '{role}' --by NAME --reason TEXT"


def signoff_gates(context: RolloutContext, phase_key: str | None) -> list[GateResult]:
    """One gate per role the phase requires; none for a phase without ``signoffs``."""
    if phase_key is None:
        return []
    roles = context.phase(phase_key).config.signoffs
    if not roles:
        return []
    found, problem = _approvals_of(context, phase_key)
    commit = gates_commit(gates_dir(context.config))
    start = context.phase_start(phase_key)
    return [
        _gate(phase_key, role, found, problem, commit, start.since, start.problem, context)
        for role in roles
    ]


def _approvals_of(context: RolloutContext, phase: str) -> tuple[list[dict[str, Any]], str]:
    """(approvals of the phase, a problem that keeps them from being trusted, or "")."""
    from pytest_rollout.flags.audit import AuditLog
    from pytest_rollout.flags.audit_chain import verify_chain
    from pytest_rollout.flags.audit_path import audit_log_path

    try:
        path = audit_log_path(context.settings, run_id=context.run_id)
    except Exception as exc:  # a broken flags URI must not crash the run
        return [], f"cannot find the flag audit log: {type(exc).__name__}: {exc}"
    if path is None:
        return [], (
            "no flag audit log to read approvals from: set audit_log in "
            f"[environments.{context.environment or '<name>'}] of {context.config.source} "
            "or ROLLOUT_FLAGS_AUDIT_LOG"
        )
    try:
        chain = verify_chain(path)
        records = AuditLog(path).records()
    except Exception as exc:
        return [], f"cannot read the flag audit log {path}: {type(exc).__name__}: {exc}"
    if not chain.ok:
        return [], (
            f"the flag audit log {path} cannot be trusted: its hash chain is broken at line "
            f"{chain.broken_line} ({chain.problem}); see `rollout audit verify {path}`"
        )
    return approvals(records, phase), ""


def _gate(
    phase: str,
    role: str,
    found: list[dict[str, Any]],
    problem: str,
    commit: str | None,
    since: float | None,
    since_problem: str | None,
    context: RolloutContext,
) -> GateResult:
    nodeid = f"rollout::signoff[{role}]"
    record: dict[str, Any] = {"metric": f"approval by {role}", "unit": "approval"}
    waiting = f"waiting for sign-off by {role}: {approve_command(phase, role)}"
    if problem:
        return GateResult(nodeid, "criterion", "inconclusive", f"{problem}; {waiting}", record)
    if commit is None:
        reason = (
            f"cannot tie a sign-off to the gates: {gates_dir(context.config)} is not a git "
            "checkout (`git log -1 -- <gates dir>` found no commit); run the gates from a git checkout, "
            f"commit them, then {approve_command(phase, role)}"
        )
        return GateResult(nodeid, "criterion", "inconclusive", reason, record)
    if since is None:
        reason = f"the start of {phase} is unknown ({since_problem}), so no approval can be "
        reason += f"shown to be made during it; {waiting}"
        return GateResult(nodeid, "criterion", "inconclusive", reason, record)
    record["commit"] = commit
    misses: list[str] = []
    for approval in reversed(found):
        if approval.get("role") != role:
            continue
        why = _mismatch(approval, context.environment, commit, since, context.at)
        if why is None:
            record["approval"] = approval.get("id")
            reason = (
                f"approved by {approval.get('by')} ({role}) at {approval.get('time')} for "
                f"commit {commit[:12]}: {approval.get('reason')}"
            )
            return GateResult(nodeid, "criterion", "pass", reason, record)
        misses.append(f"{approval.get('by')} at {approval.get('time')} {why}")
    seen = f" (not counted: {'; '.join(misses[:3])})" if misses else ""
    reason = f"{waiting}{seen}; the approval must come after the phase start {rfc3339(since)}"
    return GateResult(nodeid, "criterion", "inconclusive", reason, record)


def _mismatch(
    approval: Mapping[str, Any], environment: str | None, commit: str, since: float, at: float
) -> str | None:
    """Why an approval does not count for this run, or None when it does."""
    try:
        made = parse_instant(str(approval.get("time")))
    except ValueError:
        return "has no valid time"
    if approval.get("environment") != environment:
        return f"is for environment {approval.get('environment')!r}, not {environment!r}"
    if approval.get("commit") != commit:
        return f"is for commit {str(approval.get('commit'))[:12]}, the gates are at {commit[:12]}"
    if made < since:
        return "was made before the phase start"
    if math.floor(made) > at:  # the pinned instant is a whole second: its own second counts
        return f"was made after the evaluated instant {rfc3339(at)}"
    return None
