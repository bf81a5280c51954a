"""``rollout baseline save``: capture a performance baseline window from Prometheus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_rollout.metrics.prometheus import PromQuery


def add_prometheus_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``baseline save`` and ``compare``."""
    p.add_argument(
        "--prometheus", default=None, help="PromQL HTTP API URL (default: $ROLLOUT_PROMETHEUS_URL)"
    )
    p.add_argument(
        "--at", default=None, help="end of the window: RFC 3339 or unix seconds (default: now)"
    )
    p.add_argument("--window", default=None, help="window length, e.g. 1h (default: 1h for "
                   "save, the baseline's for compare)")  # fmt: skip


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("baseline", help="capture a performance baseline from Prometheus")
    sub = p.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    save = sub.add_parser(
        "save",
        help="save latency histogram, request rate, RSS and CPU of a window to a JSON file",
        description="Capture the window ending at --at: latency histogram buckets (increase over "
        "the window), request rate, and RSS/CPU series of the selected processes.",
    )
    save.add_argument("--out", type=Path, required=True)
    add_prometheus_options(save)
    save.add_argument(
        "--selector", default='{job="engram"}', help='the service\'s series, e.g. {job="engram"}'
    )
    save.add_argument(
        "--latency-metric",
        default="engram_recall_duration_seconds",
        help="histogram base name (without _bucket)",
    )
    save.add_argument(
        "--latency-selector", default=None, help="selector for the histogram (default: --selector)"
    )
    save.add_argument("--step", default=None, help="RSS/CPU resolution (default: window/120)")


def prom_query(url: str | None, at: str | None) -> tuple[PromQuery, str]:
    """A fail-closed query client pinned at ``at`` (credentials from the environment)."""
    import time

    from pytest_rollout.gate import GateRecord
    from pytest_rollout.instants import parse_instant
    from pytest_rollout.metrics.prometheus import PrometheusSource, PromQuery, PromSettings
    from pytest_rollout.settings import resolve_settings

    chosen = resolve_settings({"prometheus_url": url}).prometheus_url  # CLI > env
    if not chosen:
        raise ValueError("give --prometheus URL or set ROLLOUT_PROMETHEUS_URL")
    instant = parse_instant(at) if at else time.time()
    settings = PromSettings.from_env(chosen, timeout_s=30.0, retries=1, max_staleness_s=300.0)
    return PromQuery(PrometheusSource(settings, instant), GateRecord(nodeid="rollout-cli")), chosen


def run(args: argparse.Namespace) -> int:
    from pytest_rollout.durations import parse_duration
    from pytest_rollout.load.baseline import BaselineSpec, capture
    from pytest_rollout.outcomes import Inconclusive

    try:
        prom, url = prom_query(args.prometheus, args.at)
        spec = BaselineSpec(
            selector=args.selector,
            latency_metric=args.latency_metric,
            latency_selector=args.latency_selector,
            window_s=parse_duration(args.window or "1h"),
            step_s=parse_duration(args.step) if args.step else None,
        )
    except ValueError as exc:
        print(f"rollout baseline: {exc}", file=sys.stderr)
        return 2
    try:
        snapshot = capture(prom, spec)
    except Inconclusive as exc:
        print(f"rollout baseline: cannot capture a baseline: {exc.reason}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save(args.out)
    from pytest_rollout.load.baseline import format_value

    p50 = _quantile(snapshot, 0.5)
    p99 = _quantile(snapshot, 0.99)
    rss = sum(v for _, v in snapshot.rss) / len(snapshot.rss)
    print(
        f"baseline saved to {args.out}: {snapshot.requests:.0f} requests "
        f"({snapshot.rps:.1f} req/s), p50 {format_value(p50, 's')}, p99 {format_value(p99, 's')}, "
        f"RSS {format_value(rss, 'B')} from {url}"
    )
    return 0


def _quantile(snapshot: Any, q: float) -> float:
    from pytest_rollout.stats import quantile_estimate

    return float(quantile_estimate(snapshot.bounds, snapshot.cumulative, q).estimate)
