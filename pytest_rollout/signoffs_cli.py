"""``rollout approve PHASE --role ROLE --by NAME --reason TEXT`` and ``rollout approvals PHASE``.

An approval is one line of the flag audit log (same file, lock, fsync and hash chain as flag
changes).  Exit status: 0 recorded / listed; 2 bad input (no config, unknown phase, a role the
phase does not require, empty reason or name, a latest decision of ABORT without
--override-abort); 3 the audit log cannot be read, written or trusted (broken hash chain).
See docs/signoffs.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_rollout.settings import ENV_CONFIG, ENV_FLAGS_AUDIT_LOG

if TYPE_CHECKING:
    from pytest_rollout.config import RolloutConfig
    from pytest_rollout.settings import Settings

EXIT_OK, EXIT_USAGE, EXIT_LOG = 0, 2, 3
ABORT_ROLLBACK_REASON = "pytest-rollout: {phase} ABORT (run "  # session.py's rollback reason


class ApproveError(Exception):
    """Refused input; ``code`` is the exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("phase", metavar="PHASE", help="phase key, e.g. phase2")
    parser.add_argument(
        "--config", metavar="PATH", help=f"rollout.toml (env {ENV_CONFIG}; default ./rollout.toml)"
    )
    parser.add_argument("--env", dest="environment", help="environment (env ROLLOUT_ENV)")
    parser.add_argument(
        "--audit-log",
        metavar="PATH",
        help=f"flag audit log (env {ENV_FLAGS_AUDIT_LOG}; else audit_log in rollout.toml; else "
        "the flag backend's default log)",
    )
    parser.add_argument("--flags", dest="flags_uri", metavar="URI", help="flag backend URI")
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON output")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "approve",
        help="record a sign-off of a phase (a line of the flag audit log)",
        description="Record that ROLE approves PHASE: the phase's rollout::signoff[ROLE] gate "
        "passes on it while the phase and the gates' git commit stay the same.",
        epilog="Exit status: 0 recorded, 2 bad input or refused (latest decision ABORT), "
        "3 audit log unreadable, unwritable or its hash chain broken. Guide: docs/signoffs.md",
    )
    _common(parser)
    parser.add_argument("--role", required=True, help="a role of the phase's signoffs")
    parser.add_argument("--by", required=True, metavar="NAME", help="who approves")
    parser.add_argument("--reason", required=True, help="why (recorded; not empty)")
    parser.add_argument(
        "--record",
        metavar="DECISION.json",
        help="the phase's latest decision record (--rollout-decision-json); its run id is "
        "recorded and an ABORT refuses the approval. The audit log's ABORT rollbacks of the "
        "phase are checked either way",
    )
    parser.add_argument(
        "--override-abort",
        action="store_true",
        help="approve although the latest decision is ABORT (recorded as such)",
    )


def add_list_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "approvals",
        help="list the sign-offs recorded for a phase",
        description="List the approvals of PHASE in the flag audit log, oldest first.",
    )
    _common(parser)


def run(args: argparse.Namespace) -> int:
    try:
        if getattr(args, "role", None) is None:
            return _list(args)
        return _approve(args)
    except ApproveError as exc:
        print(f"rollout {args.command}: error: {exc}", file=sys.stderr)
        return exc.code


