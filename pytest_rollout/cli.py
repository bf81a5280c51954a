"""The ``rollout`` console script.

Each subcommand lives in the module that owns its feature and exposes two functions:
``add_parser(subparsers) -> None`` and ``run(args) -> int``.  This module only dispatches, and
imports a subcommand's module when that subcommand runs, so ``rollout --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pytest_rollout import __version__

# subcommand -> module providing add_parser()/run(); order is the order shown in --help.
SUBCOMMANDS: dict[str, str] = {
    "flags": "pytest_rollout.flags.cli",
    "soak": "pytest_rollout.load.cli",
    "baseline": "pytest_rollout.load.baseline_cli",
    "compare": "pytest_rollout.load.compare_cli",
    "render": "pytest_rollout.monitoring.cli",
    "verify": "pytest_rollout.report.verify",
    "approve": "pytest_rollout.signoffs_cli",
    "approvals": "pytest_rollout.approvals_cli",
    "audit": "pytest_rollout.flags.audit_cli",
    "campaign": "pytest_rollout.campaign.cli",
    "watch": "pytest_rollout.watch.cli",
    "serve": "pytest_rollout.serve.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollout",
        description="Operate a progressive rollout: flags, soak runs, baselines, rendered "
        "monitoring and controller manifests, decision-record verification, sign-offs and the "
        "audit chain, the campaign report, and gates that run themselves (`watch` on a "
        "schedule, `serve` for Argo Rollouts, Flagger and Alertmanager). "
        "Gates themselves run with `pytest gates -m PHASE`.",
    )
    parser.add_argument("--version", action="version", version=f"pytest-rollout {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS.values():
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[args.command])
    result: int = module.run(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
