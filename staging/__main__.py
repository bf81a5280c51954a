"""``python -m staging up|status|down|env|seed|traffic|backup|restore|verify-backup``: operate the
local staging stack."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from staging.stack import DEFAULT_WORKDIR, NoStackRecorded, Stack, StackError


def _engram_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    return Stack.load(args.workdir).engram_url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m staging", description=__doc__)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"stack directory holding state.json, data, logs (default {DEFAULT_WORKDIR})",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start service + Prometheus + flag file, wait for a scrape")
    up.add_argument("--flags", type=Path, help="use this flag file instead of a fresh one")
    up.add_argument(
        "--formation-interval",
        type=float,
        default=10.0,
        help="seconds between concept formation cycles (default 10)",
    )
    up.add_argument("--semantic-timeout-ms", type=float, default=200.0)
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a scrape")
    up.add_argument(
        "--no-twin",
        dest="twin",
        action="store_false",
        help="do not start the baseline replica (phase 1's overhead gates then stay inconclusive)",
    )

    sub.add_parser("status", help="liveness and answers of the recorded processes (JSON)")
    sub.add_parser("down", help="stop exactly the recorded PIDs")

    env = sub.add_parser("env", help="print export lines for the gates")
    env.add_argument("--flag-backend", choices=("http", "file"), default="http")

    seed = sub.add_parser("seed", help="load synthetic episodes over HTTP")
    seed.add_argument("--episodes", type=int, required=True)
    seed.add_argument("--spaces", type=int, default=50)
    seed.add_argument("--prefix", default="space")
    seed.add_argument(
        "--skew",
        type=float,
        default=1.1,
        help="Zipf exponent of episodes per space (0 = uniform; default 1.1)",
    )
    seed.add_argument("--url", help="service URL (default: from the state file)")

    traffic = sub.add_parser("traffic", help="bounded recall/remember traffic (threads)")
    traffic.add_argument("--duration", default="30s", help="e.g. 30s, 2m")
    traffic.add_argument("--rps", type=float, default=50.0)
    traffic.add_argument("--spaces", type=int, default=200)
    traffic.add_argument(
        "--skew",
        type=float,
        default=1.1,
        help="Zipf exponent of space activity (0 = uniform; default 1.1)",
    )
    traffic.add_argument("--write-ratio", type=float, default=0.07)
    traffic.add_argument("--threads", type=int, default=8)
    traffic.add_argument("--prefix", default="space")
    traffic.add_argument("--url", help="service URL (default: from the state file)")
    traffic.add_argument(
        "--mirror",
        action="append",
        metavar="URL",
        help="also send every request here (repeatable); default without --url: the stack's "
        "baseline replica",
    )
    traffic.add_argument(
        "--no-mirror", action="store_true", help="send to the service only, not its twin"
    )

    backup = sub.add_parser("backup", help="online backup of every space's database + manifest")
    backup.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="new (or empty) directory"
    )

    restore = sub.add_parser(
        "restore", help="put a backup back, restart the service, check integrity"
    )
    restore.add_argument(
        "--from", dest="source", type=Path, required=True, metavar="DIR", help="backup dir"
    )
    restore.add_argument(
        "--stop", action="store_true", help="stop the running service first (else refuse)"
    )
    restore.add_argument(
        "--space",
        dest="spaces",
        action="append",
        metavar="NAME",
        help="restore only this space (repeatable); default: all, dropping newer spaces",
    )

    verify = sub.add_parser("verify-backup", help="check a backup's files against its manifest")
    verify.add_argument(
        "--from", dest="source", type=Path, required=True, metavar="DIR", help="backup dir"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except StackError as exc:
        print(f"staging: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "up":
        stack = Stack.up(
            args.workdir,
            flags_file=args.flags,
            formation_interval_s=args.formation_interval,
            semantic_timeout_ms=args.semantic_timeout_ms,
            timeout_s=args.timeout,
            twin=args.twin,
        )
        print(f"engram     {stack.engram_url}  (pid {stack.state.service_pid})")
        if stack.baseline_url:
            print(f"baseline   {stack.baseline_url}  (pid {stack.state.baseline_pid})")
        print(f"prometheus {stack.prometheus_url}  (pid {stack.state.prometheus_pid})")
        print(f"flags      {stack.flags_path}")
        print(f"state      {stack.state_path}")
        return 0
    if args.command == "status":
        status = Stack.load(args.workdir).status()
        print(json.dumps(status, indent=2))
        return 0 if status["service"]["alive"] and status["prometheus"]["alive"] else 1
    if args.command == "down":
        try:
            stack = Stack.load(args.workdir)
        except NoStackRecorded as exc:
            # Idempotent: the wanted end state (nothing of ours running) already holds.
            print(f"nothing was running: {exc}")
            return 0
        recorded = {"service": stack.state.service_pid, "prometheus": stack.state.prometheus_pid}
        if stack.state.baseline_port:
            recorded["baseline"] = stack.state.baseline_pid
        stopped = dict(stack.down())
        for name, pid in recorded.items():
            # Not running: exited, or its PID now belongs to another process; either way untouched.
            print(
                f"stopped {name} pid {pid}" if name in stopped else f"{name} pid {pid}: not running"
            )
        print(f"staging stack down; removed {stack.state_path}")
        return 0
    if args.command == "env":
        stack = Stack.load(args.workdir)
        for key, value in stack.env(flag_backend=args.flag_backend).items():
            if key == "ROLLOUT_FLAGS_TOKEN":
                # A reference, not the token: credentials never appear in output (terminals,
                # CI logs); `eval "$(python -m staging env)"` reads the 0600 file instead.
                path = shlex.quote(str(stack.write_token_file()))
                print(f'export {key}="$(cat -- {path})"')
            else:
                print(f"export {key}={shlex.quote(value)}")
        return 0
    if args.command == "seed":
        from staging.seed import seed

        targets = [_engram_url(args)]
        if not args.url and Stack.load(args.workdir).baseline_url:
            # The same seeded episodes into the twin: both replicas start from the same data.
            targets.append(Stack.load(args.workdir).baseline_url)
        for target in targets:
            result = seed(
                target,
                episodes=args.episodes,
                spaces=args.spaces,
                prefix=args.prefix,
                skew=args.skew,
            )
        print(json.dumps({"episodes": result.episodes, "spaces": len(result.per_space)}))
        return 0
    if args.command == "traffic":
        from staging.traffic import drive, parse_duration

        url, duration_s = _engram_url(args), parse_duration(args.duration)
        mirrors = [] if args.no_mirror else [m.rstrip("/") for m in args.mirror or []]
        if not args.url and not args.no_mirror and not args.mirror:
            # The twin gets every request the service gets: same data growth, same load.
            twin = Stack.load(args.workdir).baseline_url
            mirrors = [twin] if twin else []
        stop = threading.Event()
        stopped_by: list[str] = []

        def stop_early(signum: int, _frame: object) -> None:
            stopped_by.append(signal.Signals(signum).name)
            stop.set()
            # A second signal is the operator insisting: end at once, without the summary.
            for handled in (signal.SIGTERM, signal.SIGINT):
                if signal.getsignal(handled) is stop_early:
                    signal.signal(handled, signal.SIG_DFL)

        for signum in (signal.SIGTERM, signal.SIGINT):
            # An ignored signal stays ignored: a shell script's `&` job must not stop on Ctrl-C.
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, stop_early)
        mirrored = f" (mirrored to {', '.join(mirrors)})" if mirrors else ""
        print(
            f"traffic: {args.rps:g} req/s to {url}{mirrored} for {duration_s:g}s; SIGTERM or "
            "Ctrl-C stops "
            "it early and still prints the summary",
            file=sys.stderr,
            flush=True,
        )
        summary = drive(
            url,
            duration_s=duration_s,
            rps=args.rps,
            spaces=args.spaces,
            write_ratio=args.write_ratio,
            threads=args.threads,
            prefix=args.prefix,
            skew=args.skew,
            stop=stop,
            mirror_urls=mirrors,
        )
        summary.stopped_by = stopped_by[0] if stopped_by else None
        print(json.dumps(summary.to_json()), flush=True)
        # Failures may be a chaos drill doing its job, and a signal is the documented way to end
        # a background run: only "nothing got through" is an error.
        return 0 if summary.requests > summary.failures else 1
    if args.command in ("backup", "restore", "verify-backup"):
        return _data_command(args)
    raise AssertionError(args.command)  # argparse enforces the choices


def _data_command(args: argparse.Namespace) -> int:
    """Exit 0 done and verified; 1 failed or mismatch; 2 restore refused, nothing changed."""
    # Imported here: it pulls in the service's modules, which the other commands do not need.
    from staging import backup

    try:
        if args.command == "backup":
            manifest = backup.backup(args.workdir, args.out)
            total = manifest["integrity"]
            print(
                f"backup {args.out.resolve()}: {len(manifest['files'])} spaces, "
                f"{total['episodes']} episodes, checksum {total['checksum']}"
            )
            if manifest["source"]["engram_url"] is None:
                print("no stack recorded in the workdir: backed up the data dir offline")
            elif manifest["service_integrity"] is None:
                print("service not reachable: no live integrity answer recorded")
            elif manifest["service_differs"]:
                print(
                    "written during the backup (the backup holds what it copied): "
                    + ", ".join(manifest["service_differs"])
                )
            else:
                print("service integrity at backup time: identical to the backup")
            return 0
        if args.command == "verify-backup":
            manifest, problems = backup.verify_backup(args.source)
            if problems:
                print(f"backup {args.source.resolve()}: {len(problems)} problem(s)")
                for problem in problems:
                    print(f"  {problem}")
                return 1
            print(
                f"backup {args.source.resolve()}: OK, {len(manifest['files'])} spaces, "
                f"{manifest['integrity']['episodes']} episodes, "
                f"checksum {manifest['integrity']['checksum']}"
            )
            return 0
        result = backup.restore(args.workdir, args.source, stop=args.stop, spaces=args.spaces)
    except backup.RestoreRefused as exc:
        print(f"staging: restore refused: {exc}", file=sys.stderr)
        return 2
    except backup.BackupError as exc:
        print(f"staging: {exc}", file=sys.stderr)
        return 1
    if result.replaced_dir is not None:
        print(f"replaced files kept in {result.replaced_dir}")
    if result.discarded is None:
        print("episodes discarded: unknown (no integrity answer before the restore)")
    else:
        lost = {name: n for name, n in result.discarded.items() if n}
        print(
            f"episodes written after the backup, now discarded: {sum(lost.values())}"
            + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(lost.items())) + ")" if lost else "")
        )
    if result.service_pid is None:
        print(
            "no stack recorded in the workdir: checked the restored files offline; start the "
            "service with `python -m staging up --flags FILE`"
        )
    if not result.ok:
        print(
            f"integrity MISMATCH after restore ({len(result.mismatches)} spaces):", file=sys.stderr
        )
        for line in result.mismatches:
            print(f"  {line}", file=sys.stderr)
        return 1
    answer = result.answer
    print(
        f"integrity OK: the {len(result.spaces)} restored space(s) match the manifest; now "
        f"{len(answer['spaces'])} spaces, {answer['episodes']} episodes, "
        f"checksum {answer['checksum']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