def _context(args: argparse.Namespace) -> tuple[RolloutConfig, Settings, Path]:
    from pytest_rollout.config import ConfigError, load_config
    from pytest_rollout.flags.audit_path import audit_log_path
    from pytest_rollout.settings import SettingsError, resolve_settings

    path = args.config or os.environ.get(ENV_CONFIG)
    if path is None and Path("rollout.toml").is_file():
        path = "rollout.toml"
    if path is None:
        raise ApproveError(
            EXIT_USAGE, f"no rollout.toml: pass --config PATH or set {ENV_CONFIG} (it names the "
            "phases and the roles each must have sign off)"
        )  # fmt: skip
    cli = {"environment": args.environment, "flags": args.flags_uri, "audit_log": args.audit_log}
    try:
        config = load_config(Path(path))
        settings = resolve_settings(cli, config=config)
        log = audit_log_path(settings, run_id=_run_id())
    except (ConfigError, SettingsError) as exc:
        raise ApproveError(EXIT_USAGE, str(exc)) from None
    except Exception as exc:  # a flag backend URI that does not open
        raise ApproveError(EXIT_USAGE, f"cannot find the flag audit log: {exc}") from None
    if args.phase not in config.phases:
        known = ", ".join(config.phases) or "none"
        raise ApproveError(
            EXIT_USAGE, f"unknown phase {args.phase!r}: {config.source} defines {known}"
        )
    if log is None:
        raise ApproveError(
            EXIT_USAGE, f"no flag audit log: pass --audit-log, set {ENV_FLAGS_AUDIT_LOG}, or set "
            f"audit_log in [environments.{settings.environment or '<name>'}] of {config.source}"
        )  # fmt: skip
    return config, settings, log


def _run_id() -> str:
    return f"cli-{socket.gethostname()}-{os.getpid()}"


def _trusted_records(log: Path) -> list[dict[str, Any]]:
    from pytest_rollout.flags.audit import AuditLog
    from pytest_rollout.flags.audit_chain import verify_chain
    from pytest_rollout.flags.base import FlagBackendError

    try:
        chain = verify_chain(log)
        records = AuditLog(log).records()
    except (OSError, FlagBackendError) as exc:
        raise ApproveError(EXIT_LOG, f"cannot read the flag audit log {log}: {exc}") from None
    if not chain.ok:
        raise ApproveError(
            EXIT_LOG, f"{chain.describe(log)}; sign-off gates do not trust this log, so an "
            "approval written to it would not count: restore it first (rollout audit verify)"
        )  # fmt: skip
    return records


def _approve(args: argparse.Namespace) -> int:
    from pytest_rollout.flags.audit import AuditLog, new_change_id, utc_now
    from pytest_rollout.flags.base import FlagBackendError
    from pytest_rollout.signoffs import APPROVAL_KIND, gates_commit, gates_dir

    config, settings, log = _context(args)
    phase = config.phase(args.phase, settings.environment)
    role, by, reason = args.role.strip(), args.by.strip(), args.reason.strip()
    if role not in phase.signoffs:
        roles = ", ".join(repr(r) for r in phase.signoffs) or "no role (no signoffs)"
        raise ApproveError(
            EXIT_USAGE, f"{args.phase} does not require a sign-off by {role!r}: [phases."
            f"{args.phase}] signoffs in {config.source} lists {roles}"
        )  # fmt: skip
    if not reason:
        raise ApproveError(EXIT_USAGE, "--reason is empty: say why you approve (it is audited)")
    if not by:
        raise ApproveError(EXIT_USAGE, "--by is empty: name who approves")
    records = _trusted_records(log)
    since = _since(config, settings, args.phase, log)
    latest = _latest_decision(records, args.phase, args.record, since)
    if latest["decision"] == "ABORT" and not args.override_abort:
        raise ApproveError(
            EXIT_USAGE, f"the latest decision of {args.phase} is ABORT ({latest['source']}): "
            "investigate and run the gates again, or pass --override-abort (recorded)"
        )  # fmt: skip
    commit = gates_commit(gates_dir(config))
    approval = {
        "kind": APPROVAL_KIND,
        "id": new_change_id(),
        "time": utc_now(),
        "actor": by,
        "phase": args.phase,
        "role": role,
        "by": by,
        "reason": reason,
        "environment": settings.environment,
        "commit": commit,
        "since": since,
        "run_id": latest["run_id"],
        "override_abort": bool(args.override_abort and latest["decision"] == "ABORT"),
    }
    try:
        AuditLog(log).append([approval])
    except FlagBackendError as exc:
        raise ApproveError(EXIT_LOG, str(exc)) from None
    if commit is None:
        print(
            f"rollout approve: warning: {gates_dir(config)} is not a git checkout, so the "
            "approval names no commit and the sign-off gate will not accept it; approve from "
            "the git checkout the gates run from",
            file=sys.stderr,
        )
    if args.as_json:
        print(json.dumps(approval, indent=2))
    else:
        print(f"approved {args.phase} as {role} by {by} (id {approval['id']}) in {log}")
    return EXIT_OK


