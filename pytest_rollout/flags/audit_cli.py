"""``rollout audit verify [PATH]``: check the flag audit log's hash chain.

Exit status: 0 the chain is intact (an old log's unhashed leading lines are accepted and
reported); 1 the chain is broken (the first broken line is reported with its number);
2 no audit log could be found (bad config, no PATH and none configured).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pytest_rollout.settings import ENV_CONFIG, ENV_FLAGS_AUDIT_LOG

EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="check the flag audit log's hash chain",
        description="Check the hash chain of the flag audit log: every line carries the sha256 "
        "of the line before, so an edited, removed, reordered or inserted line breaks it.",
        epilog="Exit status: 0 intact, 1 broken, 2 no audit log found. Guide: docs/flags.md",
    )
    actions = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = actions.add_parser("verify", help="verify the chain; report the first broken line")
    verify.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help=f"audit log (default: env {ENV_FLAGS_AUDIT_LOG}, else audit_log of the environment "
        f"in rollout.toml ({ENV_CONFIG} or --config), else the flag backend's default log)",
    )
    verify.add_argument("--config", metavar="PATH", help="rollout.toml")
    verify.add_argument("--env", dest="environment", help="environment (env ROLLOUT_ENV)")
    verify.add_argument("--flags", dest="flags_uri", metavar="URI", help="flag backend URI")
    verify.add_argument("--json", dest="as_json", action="store_true", help="JSON output")


def run(args: argparse.Namespace) -> int:
    from pytest_rollout.flags.audit_chain import verify_chain

    path = Path(args.path) if args.path else _configured(args)
    if path is None:
        print(
            "rollout audit: error: no audit log: pass PATH, set "
            f"{ENV_FLAGS_AUDIT_LOG}, or set audit_log in the environment of rollout.toml",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not path.exists():
        print(f"rollout audit: error: audit log {path} does not exist", file=sys.stderr)
        return EXIT_USAGE
    report = verify_chain(path)
    if args.as_json:
        print(json.dumps({"path": str(path), **asdict(report)}, indent=2))
    else:
        print(report.describe(path), file=sys.stdout if report.ok else sys.stderr)
    return EXIT_OK if report.ok else EXIT_BROKEN


def _configured(args: argparse.Namespace) -> Path | None:
    import os

    from pytest_rollout.config import ConfigError, load_config
    from pytest_rollout.flags.audit_path import audit_log_path
    from pytest_rollout.settings import SettingsError, resolve_settings

    config_path = args.config or os.environ.get(ENV_CONFIG)
    if config_path is None and Path("rollout.toml").is_file():
        config_path = "rollout.toml"
    cli = {"environment": args.environment, "flags": args.flags_uri}
    try:
        config = load_config(Path(config_path)) if config_path else None
        return audit_log_path(resolve_settings(cli, config=config))
    except (ConfigError, SettingsError) as exc:
        print(f"rollout audit: error: {exc}", file=sys.stderr)
        return None
