"""pytest plugin for benchmarks/day7_gate_speed.py: times every Prometheus call of a gate run.

Loaded with ``-p day7_query_timing`` (benchmarks/ on PYTHONPATH); the product is not edited. It
wraps ``PromApi.result`` (every HTTP GET the plugin sends to Prometheus goes through it) and
the report's ``plots.render_png``, and writes, to the JSON file named by ``DAY7_TIMINGS``, each
Prometheus call's client-side seconds (HTTP plus JSON decoding) and the gate that sent it, each
plot's seconds (the first includes importing matplotlib), the seconds of the session-finish and
terminal-summary hooks, and the wall-clock instants of pytest's stages.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout.metrics.transport import PromApi
from pytest_rollout.report import plots

IMPORTED_AT = time.time()
_stages: dict[str, float] = {"plugin_imported": IMPORTED_AT}
_calls: list[dict[str, Any]] = []
_current: list[str] = []
_plots: list[float] = []
_hooks: dict[str, float] = {}
_tests: dict[str, float] = {}  # nodeid -> seconds of setup, call, teardown and their reports
_original_result = PromApi.result
_original_render_png = plots.render_png


def _timed_result(self: PromApi, path: str, params: dict[str, Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    ok = False
    try:
        answer = _original_result(self, path, params)
        ok = True
        return answer
    finally:
        _calls.append(
            {
                "path": path,
                "query": str(params.get("query", "")),
                "step": params.get("step"),
                "span_s": (
                    float(params["end"]) - float(params["start"])
                    if "start" in params and "end" in params
                    else None
                ),
                "seconds": time.perf_counter() - started,
                "ok": ok,
                "test": _current[-1] if _current else None,
            }
        )


def _timed_render_png(*args: Any, **kwargs: Any) -> str | None:
    started = time.perf_counter()
    try:
        return _original_render_png(*args, **kwargs)
    finally:
        _plots.append(time.perf_counter() - started)


PromApi.result = _timed_result  # type: ignore[method-assign]
plots.render_png = _timed_render_png


def pytest_configure(config: pytest.Config) -> None:
    _stages.setdefault("configure", time.time())


def pytest_sessionstart(session: pytest.Session) -> None:
    _stages["session_start"] = time.time()


def pytest_collection_finish(session: pytest.Session) -> None:
    _stages["collection_finish"] = time.time()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    _stages.setdefault("first_test", time.time())
    _current.append(item.nodeid)
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        _current.pop()
        _tests[item.nodeid] = time.perf_counter() - started
        _stages["last_test_done"] = time.time()


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: times every plugin's sessionfinish
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        _hooks["sessionfinish"] = time.perf_counter() - started


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: times every plugin's summary
def pytest_terminal_summary() -> Generator[None, None, None]:
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        _hooks["terminal_summary"] = time.perf_counter() - started


@pytest.hookimpl(trylast=True)  # after pytest-html and the rollout plugin wrote their files
def pytest_unconfigure(config: pytest.Config) -> None:
    _stages["unconfigure"] = time.time()
    target = os.environ.get("DAY7_TIMINGS")
    if target:
        Path(target).write_text(
            json.dumps(
                {
                    "stages": _stages,
                    "calls": _calls,
                    "plots_s": _plots,
                    "hooks_s": _hooks,
                    "tests_s": _tests,
                },
                indent=1,
            )
        )
