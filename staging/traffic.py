"""A bounded, rate-paced traffic driver (threads + requests): Zipf-skewed spaces, a few writes.

Lighter than Locust and importable in-process, for tests and the README main job; the Locust
file models the same mix for longer or heavier runs. ``mirror_urls`` sends every request to
those replicas too (the stack's baseline twin), so their data and load stay the same.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import requests

from staging.corpus import episode_text, query_text, space_names, zipf_weights

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds in "500ms", "30s", "2m", "1h" or a bare number of seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 2m, 500ms)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


@dataclass
class TrafficSummary:
    duration_s: float = 0.0
    requests: int = 0
    failures: int = 0  # transport errors and 5xx answers
    by_kind: Counter[str] = field(default_factory=Counter)
    by_group: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    stopped_by: str | None = None  # the signal that ended the run early, e.g. "SIGTERM"
    mirrored: int = 0  # copies sent to the mirrors; every other count is the primary's
    mirror_failures: int = 0

    @property
    def achieved_rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def to_json(self) -> dict[str, object]:
        return {
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "failures": self.failures,
            "achieved_rps": round(self.achieved_rps, 1),
            "p50_ms": round(self.percentile_ms(0.5), 3),
            "p99_ms": round(self.percentile_ms(0.99), 3),
            "by_kind": dict(self.by_kind),
            "by_group": dict(self.by_group),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "stopped_by": self.stopped_by,
            "mirrored": self.mirrored,
            "mirror_failures": self.mirror_failures,
        }


def drive(
    base_url: str,
    *,
    duration_s: float,
    rps: float,
    spaces: int = 200,
    write_ratio: float = 0.07,
    prefix: str = "space",
    threads: int = 8,
    skew: float = 1.1,
    rng_seed: int = 0,
    timeout_s: float = 5.0,
    stop: threading.Event | None = None,
    mirror_urls: Sequence[str] = (),
) -> TrafficSummary:
    """Send about ``rps`` requests per second for ``duration_s`` seconds, then return totals.

    Each thread paces its own share of the rate against the clock (open loop): a slow service
    makes threads fall behind, and ``achieved_rps`` shows it. Setting ``stop`` ends the run
    early: each thread finishes its request in flight (at most ``timeout_s``) and the totals so
    far are returned. Each request also goes to every URL of ``mirror_urls``, in the same
    thread; the summary's latencies, groups and statuses are the primary's alone.
    """
    if duration_s <= 0 or rps <= 0 or not 0 <= write_ratio <= 1 or spaces < 1:
        raise ValueError("need duration > 0, rps > 0, 0 <= write_ratio <= 1, spaces >= 1")
    names = space_names(spaces, prefix)
    cumulative = list(accumulate(zipf_weights(spaces, skew)))
    summary = TrafficSummary()
    lock = threading.Lock()
    threads = max(1, min(threads, int(rps) or 1))
    interval = threads / rps
    stop = stop or threading.Event()
    started = time.monotonic()
    deadline = started + duration_s

    def worker(index: int) -> None:
        rng = random.Random(rng_seed * 1000 + index)
        next_at = started + index * interval / threads
        sent_so_far = 0
        with requests.Session() as http:
            while True:
                now = time.monotonic()
                if next_at >= deadline or now >= deadline or stop.is_set():
                    return
                if next_at > now and stop.wait(next_at - now):
                    return
                next_at += interval
                space = rng.choices(names, cum_weights=cumulative)[0]
                if rng.random() < write_ratio:
                    kind, path = "remember", f"/api/v1/spaces/{space}/episodes"
                    body: dict[str, Any] = {"text": episode_text(rng)}
                else:
                    kind, path = "recall", f"/api/v1/spaces/{space}/recall"
                    body = {"query": query_text(rng), "k": 10}
                mirror_failed = 0
                for number, mirror in enumerate(mirror_urls):
                    # Before the primary on every other request: neither replica always gets
                    # the warmer caches or the earlier slot.
                    if (number + sent_so_far) % 2:
                        mirror_failed += not _mirror(http, mirror + path, body, timeout_s)
                sent = time.perf_counter()
                status, group = 0, None
                try:
                    response = http.post(base_url + path, json=body, timeout=timeout_s)
                    status = response.status_code
                    if kind == "recall" and response.ok:
                        group = response.json().get("group")
                except (requests.RequestException, ValueError):
                    status = 0
                elapsed_ms = (time.perf_counter() - sent) * 1000
                for number, mirror in enumerate(mirror_urls):
                    if not (number + sent_so_far) % 2:
                        mirror_failed += not _mirror(http, mirror + path, body, timeout_s)
                sent_so_far += 1
                with lock:
                    summary.mirrored += len(mirror_urls)
                    summary.mirror_failures += mirror_failed
                    summary.requests += 1
                    summary.by_kind[kind] += 1
                    summary.by_status[status] += 1
                    if status == 0 or status >= 500:
                        summary.failures += 1
                    if group:
                        summary.by_group[group] += 1
                    summary.latencies_ms.append(elapsed_ms)

    workers = [
        threading.Thread(target=worker, args=(i,), name=f"traffic-{i}", daemon=True)
        for i in range(threads)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    summary.duration_s = time.monotonic() - started
    return summary


def _mirror(http: requests.Session, url: str, body: dict[str, Any], timeout_s: float) -> bool:
    """Send one mirrored copy; True if the mirror answered below 500."""
    try:
        return http.post(url, json=body, timeout=timeout_s).status_code < 500
    except requests.RequestException:
        return False
