"""``rollout watch PHASE``: re-run a phase's gates every interval until GO, ABORT or the end.

Exit status: 0 GO (and promoted, with --promote-to); 10 ABORT (rolled back and verified by the
gate run, with --on-abort rollback); 1 no decision (the phase's duration ended on HOLD,
--max-looks reached, or SIGINT/SIGTERM); 2 bad input; 3 GO but the promotion failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_rollout.settings import ENV_CONFIG, OPT_CONFIG, OPT_ENV, OPT_FLAGS, OPT_ON_ABORT

EXIT_USAGE = 2
DEFAULT_EVERY_S = 600.0


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gates", type=Path, default=Path("gates"), help="gates directory")
    parser.add_argument(
        "--every",
        metavar="DURATION",
        help="interval between looks (default: the phase's look_every in rollout.toml, else 10m)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/watch"), help="looks/<n>/ and timeline.jsonl go here"
    )
    parser.add_argument(
        "--on-abort",
        choices=("none", "rollback"),
        default="none",
        help=f"on ABORT, the gate run rolls back and verifies it ({OPT_ON_ABORT}=rollback)",
    )
    parser.add_argument(
        "--promote-to", metavar="NEXT_PHASE", help="on GO, set NEXT_PHASE's flags (verified)"
    )
    parser.add_argument(
        "--max-looks", type=int, metavar="N", help="stop after N looks (exit 1 if undecided)"
    )
    parser.add_argument("--config", metavar="PATH", help=f"rollout.toml (env {ENV_CONFIG})")
    parser.add_argument("--env", dest="environment", help="environment profile (env ROLLOUT_ENV)")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="re-evaluate a phase's gates every interval until GO or ABORT",
        description="Run `pytest GATES -m PHASE` every interval; each look's record and report "
        "go to OUT/looks/<n>/, a line per look to OUT/timeline.jsonl. Arguments after -- go "
        "to every pytest run.",
        epilog="Exit status: 0 GO, 10 ABORT, 1 no decision (duration over, --max-looks, "
        "signal), 2 bad input, 3 GO but the promotion failed. Guide: docs/watch.md",
    )
    parser.add_argument("phase", metavar="PHASE", help="phase marker, e.g. phase2")
    _options(parser)
    # Everything after PHASE; split at "--" in run() (argparse 3.11 drops "--" in sub-parsers).
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def _split(args: argparse.Namespace) -> list[str]:
    """Parse the watch options given after PHASE; return the pytest arguments after ``--``."""
    rest = list(args.rest)
    cut = rest.index("--") if "--" in rest else len(rest)
    parser = argparse.ArgumentParser(prog=f"rollout watch {args.phase}")
    _options(parser)
    parser.parse_args(rest[:cut], namespace=args)
    return rest[cut + 1 :]


def _option_value(pytest_args: Sequence[str], option: str) -> str | None:
    """The value of ``option`` among the pytest arguments (``--opt V`` or ``--opt=V``)."""
    value = None
    for index, arg in enumerate(pytest_args):
        if arg == option and index + 1 < len(pytest_args):
            value = pytest_args[index + 1]
        elif arg.startswith(option + "="):
            value = arg.split("=", 1)[1]
    return value


def _fail(message: str) -> int:
    print(f"rollout watch: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    from pytest_rollout.config import ConfigError, load_config
    from pytest_rollout.durations import parse_duration
    from pytest_rollout.settings import SettingsError, resolve_settings
    from pytest_rollout.watch.loop import Watcher, WatchPlan

    pytest_args = _split(args)
    config_path = (
        args.config or _option_value(pytest_args, OPT_CONFIG) or os.environ.get(ENV_CONFIG)
    )
    if config_path is None and (args.gates / "rollout.toml").is_file():
        config_path = str(args.gates / "rollout.toml")
    if not args.gates.exists():
        return _fail(f"--gates {args.gates} does not exist; point it at the gates directory")
    environment = args.environment or _option_value(pytest_args, OPT_ENV)
    cli = {"environment": environment, "flags": _option_value(pytest_args, OPT_FLAGS)}
    try:
        config = load_config(Path(config_path)) if config_path else None
        settings = resolve_settings(cli, config=config)
    except (ConfigError, SettingsError, OSError) as exc:
        return _fail(str(exc))
    if config is None:
        return _fail(
            f"no rollout.toml: pass --config PATH, set {ENV_CONFIG}, or put one in --gates"
        )
    if args.phase not in config.phases:
        return _fail(
            f"phase {args.phase!r} is not in {config.source} (known: {', '.join(config.phases)})"
        )
    phase = config.phase(args.phase, settings.environment)
    try:
        every_s = (
            parse_duration(args.every) if args.every else phase.look_every_s or DEFAULT_EVERY_S
        )
    except ValueError as exc:
        return _fail(f"--every: {exc}")
    if args.max_looks is not None and args.max_looks < 1:
        return _fail(f"--max-looks must be 1 or more, got {args.max_looks}")
    promote_to = None
    if args.promote_to:
        promote_to, problem = _promote_target(args.promote_to, config, settings)
        if promote_to is None:
            return _fail(problem)
    extra = []
    if args.on_abort == "rollback":
        extra.append(f"{OPT_ON_ABORT}=rollback")
    if args.environment:
        extra.append(f"{OPT_ENV}={args.environment}")
    if args.config:
        extra.append(f"{OPT_CONFIG}={args.config}")
    plan = WatchPlan(
        phase=args.phase,
        gates=args.gates,
        out=args.out,
        every_s=every_s,
        pytest_args=[*extra, *pytest_args],
        duration_s=phase.duration_s,
        max_looks=args.max_looks,
        promote_to=promote_to,
        audit_log=Path(settings.audit_log) if settings.audit_log else None,
    )
    return Watcher(plan).run()


def _promote_target(next_phase: str, config: Any, settings: Any) -> tuple[Any, str]:
    from pytest_rollout.watch.loop import PromoteTo

    if next_phase not in config.phases:
        known = ", ".join(config.phases)
        return (
            None,
            f"--promote-to {next_phase!r} is not a phase in {config.source} (known: {known})",
        )
    flags = dict(config.phase(next_phase, settings.environment).flags)
    if not flags:
        return (
            None,
            f"--promote-to {next_phase}: {config.source} has no [phases.{next_phase}.flags]",
        )
    if not settings.flags:
        return None, (
            f"--promote-to {next_phase} needs a flag backend: pass -- {OPT_FLAGS}=URI, set "
            "ROLLOUT_FLAGS, or set flags in the environment's section of rollout.toml"
        )
    audit = Path(settings.audit_log) if settings.audit_log else None
    return PromoteTo(next_phase, flags, settings.flags, audit, settings.environment), ""
