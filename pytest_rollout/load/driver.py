"""The Locust side of a soak run; executed only as ``python -m pytest_rollout.load.driver``.

``import locust`` monkey-patches the whole interpreter with gevent, which breaks pytest-xdist and
urllib3 in the process that does it.  So this module is only ever run in a child process, and
nothing else in the package imports it.  It speaks to its parent (``runner.py``) through JSON lines
on stdout:

- ``{"event": "ready", "role": ..., "pid": ...}``        once the runner exists
- ``{"event": "started", "t": ..., "workers": N}``      when users begin to spawn
- ``{"event": "interval", "t0", "t1", "requests", "failures", "rt": {ms: count}, "users",
  "workers"}`` every ``--interval`` seconds: the *delta* of Locust's cumulative totals, so each
  interval's percentiles cover that interval only (Locust's own "current" ones are a 10 s mix)
- ``{"event": "errors", "errors": [{"name", "method", "error", "occurrences"}]}``
- ``{"event": "done", "reason": ...}``

Roles: ``local`` (one process), ``master`` (aggregates workers; any ``locust --worker`` with the
same locustfile may join it too), ``worker``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pytest_rollout.load.driver")
    p.add_argument("--role", choices=("local", "master", "worker"), default="local")
    p.add_argument("--locustfile", required=True)
    p.add_argument("--host", default=None, help="target base URL (master/local)")
    p.add_argument("--users", type=int, default=1)
    p.add_argument("--spawn-rate", type=float, default=1.0)
    p.add_argument("--run-time", type=float, default=10.0, help="seconds of load, warm-up included")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between interval events")
    p.add_argument("--expect-workers", type=int, default=0)
    p.add_argument("--expect-workers-timeout", type=float, default=60.0)
    p.add_argument("--master-host", default="127.0.0.1")
    p.add_argument("--master-bind-host", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=5557)
    p.add_argument("--report-interval", type=float, default=1.0, help="worker -> master stats")
    return p.parse_args(argv)


def _user_classes(path: str) -> list[Any]:
    from locust.util.load_locustfile import load_locustfile

    classes, _shapes = load_locustfile(os.path.abspath(path))
    if not classes:
        raise SystemExit(f"{path}: no User class found (a non-abstract locust.User subclass)")
    return list(classes.values())


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    import importlib

    import locust.runners

    gevent: Any = importlib.import_module("gevent")  # untyped; imported after locust patched
    from locust.env import Environment

    # Workers report to the master every 3 s by default: too coarse for 1 s soak intervals.
    locust.runners.WORKER_REPORT_INTERVAL = args.report_interval
    env = Environment(user_classes=_user_classes(args.locustfile), host=args.host)
    stopping = {"reason": ""}

    def _on_signal(signum: int, _frame: object) -> None:
        stopping["reason"] = signal.Signals(signum).name

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    if args.role == "worker":
        runner: Any = env.create_worker_runner(args.master_host, args.master_port)
        _emit("ready", role="worker", pid=os.getpid())
        # The worker's greenlet group empties when the master tells it to quit.
        while len(runner.greenlet) and not stopping["reason"]:
            gevent.sleep(0.2)
        if stopping["reason"]:
            runner.quit()
        _emit("done", reason=stopping["reason"] or "master quit")
        return 0

    if args.role == "master":
        runner = env.create_master_runner(args.master_bind_host, args.master_port)
    else:
        runner = env.create_local_runner()
    _emit("ready", role=args.role, pid=os.getpid())
    if args.role == "master":
        deadline = time.monotonic() + args.expect_workers_timeout
        while runner.worker_count < args.expect_workers:
            if time.monotonic() > deadline or stopping["reason"]:
                _emit(
                    "done",
                    reason=f"only {runner.worker_count} of {args.expect_workers} "
                    f"workers connected within {args.expect_workers_timeout:.0f} s",
                )
                runner.quit()
                return 3
            gevent.sleep(0.1)

    start = time.time()
    runner.start(args.users, spawn_rate=args.spawn_rate)
    workers = runner.worker_count if args.role == "master" else 1
    _emit("started", t=start, workers=workers)
    prev_rt: dict[int, int] = {}
    prev_t, prev_req, prev_fail = start, 0, 0
    end = start + args.run_time

    def _interval() -> None:
        nonlocal prev_t, prev_req, prev_fail, prev_rt
        now = time.time()
        total = env.stats.total  # runner.start() replaces it (stats.clear_all): never cache it
        rt = dict(total.response_times)
        delta = {str(k): v - prev_rt.get(k, 0) for k, v in rt.items() if v != prev_rt.get(k, 0)}
        users = runner.user_count
        n_workers = runner.worker_count if args.role == "master" else 1
        _emit(
            "interval",
            t0=prev_t,
            t1=now,
            requests=total.num_requests - prev_req,
            failures=total.num_failures - prev_fail,
            rt=delta,
            users=users,
            workers=n_workers,
        )
        prev_t, prev_req, prev_fail, prev_rt = now, total.num_requests, total.num_failures, rt

    next_tick = start + args.interval
    while not stopping["reason"]:
        now = time.time()
        if now >= end:
            stopping["reason"] = "run time reached"
            break
        if now >= next_tick:
            _interval()
            next_tick += args.interval
            if next_tick < now:  # fell behind (overloaded CPU): skip ticks rather than burst
                next_tick = now + args.interval
        gevent.sleep(min(0.05, max(0.0, next_tick - time.time())))
    runner.stop()
    if args.role == "master":
        # Workers send their last stats when told to stop; give them one report interval.
        gevent.sleep(args.report_interval + 0.2)
    _interval()
    errors = [
        {"name": e.name, "method": e.method, "error": str(e.error), "occurrences": e.occurrences}
        for e in env.stats.errors.values()
    ]
    _emit("errors", errors=errors)
    runner.quit()
    _emit("done", reason=stopping["reason"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
