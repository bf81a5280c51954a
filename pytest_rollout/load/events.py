"""Read the Locust driver's JSON event lines (protocol: :mod:`pytest_rollout.load.driver`) into the
figures of a soak, printing a progress line every so often.

Each event ``{"event": "X", ...}`` goes to the method ``on_X``, picked by name as pytest-xdist's
``DSession.loop_once`` picks ``worker_<event>``; an event without a method (``ready``) is ignored.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from pytest_rollout.load.result import IntervalStats, percentile_from_counts
from pytest_rollout.load.soak_config import SoakConfig
from pytest_rollout.load.watcher import ResourceWatcher


class DriverEvents:
    """What the driver has reported so far; ``stop_driver`` is called when the target went away."""

    def __init__(
        self,
        config: SoakConfig,
        watcher: ResourceWatcher | None,
        say: Callable[[str], None],
        stop_driver: Callable[[], None],
    ) -> None:
        self.config = config
        self.watcher = watcher
        self._say = say
        self._stop_driver = stop_driver
        # Until the driver says when the users began to spawn, now is the best guess.
        self.started_at = time.time()
        self.warmup_end = self.started_at + config.warmup_s
        self.intervals: list[IntervalStats] = []
        self.histogram: Counter[int] = Counter()  # post-warm-up response times, ms -> count
        self.errors: list[dict[str, Any]] = []
        self.stop_reason = "driver ended without a reason"
        self.completed = False
        self._last_progress = time.monotonic()

    def read(self, lines: Iterable[bytes]) -> None:
        """Handle every event until the driver closes its stdout."""
        for raw in lines:
            try:
                event = json.loads(raw)
            except ValueError:
                continue  # a stray print from the locustfile
            handler = getattr(self, f"on_{event.get('event')}", None)
            if handler is not None:
                handler(event)
            if self.watcher is not None and self.watcher.gone:
                self.stop_reason = f"target went away: {self.watcher.gone}"
                self._stop_driver()

    def on_started(self, event: dict[str, Any]) -> None:
        self.started_at = float(event["t"])
        self.warmup_end = self.started_at + self.config.warmup_s
        if self.watcher is not None:
            self.watcher.start()

    def on_interval(self, event: dict[str, Any]) -> None:
        interval = interval_stats(event, self.warmup_end)
        self.intervals.append(interval)
        if not interval.warmup:
            self.histogram.update({int(k): int(v) for k, v in event["rt"].items()})
        if time.monotonic() - self._last_progress >= self.config.progress_every_s:
            self._last_progress = time.monotonic()
            self._say(self.progress_line())

    def on_errors(self, event: dict[str, Any]) -> None:
        self.errors = sorted(event["errors"], key=lambda e: -int(e["occurrences"]))

    def on_done(self, event: dict[str, Any]) -> None:
        self.stop_reason = str(event["reason"])
        self.completed = self.stop_reason == "run time reached"

    def progress_line(self) -> str:
        elapsed = time.time() - self.started_at
        last = self.intervals[-1]
        line = (
            f"{format_hms(elapsed)}/{format_hms(self.config.duration_s)} "
            f"{'warm-up ' if last.warmup else ''}users {last.users} workers {last.workers} "
            f"{last.rps:.0f} req/s p50 {format_number(last.p50_ms)} ms "
            f"p99 {format_number(last.p99_ms)} ms "
            f"failures {sum(i.failures for i in self.intervals)}"
        )
        watcher = self.watcher
        sample = watcher.latest() if watcher else None
        if sample is not None:
            line += f" rss {sample.rss_bytes / 1e6:.1f} MB"
        if watcher is not None and watcher.restarts:
            line += f" RESTARTS {len(watcher.restarts)}"
        return line


def interval_stats(event: dict[str, Any], warmup_end: float) -> IntervalStats:
    """One ``interval`` event as figures."""
    counts = {int(k): int(v) for k, v in event["rt"].items()}
    t0, t1 = float(event["t0"]), float(event["t1"])
    requests = int(event["requests"])
    return IntervalStats(
        t0=t0,
        t1=t1,
        warmup=t0 < warmup_end,  # an interval that overlaps the warm-up is warm-up
        requests=requests,
        failures=int(event["failures"]),
        rps=requests / (t1 - t0) if t1 > t0 else 0.0,
        p50_ms=percentile_from_counts(counts, 0.50),
        p95_ms=percentile_from_counts(counts, 0.95),
        p99_ms=percentile_from_counts(counts, 0.99),
        users=int(event["users"]),
        workers=int(event["workers"]),
    )


def format_hms(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def format_number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.2g}"
