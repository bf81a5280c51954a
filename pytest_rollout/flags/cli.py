"""``rollout flags get|set|cohort|history|rollback``: operate flags by hand, audited and verified.

Exit status: 0 verified success (or a dry run / read that worked); 1 the change was written but
could not be verified, or a rollback failed; 2 bad input (unknown flag, wrong type, bad percent,
missing --reason or URI, unknown audit id); 3 the backend could not be read or written;
4 ``history --strict`` found audit log lines that are not audit records, or a broken hash chain
(each is also reported on stderr with its line number, with or without --strict).
A written rollback is announced on the communication plan's webhook; the notification is best
effort and never changes the exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_rollout.settings import ENV_CONFIG as CONFIG_ENV
from pytest_rollout.settings import ENV_FLAGS as URI_ENV
from pytest_rollout.settings import ENV_FLAGS_AUDIT_LOG as AUDIT_ENV
from pytest_rollout.settings import ENV_WEBHOOK as WEBHOOK_ENV
from pytest_rollout.settings import Settings, SettingsError, resolve_settings

if TYPE_CHECKING:
    from pytest_rollout.config import RolloutConfig

EXIT_OK = 0
EXIT_UNVERIFIED = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3
EXIT_AUDIT_CORRUPT = 4


def _common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # Sub-commands repeat the options with SUPPRESS defaults, so they may come before or after
    # the sub-command without the sub-parser's default overwriting a value given earlier.
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--flags",
        dest="flags_uri",
        metavar="URI",
        default=default(None),
        help=f"flag backend: flagd-file:PATH or http(s)://host:port (env {URI_ENV})",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default(None),
        help="rollout.toml giving the environment's flags URI, audit log and phase rollback "
        "states (env ROLLOUT_CONFIG; default ./rollout.toml if present)",
    )
    parser.add_argument(
        "--audit-log",
        metavar="PATH",
        default=default(None),
        help=f"audit log (env {AUDIT_ENV}; else audit_log in rollout.toml; else "
        "<flag file>.audit.jsonl or ./rollout-flags-audit.jsonl)",
    )
    parser.add_argument(
        "--actor", default=default(None), help="who acts (default: $ROLLOUT_ACTOR, CI user, $USER)"
    )
    parser.add_argument(
        "--env",
        dest="environment",
        default=default(None),
        help="environment recorded in the audit log (env ROLLOUT_ENV)",
    )
    parser.add_argument(
        "--phase",
        default=default(None),
        help="rollout phase for the audit log (rollback default: the phase of the change "
        "undone by --to, else of the latest audited change)",
    )
    parser.add_argument("--reason", default=default(None), help="why (required for changes)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        default=default(False),
        help="validate and show the change, write nothing",
    )
    parser.add_argument(
        "--json", dest="as_json", action="store_true", default=default(False), help="JSON output"
    )


def add_parser(subparsers: Any) -> None:
    """Register ``rollout flags``; imports nothing heavy."""
    parser = subparsers.add_parser(
        "flags",
        help="read and change feature flags (audited, verified)",
        description="Read and change feature flags; every change is audited and verified by "
        "reading it back.",
        epilog="Exit status: 0 verified, 1 not verified / rollback failed, 2 bad input, "
        "3 backend unreachable, 4 corrupt audit log line (history --strict). "
        "Operator guide: docs/flags.md",
    )
    _common_options(parser, suppress=False)
    actions = parser.add_subparsers(dest="flags_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        _common_options(sub, suppress=True)
        return sub

    get = action("get", "show all flags or one")
    get.add_argument("name", nargs="?")
    set_ = action("set", "set a boolean or number flag (or a cohort percent)")
    set_.add_argument("name")
    set_.add_argument("value", help="true/false/on/off or a number")
    cohort = action("cohort", "set the percent of spaces in a cohort flag's 'on' cohort")
    cohort.add_argument("name")
    cohort.add_argument("percent", help="0..100 (e.g. 5, 2.5, 25%%)")
    history = action("history", "show the audit log, newest last")
    history.add_argument("--limit", type=int, default=20, metavar="N", help="last N changes")
    history.add_argument(
        "--strict",
        action="store_true",
        help=f"exit {EXIT_AUDIT_CORRUPT} if a line of the audit log is not an audit record or "
        "its hash chain is broken (it is reported on stderr either way)",
    )
    rollback = action("rollback", "restore the state before an audited change, or a given state")
    target = rollback.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", metavar="AUDIT_ID", help="restore the values before this change")
    target.add_argument(
        "--state", nargs="+", metavar="NAME=VALUE", help="set these values (rollback state)"
    )
    target.add_argument(
        "--phase-state",
        action="store_true",
        help="apply [phases.<--phase>.rollback] from rollout.toml",
    )
    rollback.add_argument(
        "--webhook",
        metavar="URL",
        default=None,
        help=f"Slack-compatible webhook told about the rollback (env {WEBHOOK_ENV}; else "
        "webhook in rollout.toml's environment); a failed notification only warns",
    )


def _fail(code: int, message: str) -> int:
    print(f"rollout flags: error: {message}", file=sys.stderr)
    return code


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _print_states(states: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({name: states[name].to_json() for name in sorted(states)}, indent=2))
        return
    for name in sorted(states):
        state = states[name]
        suffix = " %" if state.type == "cohort" else ""
        print(f"{name:<32} {state.type:<8} {_format_value(state.value)}{suffix}")


def run(args: argparse.Namespace) -> int:
    """Run one ``rollout flags`` action; returns the exit status documented above."""
    from pytest_rollout.flags.base import (
        FlagBackendError,
        FlagError,
        FlagValueError,
        FlagVerificationError,
    )

    try:
        return _run(args)
    except FlagVerificationError as exc:
        return _fail(EXIT_UNVERIFIED, f"NOT VERIFIED (the change was written): {exc}")
    except FlagValueError as exc:
        return _fail(EXIT_USAGE, str(exc))
    except FlagBackendError as exc:
        return _fail(EXIT_BACKEND, str(exc))
    except FlagError as exc:
        return _fail(EXIT_BACKEND, str(exc))


def _load_config(args: argparse.Namespace) -> tuple[RolloutConfig | None, Settings]:
    """rollout.toml (or None) and the settings resolved with the plugin's precedence:
    command line > environment variable > rollout.toml's environment section."""
    from pytest_rollout.config import ConfigError, load_config
    from pytest_rollout.flags.base import FlagValueError

    path = args.config or os.environ.get(CONFIG_ENV)
    if path is None and Path("rollout.toml").is_file():
        path = "rollout.toml"
    cli = {
        "environment": args.environment,
        "flags": args.flags_uri,
        "audit_log": args.audit_log,
        "webhook": getattr(args, "webhook", None),
    }
    try:
        config = load_config(Path(path)) if path else None
        return config, resolve_settings(cli, config=config)
    except (ConfigError, SettingsError) as exc:
        raise FlagValueError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from pytest_rollout.flags.audit import UNKNOWN_ACTOR, default_actor, unknown_actor_warning
    from pytest_rollout.flags.base import FlagValueError, FlagVerificationError, parse_cli_value
    from pytest_rollout.flags.registry import open_controller

    config, settings = _load_config(args)
    environment = settings.environment
    uri = settings.flags
    if not uri:
        return _fail(
            EXIT_USAGE,
            f"no flag backend: pass --flags URI, set {URI_ENV}, or set flags in the "
            "environment's section of rollout.toml",
        )
    audit_log = settings.audit_log
    actor = args.actor or default_actor()
    run_id = f"cli-{socket.gethostname()}-{os.getpid()}"

    def open_for(phase: str | None) -> Any:
        return open_controller(
            uri,
            audit_log=Path(audit_log) if audit_log else None,
            actor=actor,
            environment=environment,
            phase=phase,
            run_id=run_id,
        )

    phase = args.phase
    controller = open_for(phase)
    command = args.flags_command
    if command == "get":
        states = controller.get_all()
        if args.name is not None:
            states = {args.name: controller.get(args.name)}
        _print_states(states, args.as_json)
        return EXIT_OK
    if command == "history":
        return _history(controller, args)

    if command == "set":
        changes: dict[str, bool | float] = {args.name: parse_cli_value(args.value)}
    elif command == "cohort":
        state = controller.get(args.name)
        if state.type != "cohort":
            raise FlagValueError(f"flag {args.name!r} is a {state.type} flag, not a cohort flag")
        percent = parse_cli_value(args.percent)
        if isinstance(percent, bool):
            raise FlagValueError(f"cohort percent must be a number 0..100, got {args.percent!r}")
        changes = {args.name: percent}
    elif args.to is not None:
        changes, undone_phase = _state_before(controller, args.to)
        if phase is None and undone_phase is not None:
            phase = undone_phase
            _note_phase(phase, f"the phase of change {args.to}")
    elif args.phase_state:
        if not args.phase or config is None:
            raise FlagValueError("--phase-state needs --phase PHASE and a rollout.toml (--config)")
        changes = dict(config.phase(args.phase, environment).rollback)
        if not changes:
            raise FlagValueError(
                f"{config.source}: phase {args.phase!r} has no [phases.{args.phase}.rollback]"
            )
    else:
        changes = _parse_state(args.state)
        if phase is None:
            phase = _latest_phase(controller)
            if phase is not None:
                _note_phase(phase, "the phase of the latest audited change")

    reason = (args.reason or "").strip()
    if not reason and not args.dry_run:
        return _fail(EXIT_USAGE, "--reason is required for changes (it goes into the audit log)")
    if phase != args.phase:
        controller = open_for(phase)  # the audit lines record the phase found above
    if actor == UNKNOWN_ACTOR and not args.dry_run:
        print(unknown_actor_warning("rollout flags"), file=sys.stderr)
    if command == "rollback":
        target = f" to before {args.to}" if args.to else ""
        if args.phase_state:
            target = f" to the {phase} rollback state"
        reason = f"rollback{target}: {reason or 'dry run'}"
    # Same precedence as the flags URI. Only a rollback that was written is announced: a dry run
    # changed nothing, and bad input or an unreachable backend never reached the flags.
    webhook = None
    if command == "rollback" and not args.dry_run:
        webhook = settings.webhook
    before = controller.snapshot()
    try:
        after = controller.set_many(changes, reason=reason or "dry run", dry_run=args.dry_run)
    except FlagVerificationError:
        # Written but not read back as asked: the people on the plan need to hear this most.
        if webhook:
            _notify(
                webhook,
                phase,
                reason,
                "rollback NOT VERIFIED",
                actor,
                environment,
                {name: before.get(name) for name in changes},
                None,
            )
        raise
    change_id = getattr(controller, "last_change_id", None)
    result = {
        "dry_run": args.dry_run,
        "change_id": None if args.dry_run else change_id,
        "changes": {
            name: {"before": before.get(name), "after": after[name].value} for name in changes
        },
        "verified": not args.dry_run,
    }
    if not args.as_json:
        for name, entry in result["changes"].items():
            print(f"{name}: {_format_value(entry['before'])} -> {_format_value(entry['after'])}")
        if args.dry_run:
            print("dry run: nothing written, nothing audited")
        else:
            print(f"verified by read-back; audit id {change_id}")
        sys.stdout.flush()  # the operator sees the rollback before waiting on the webhook
    if webhook:
        error = _notify(
            webhook,
            phase,
            reason,
            "rollback",
            actor,
            environment,
            {name: before.get(name) for name in changes},
            {name: after[name].value for name in changes},
        )
        result["notification"] = {"result": "failed" if error else "sent", "message": error or ""}
        if error is None and not args.as_json:
            print("webhook notified")
    if args.as_json:
        print(json.dumps(result, indent=2))
    return EXIT_OK


