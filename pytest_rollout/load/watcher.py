"""Watch the soak target's RSS, CPU and start time on a thread of its own while Locust runs.

A slow scrape must never delay reading Locust's statistics, hence the thread; a changed start time
is a restart, and a local PID that vanished means the target is gone for good.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pytest_rollout.load.result import RESTART_TOLERANCE_S, ResourceSample, Restart
from pytest_rollout.load.sampling import ProcessSample, ProcSampler, SampleError, Sampler

_MAX_LOGGED_SAMPLE_ERRORS = 100


class ResourceWatcher(threading.Thread):
    """Samples the target on its own thread, so a slow scrape never delays reading Locust."""

    def __init__(self, sampler: Sampler, interval_s: float) -> None:
        super().__init__(name="soak-resource-sampler", daemon=True)
        self.sampler = sampler
        self.interval_s = interval_s
        self.samples: list[ProcessSample] = []
        self.restarts: list[Restart] = []
        self.errors: list[dict[str, Any]] = []
        self.error_count = 0
        self.gone: str | None = None
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._last_start: float | None = None

    def take(self) -> None:
        try:
            sample = self.sampler.sample()
        except SampleError as exc:
            with self._lock:
                self.error_count += 1
                if len(self.errors) < _MAX_LOGGED_SAMPLE_ERRORS:
                    self.errors.append({"t": time.time(), "error": str(exc)})
            # A local PID that vanished never comes back; a URL may (the target restarting).
            if isinstance(self.sampler, ProcSampler):
                self.gone = str(exc)
                self._stop_event.set()
            return
        with self._lock:
            last = self._last_start
            if last is not None and abs(sample.start_time - last) > RESTART_TOLERANCE_S:
                self.restarts.append(Restart(sample.t, last, sample.start_time))
            self._last_start = sample.start_time
            self.samples.append(sample)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            self.take()
            next_at += self.interval_s
            self._stop_event.wait(max(0.0, next_at - time.monotonic()))

    def latest(self) -> ProcessSample | None:
        with self._lock:
            return self.samples[-1] if self.samples else None

    def stop(self) -> None:
        """Stop sampling; a no-op when the load never started (the thread was never started)."""
        if self.is_alive():
            self._stop_event.set()
            self.join(timeout=10)

    def close_sampler(self) -> None:
        if hasattr(self.sampler, "close"):
            self.sampler.close()

    def resource_samples(self, warmup_end: float, run_end: float) -> list[ResourceSample]:
        """The samples taken up to ``run_end``, each marked warm-up or not."""
        return [
            ResourceSample(s.t, s.rss_bytes, s.cpu_seconds, s.start_time, s.t < warmup_end)
            for s in self.samples
            if s.t <= run_end  # not the idle tail while Locust shuts down
        ]
