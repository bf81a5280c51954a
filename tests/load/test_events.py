"""The driver's event lines, read without starting Locust: each event reaches its ``on_<event>``."""

from __future__ import annotations

import io
import json
from pathlib import Path

from pytest_rollout.load.events import DriverEvents
from pytest_rollout.load.soak_config import SoakConfig
from tests.load.helpers import TOY_LOCUSTFILE


def _line(event: str, **fields: object) -> bytes:
    return (json.dumps({"event": event, **fields}) + "\n").encode()


def _interval(t0: float, t1: float, rt: dict[str, int]) -> bytes:
    requests = sum(rt.values())
    return _line("interval", t0=t0, t1=t1, requests=requests, failures=1, rt=rt, users=4, workers=1)


def test_events_reach_their_handlers_and_others_are_ignored() -> None:
    config = SoakConfig(
        target="http://127.0.0.1:9",
        locustfile=Path(TOY_LOCUSTFILE),
        duration_s=10.0,
        warmup_s=2.0,
        progress_every_s=0.0,
    )
    progress = io.StringIO()
    stopped: list[bool] = []
    events = DriverEvents(config, None, progress.write, stop_driver=lambda: stopped.append(True))
    events.read(
        [
            _line("ready", role="local", pid=1),
            b"a stray print from the locustfile\n",
            _line("started", t=1000.0, workers=1),
            _line("from_a_newer_driver", x=1),
            _interval(1000.0, 1001.0, {"5": 10}),  # warm-up: not in the histogram
            _interval(1002.0, 1003.0, {"7": 3, "9": 1}),
            _line(
                "errors",
                errors=[
                    {"name": "/a", "method": "GET", "error": "rare", "occurrences": 1},
                    {"name": "/b", "method": "GET", "error": "common", "occurrences": 5},
                ],
            ),
            _line("done", reason="run time reached"),
        ]
    )
    assert events.started_at == 1000.0 and events.warmup_end == 1002.0
    assert [i.warmup for i in events.intervals] == [True, False]
    assert events.intervals[1].p99_ms == 9.0 and events.intervals[1].rps == 4.0
    assert dict(events.histogram) == {7: 3, 9: 1}
    assert [e["error"] for e in events.errors] == ["common", "rare"]
    assert events.completed and events.stop_reason == "run time reached"
    assert not stopped, "no watcher, so nothing may stop the driver"
    assert "users 4 workers 1" in progress.getvalue()


def test_a_run_that_ends_early_is_not_complete() -> None:
    config = SoakConfig(target="http://127.0.0.1:9", locustfile=Path(TOY_LOCUSTFILE))
    events = DriverEvents(config, None, lambda _line: None, stop_driver=lambda: None)
    events.read([_line("done", reason="SIGTERM")])
    assert not events.completed and events.stop_reason == "SIGTERM"
