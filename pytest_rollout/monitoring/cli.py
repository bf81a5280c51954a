"""``rollout render monitoring --config rollout.toml --out monitoring/ [--env NAME] [--check]``.

``rollout render argo|flagger`` (controller manifests) live in pytest_rollout.render_controllers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pytest_rollout.config import ConfigError, load_config
from pytest_rollout.render_controllers import add_parsers as add_controller_parsers
from pytest_rollout.render_controllers import run as run_controllers


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render artifacts from rollout.toml",
        description="Render artifacts from rollout.toml, the one source of truth.",
    )
    what = parser.add_subparsers(dest="render_what", metavar="WHAT", required=True)
    mon = what.add_parser(
        "monitoring",
        help="Prometheus rules + promtool tests and Grafana dashboards",
        description="Write prometheus/*.rules.yml, prometheus/*.test.yml and grafana/*.json "
        "under --out, rendered from the thresholds, [slo] and [monitoring] of --config.",
    )
    mon.add_argument("--config", type=Path, required=True, help="rollout.toml")
    mon.add_argument("--out", type=Path, required=True, help="output directory (monitoring/)")
    mon.add_argument(
        "--env",
        default=None,
        metavar="NAME",
        help="render with this environment's phase windows, sample minimums and "
        "[monitoring.environments.NAME] (e.g. ci); default: the phases as written",
    )
    mon.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files under --out differ from a render",
    )
    add_controller_parsers(what)


def run(args: argparse.Namespace) -> int:
    if args.render_what in ("argo", "flagger"):
        return run_controllers(args)
    from pytest_rollout.monitoring.render import diff, render, write
    from pytest_rollout.monitoring.settings import load_settings

    try:
        settings = load_settings(load_config(args.config), args.env)
        files = render(settings, args.config.as_posix())
    except ConfigError as exc:
        print(f"rollout render: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = diff(files, args.out)
        for rel in stale:
            print(f"{args.out / rel}: differs from a fresh render", file=sys.stderr)
        if stale:
            print(
                f"run: rollout render monitoring --config {args.config} --out {args.out}"
                + (f" --env {args.env}" if args.env else ""),
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path in write(files, args.out):
        print(path)
    return 0