def _since(config: RolloutConfig, settings: Settings, phase: str, log: Path) -> str | None:
    """The phase start from the audit log (no Prometheus): informational, None if unknown."""
    from pytest_rollout.instants import rfc3339
    from pytest_rollout.phase_start import resolve_phase_start

    env = config.environments.get(settings.environment or "")
    try:
        start = resolve_phase_start(
            phase=phase,
            phase_flags=config.phase(phase, settings.environment).flags,
            at=time.time(),
            option=None,
            env=os.environ,
            audit_log=log,
            prom=None,
            flag_metric=config.flag_metric,
            retention_s=env.retention_s if env else None,
        )
    except Exception:  # informational only: the gate resolves the start itself
        return None
    return rfc3339(start.since) if start.since is not None and not start.problem else None


def _latest_decision(
    records: list[dict[str, Any]], phase: str, record_path: str | None, since: str | None
) -> dict[str, Any]:
    """The newest of: the decision record given, and the audit log's ABORT rollbacks."""
    from pytest_rollout.decision import verify_record
    from pytest_rollout.instants import parse_instant

    found: list[tuple[float, dict[str, Any]]] = []
    if record_path is not None and Path(record_path).exists():
        try:
            record = json.loads(Path(record_path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApproveError(EXIT_USAGE, f"--record {record_path}: unreadable: {exc}") from None
        if not isinstance(record, dict) or not verify_record(record):
            raise ApproveError(
                EXIT_USAGE, f"--record {record_path}: digest mismatch or not a decision record "
                f"(see `rollout verify {record_path}`)"
            )  # fmt: skip
        if record.get("phase") != phase:
            raise ApproveError(
                EXIT_USAGE, f"--record {record_path} decided {record.get('phase')!r}, not {phase}"
            )
        context = record.get("context") or {}
        entry = {
            "decision": record.get("decision"),
            "run_id": context.get("run_id") if isinstance(context, dict) else None,
            "source": f"decision record {record_path}",
        }
        found.append((_instant(record.get("evaluated_at")), entry))
    prefix = ABORT_ROLLBACK_REASON.format(phase=phase)
    for line in records:
        reason = str(line.get("reason", ""))
        if line.get("kind") == "change" and reason.startswith(prefix):
            entry = {
                "decision": "ABORT",
                "run_id": line.get("run_id") or None,
                "source": f"audit log rollback {line.get('id')} at {line.get('time')}",
            }
            found.append((_instant(line.get("time")), entry))
    if since is not None:  # a decision of an earlier pass through the phase is not its latest
        found = [f for f in found if f[0] >= parse_instant(since)]
    if not found:
        return {"decision": None, "run_id": None, "source": "no decision"}
    return max(found, key=lambda f: f[0])[1]


def _instant(text: object) -> float:
    """Unix seconds; a decision without a valid time counts as the newest (fail closed)."""
    from pytest_rollout.instants import parse_instant

    try:
        return parse_instant(str(text))
    except ValueError:
        return float("inf")


def _list(args: argparse.Namespace) -> int:
    config, settings, log = _context(args)
    from pytest_rollout.signoffs import approvals

    rows = approvals(_trusted_records(log), args.phase)
    if args.as_json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    required = config.phase(args.phase, settings.environment).signoffs
    print(f"{args.phase} requires: {', '.join(required) or 'no sign-off'} ({log})")
    if not rows:
        print("no approvals")
    for row in rows:
        override = "  OVERRIDING ABORT" if row.get("override_abort") else ""
        commit = str(row.get("commit") or "no commit")[:12]
        print(
            f"{row.get('time')}  {row.get('role')!s:<16} {row.get('by')!s:<12} "
            f"{row.get('environment')}  {commit}{override}"
        )
        print(f"    reason: {row.get('reason')}")
    return EXIT_OK
