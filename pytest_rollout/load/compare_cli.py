"""``rollout compare baseline.json``: the current window against a saved baseline, as a table.

Exit status: 0 when every criterion is proven within the margin, 1 when one regressed or could
not be decided (HOLD), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    from pytest_rollout.load.baseline_cli import add_prometheus_options

    p = subparsers.add_parser(
        "compare",
        help="compare the current window against a saved baseline (non-inferiority, 5 %%)",
        description="Capture the current window like the baseline was captured and judge p50/p99 "
        "latency, RSS and CPU as non-inferiority within --margin of the baseline.",
    )
    p.add_argument("baseline", type=Path, help="file written by `rollout baseline save`")
    add_prometheus_options(p)
    p.add_argument("--selector", default=None, help="override the baseline's process selector")
    p.add_argument("--latency-selector", default=None, help="override the histogram selector")
    p.add_argument("--margin", type=float, default=0.05, help="allowed regression (0.05 = 5 %%)")
    p.add_argument("--json", type=Path, default=None, help="also write the comparison as JSON")


def run(args: argparse.Namespace) -> int:
    from pytest_rollout.durations import parse_duration
    from pytest_rollout.load.baseline import Snapshot, capture, compare, current_spec
    from pytest_rollout.load.baseline_cli import prom_query
    from pytest_rollout.outcomes import Inconclusive

    try:
        base = Snapshot.load(args.baseline)
        prom, _url = prom_query(args.prometheus, args.at)
        window = parse_duration(args.window) if args.window else None
        if not 0 < args.margin < 1:
            raise ValueError(f"--margin must be between 0 and 1, got {args.margin}")
    except ValueError as exc:
        print(f"rollout compare: {exc}", file=sys.stderr)
        return 2
    spec = current_spec(base.spec, window, args.selector, args.latency_selector)
    try:
        current = capture(prom, spec)
    except Inconclusive as exc:
        print(f"rollout compare: INCONCLUSIVE: cannot read the current window: {exc.reason}")
        return 1
    result = compare(base, current, margin=args.margin)
    print(result.table())
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
    return 0 if result.outcome == "pass" else 1
