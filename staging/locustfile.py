"""Locust model of real use of the staging service: many spaces, Zipf-skewed, few writes.

    locust -f staging/locustfile.py --headless -u 20 -r 5 -t 60s --reset-stats \
        --host "$ENGRAM_URL"

* Spaces: ``ENGRAM_SPACES`` (default 200) named ``<ENGRAM_SPACE_PREFIX>-NNNN`` like
  ``python -m staging seed``; a few are busy, most are quiet (Zipf, s = 1.1).
* Mix: ``ENGRAM_WRITE_RATIO`` (default 0.07) remembers, the rest recalls; short think times.
* Warm-up: the spawn ramp (``-r``); ``--reset-stats`` drops it from the results, and each user
  first writes one episode so its space is not empty.
* Bounded: the run stops after ``-t``, and in any case after ``ENGRAM_MAX_RUN_S`` (default 600).
* Mirror: ``ENGRAM_MIRROR_URL`` (``python -m staging env`` exports the twin's URL as
  ``ENGRAM_BASELINE_URL``; pass it on) gets a copy of every request, outside Locust's statistics,
  so the stack's baseline replica grows and works like the service.
* Loopback only: any other host stops the run at start.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import random
import socket
import sys
from itertools import accumulate
from pathlib import Path
from urllib.parse import urlsplit

import gevent
from geventhttpclient import HTTPClient
from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser

# Locust imports this file by path; make the `staging` package importable from any cwd.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from staging.corpus import episode_text, query_text, space_names, zipf_weights  # noqa: E402

SPACES = int(os.environ.get("ENGRAM_SPACES", "200"))
PREFIX = os.environ.get("ENGRAM_SPACE_PREFIX", "space")
WRITE_RATIO = float(os.environ.get("ENGRAM_WRITE_RATIO", "0.07"))
MAX_RUN_S = float(os.environ.get("ENGRAM_MAX_RUN_S", "600"))
MIRROR_URL = os.environ.get("ENGRAM_MIRROR_URL", "").rstrip("/")
NAMES = space_names(SPACES, PREFIX)
CUMULATIVE = list(accumulate(zipf_weights(SPACES)))
log = logging.getLogger("engram.locust")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return all(
            ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None)
        )
    except (OSError, ValueError):
        return False


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _guard(environment: Environment, **_: object) -> None:
    runner = environment.runner
    if runner is None:
        return
    if not environment.host or not _is_loopback(environment.host):
        log.error(
            "refusing to load %r: the staging traffic model is loopback only", environment.host
        )
        gevent.spawn_later(0, runner.quit)
        return
    gevent.spawn_later(MAX_RUN_S, runner.quit)


class MemoryUser(FastHttpUser):
    wait_time = between(0.01, 0.1)

    def on_start(self) -> None:
        if not self.host or not _is_loopback(self.host):
            raise StopUser()  # before any request: the guard above may not have quit yet
        if MIRROR_URL and not _is_loopback(MIRROR_URL):
            log.error("refusing to mirror to %r: loopback only", MIRROR_URL)
            raise StopUser()
        self.mirror = HTTPClient.from_url(MIRROR_URL, concurrency=1) if MIRROR_URL else None
        self.rng = random.Random()
        self._post(
            f"/api/v1/spaces/{self._space()}/episodes",
            {"text": episode_text(self.rng)},
            "/api/v1/spaces/[space]/episodes",
        )

    def on_stop(self) -> None:
        if self.mirror is not None:
            self.mirror.close()

    def _post(self, path: str, body: dict[str, object], name: str) -> None:
        self.client.post(path, json=body, name=name)
        if self.mirror is not None:
            # Not in the statistics: the soak judges the service, the twin only keeps pace.
            with contextlib.suppress(Exception):
                answer = self.mirror.post(
                    path, body=json.dumps(body), headers={"Content-Type": "application/json"}
                )
                answer.read()
                answer.release()

    def _space(self) -> str:
        return self.rng.choices(NAMES, cum_weights=CUMULATIVE)[0]

    @task
    def use_memory(self) -> None:
        space = self._space()
        if self.rng.random() < WRITE_RATIO:
            self._post(
                f"/api/v1/spaces/{space}/episodes",
                {"text": episode_text(self.rng)},
                "/api/v1/spaces/[space]/episodes",
            )
        else:
            self._post(
                f"/api/v1/spaces/{space}/recall",
                {"query": query_text(self.rng), "k": 10},
                "/api/v1/spaces/[space]/recall",
            )