def _notify(
    url: str,
    phase: str | None,
    reason: str,
    action: str,
    who: str,
    environment: str | None,
    before: Mapping[str, Any],
    after: Mapping[str, Any] | None,
) -> str | None:
    """Post the rollback to the webhook; on failure warn on stderr and return the error.

    Best effort by design: the rollback is already written, so a broken webhook must neither
    hide that nor change the exit status.
    """
    from pytest_rollout.flags.notify import build_message, notify_webhook

    payload = build_message(
        phase=phase, reason=reason, action=action, who=who, environment=environment
    )
    if after is None:
        moves = ", ".join(f"{n} was {_format_value(v)}" for n, v in before.items())
    else:
        moves = ", ".join(
            f"{n} {_format_value(before.get(n))} -> {_format_value(v)}" for n, v in after.items()
        )
    payload["text"] += f". Flags: {moves}"
    payload["flags"] = {
        n: {"before": before.get(n), "after": None if after is None else after.get(n)}
        for n in before
    }
    error = notify_webhook(url, payload)
    if error:
        print(
            f"rollout flags: warning: rollback notification failed ({error}); tell the "
            "people on the communication plan yourself",
            file=sys.stderr,
        )
    return error


def _parse_state(items: list[str]) -> dict[str, bool | float]:
    from pytest_rollout.flags.base import FlagValueError, parse_cli_value

    state: dict[str, bool | float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise FlagValueError(f"--state expects NAME=VALUE, got {item!r}")
        state[name.strip()] = parse_cli_value(value)
    return state


def _state_before(controller: Any, change_id: str) -> tuple[dict[str, bool | float], str | None]:
    """The values before change ``change_id``, and the phase its audit lines recorded."""
    from pytest_rollout.flags.base import FlagValueError

    _warn_corrupt_lines(controller)  # a line lost there may be part of the change to undo
    for change in controller.history(read_backend=True):
        if change.id == change_id:
            if change.status in ("not-applied", "failed"):
                print(
                    f"note: change {change_id} is {change.status}; restoring its 'before' "
                    "values anyway",
                    file=sys.stderr,
                )
            return dict(change.before), _phase_of(change)
    raise FlagValueError(f"no change with audit id {change_id!r} in {controller.audit.path}")


def _phase_of(change: Any) -> str | None:
    phase = change.lines[0].get("phase") if change.lines else None
    return phase if isinstance(phase, str) and phase else None


def _latest_phase(controller: Any) -> str | None:
    """The phase of the newest audited change that names one: the phase being rolled back."""
    history = getattr(controller, "history", None)  # a third-party backend may keep none
    for change in reversed(history(read_backend=False) if history else []):
        phase = _phase_of(change)
        if phase is not None:
            return phase
    return None


def _note_phase(phase: str, source: str) -> None:
    print(
        f"rollout flags: note: recording phase {phase!r} ({source}); pass --phase to name another",
        file=sys.stderr,
    )


def _warn_corrupt_lines(controller: Any) -> int:
    """Report unusable audit log lines and a broken hash chain on stderr; count the problems."""
    from pytest_rollout.flags.audit_chain import chain_warning

    audit = getattr(controller, "audit", None)
    if audit is None:
        return 0
    broken = chain_warning(audit.path, "rollout flags")
    if broken:
        print(broken, file=sys.stderr)
    corrupt = audit.scan().corrupt
    for bad in corrupt:
        print(
            f"rollout flags: warning: audit log {str(audit.path)!r} line {bad.line} is "
            f"{bad.reason}, so whatever it recorded is missing from this history: {bad.text!r}. "
            "Repair or restore that line; 'history --strict' exits "
            f"{EXIT_AUDIT_CORRUPT} while it is there",
            file=sys.stderr,
        )
    return len(corrupt) + bool(broken)


def _history(controller: Any, args: argparse.Namespace) -> int:
    changes = controller.history(read_backend=True)
    status = EXIT_OK
    if _warn_corrupt_lines(controller) and args.strict:
        status = EXIT_AUDIT_CORRUPT
    if args.limit > 0:
        changes = changes[-args.limit :]
    if args.as_json:
        rows = [
            {
                "id": c.id,
                "time": c.time,
                "actor": c.actor,
                "reason": c.reason,
                "status": c.status,
                "message": c.message,
                "flags": c.flags,
            }
            for c in changes
        ]
        print(json.dumps(rows, indent=2))
        return status
    if not changes:
        print("no audited changes")
    for change in changes:
        moves = ", ".join(
            f"{name} {_format_value(v['before'])}->{_format_value(v['after'])}"
            for name, v in change.flags.items()
        )
        print(f"{change.id}  {change.time}  {change.actor:<12} {change.status:<11} {moves}")
        print(f"    reason: {change.reason}")
    return status
