"""``rollout soak``: a soak run from the command line, with a verdict and a results JSON.

Exit status: 0 when every soak criterion passed (no restart, failures within limit, RSS growth
under the limit), 1 when one failed or could not be decided (HOLD), 3 when the load generator
itself failed (with ``--join``: also when no master answered within ``--expect-workers-timeout``).
``--join HOST:PORT`` runs only Locust workers for a master on another machine.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_rollout.load.result import SoakResult


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "soak",
        help="run a Locust soak against a target and judge memory growth and crashes",
        description="Run Locust headless (in subprocesses) against --target, sample the target's "
        "RSS/CPU, exclude the warm-up, detect restarts, and judge the RSS slope.",
    )
    p.add_argument("--target", help="base URL the Locust users hit, e.g. http://10.0.0.7:8080")
    p.add_argument("--locustfile", required=True, type=Path)
    p.add_argument("--users", type=int, default=10)
    p.add_argument("--spawn-rate", type=float, default=None, help="users/s (default: users/10)")
    p.add_argument("--duration", default="10m", help="total run time incl. warm-up, e.g. 24h")
    p.add_argument("--warmup", default="0s", help="excluded from all figures, e.g. 15m")
    p.add_argument("--workers", type=int, default=0, help="local Locust workers (0: one process)")
    dist = p.add_argument_group("several machines")
    dist.add_argument(
        "--remote-workers",
        type=int,
        default=0,
        help="workers on other machines the master waits for",
    )
    dist.add_argument(
        "--master-bind",
        default="127.0.0.1",
        help="interface the master listens on (0.0.0.0 for remote workers)",
    )
    dist.add_argument(
        "--master-port",
        type=int,
        default=None,
        help="default: 5557 with remote workers, else a free port",
    )
    dist.add_argument(
        "--join",
        metavar="HOST[:PORT]",
        help="run only --workers (default 1) workers for a master elsewhere",
    )
    dist.add_argument(
        "--expect-workers-timeout",
        default="2m",
        help="how long the master waits for its workers, and --join workers for the master "
        "(then exit 3)",
    )
    src = p.add_argument_group("where the target's RSS/CPU come from (pick one)")
    src.add_argument("--target-pid", type=int, help="a local process, read through /proc")
    src.add_argument("--target-metrics", help="the target's Prometheus text endpoint URL")
    src.add_argument("--prometheus", help="PromQL HTTP API URL (with --selector)")
    src.add_argument("--selector", help='series selector for one process, e.g. {job="engram"}')
    p.add_argument("--interval", default="10s", help="latency/RPS series resolution")
    p.add_argument("--sample-interval", default="15s", help="RSS/CPU sampling period")
    p.add_argument("--progress-every", default="1m", help="progress line period on stderr")
    p.add_argument("--leak-limit", type=_leak_limit, default=1.0, help="max RSS growth, %%/h")
    p.add_argument(
        "--max-failure-ratio",
        type=float,
        default=0.001,
        help="max share of failed requests (0.001 = 0.1 %%)",
    )
    p.add_argument("--out", type=Path, default=Path("soak-results.json"))
    p.add_argument("--workdir", type=Path, default=None, help="Locust logs (default: beside --out)")


def _leak_limit(text: str) -> float:
    """A positive %/h: checked here, not after a 24 h soak (the verdict needs it above 0)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be the largest acceptable RSS growth in %/h, above 0; got {text!r}"
        )
    return value


def _seconds(text: str, *, allow_zero: bool = False) -> float:
    from pytest_rollout.durations import parse_duration

    if allow_zero and text.strip() in ("0", "0s"):
        return 0.0
    return parse_duration(text)


def run(args: argparse.Namespace) -> int:
    from pytest_rollout.load.runner import SoakError, SoakRunner, run_workers
    from pytest_rollout.load.soak_config import SoakConfig

    workdir = args.workdir or (args.out.parent / (args.out.stem + "-logs"))
    if args.join:
        host, _, port = args.join.partition(":")
        try:
            timeout_s = _seconds(args.expect_workers_timeout)
        except ValueError as exc:
            print(f"rollout soak: --expect-workers-timeout: {exc}", file=sys.stderr)
            return 2
        return run_workers(
            args.locustfile, host, int(port or 5557), max(args.workers, 1), workdir, timeout_s
        )
    if not args.target:
        print("rollout soak: --target is required (unless --join)", file=sys.stderr)
        return 2
    try:
        config = SoakConfig(
            target=args.target,
            locustfile=args.locustfile,
            users=args.users,
            spawn_rate=args.spawn_rate or max(args.users / 10.0, 1.0),
            duration_s=_seconds(args.duration),
            warmup_s=_seconds(args.warmup, allow_zero=True),
            workers=args.workers,
            remote_workers=args.remote_workers,
            master_bind_host=args.master_bind,
            master_port=args.master_port or (5557 if args.remote_workers else None),
            expect_workers_timeout_s=_seconds(args.expect_workers_timeout),
            interval_s=_seconds(args.interval),
            sample_interval_s=_seconds(args.sample_interval),
            progress_every_s=_seconds(args.progress_every),
            target_pid=args.target_pid,
            target_metrics_url=args.target_metrics,
            prometheus_url=args.prometheus,
            prometheus_selector=args.selector,
        )
    except ValueError as exc:
        print(f"rollout soak: {exc}", file=sys.stderr)
        return 2
    try:
        result = SoakRunner(workdir).run(config, out=args.out)
    except SoakError as exc:
        print(f"rollout soak: {exc}", file=sys.stderr)
        return 3
    print(f"results: {args.out}")
    return verdict_lines(result, args.leak_limit, args.max_failure_ratio)


def verdict_lines(result: SoakResult, leak_limit: float, max_failure_ratio: float) -> int:
    """Print one line per criterion; 0 when all passed, 1 otherwise."""
    from pytest_rollout.outcomes import Inconclusive

    worst = 0
    checks: tuple[tuple[str, Callable[[], str | None]], ...] = (
        ("no crash", lambda: result.check_no_crash(max_failure_ratio=max_failure_ratio)),
        ("RSS growth", lambda: result.check_no_leak(limit_pct_per_hour=leak_limit).reason),
    )
    summary = result.summary()
    for name, check in checks:
        try:
            detail = check() or (
                f"{len(result.restarts)} restarts, {summary['failures']} of "
                f"{summary['requests']} requests failed"
            )
            print(f"  pass          {name}: {detail}")
        except AssertionError as exc:
            print(f"  FAIL          {name}: {exc}")
            worst = 1
        except Inconclusive as exc:
            print(f"  INCONCLUSIVE  {name}: {exc.reason}")
            worst = 1
    return worst
