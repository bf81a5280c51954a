"""The warm worker: gate runs forked from a process that has already imported pytest and friends.

A cold ``python -m pytest`` spends ~1.5 s importing pytest, numpy, scipy and the plugin before
the first query. The server starts one single-threaded "zygote" (multiprocessing's forkserver)
that imports them once; each evaluation is a fork of it that runs ``pytest.main`` and exits.
Forking the zygote, never the uvicorn process, keeps threads and the event loop out of children.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import sys
import threading
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

# What a gate run imports before its first query; a module that is missing is skipped by the
# forkserver (ImportError is ignored there), so optional extras cost nothing when absent.
PRELOAD: tuple[str, ...] = (
    "pytest",
    "numpy",
    "scipy.stats",
    "scipy.special",
    "requests",
    "pytest_html",
    "pytest_html.plugin",
    "pytest_rollout.plugin",
    "pytest_rollout.session",
    "pytest_rollout.fixtures",
    "pytest_rollout.metrics.prometheus",
    "pytest_rollout.report.html",
    "pytest_rollout.report.render",
    "pytest_rollout.flags.registry",
    "pytest_rollout.flags.flagd_file",
    "pytest_rollout.flags.http",
    "pytest_rollout.ab",
    "pytest_rollout.evidence",
    "pytest_rollout.comparison",
    "pytest_rollout.clustering",
    "pytest_rollout.phase_hold",
    "pytest_rollout.phase_start",
    *(
        f"pytest_rollout.stats.{name}"
        for name in (
            "batch_means",
            "compare",
            "histogram",
            "mannwhitney",
            "noninferiority",
            "proportions",
            "sequential",
            "spending",
            "srm",
        )
    ),
    # The HTML report's plots (report/plots.py imports these when it draws).
    "matplotlib.figure",
    "matplotlib.dates",
    "matplotlib.backends.backend_agg",
    "pytest_rollout.report.plots",
    "pytest_rollout.serve.worker",
)


def _run_pytest(argv: Sequence[str], log_path: str) -> None:
    """Child body: pytest's output goes to the run's log, its exit code is the process's."""
    # The preloaded modules' objects never die in a run: out of the collector's sight, pytest's
    # five gc.collect() calls at unconfigure cost ~0.05 s instead of ~0.5 s (and pages stay
    # shared with the zygote instead of being copied when the collector touches them).
    gc.freeze()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    code = 3  # pytest's "internal error" if pytest.main itself raises
    try:
        import pytest

        # The zygote imported the plugins before pytest could mark them for assertion
        # rewriting; pytest warns about that (an error under filterwarnings=error). Their own
        # asserts are not gates, so plain asserts there change nothing a gate reports.
        code = int(pytest.main(["-W", "ignore::pytest.PytestAssertRewriteWarning", *argv]))
    except BaseException as exc:  # the parent reads the exit code and the log, nothing else
        print(f"rollout serve: the gate run raised {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)  # no atexit handlers inherited from the zygote


def plugin_modules() -> list[str]:
    """The modules of the installed pytest plugins (``pytest11`` entry points).

    pytest imports them on every run, and rewrites their asserts first (slow when bytecode is
    not cached, e.g. PYTHONDONTWRITEBYTECODE): importing them once in the zygote saves that.
    hypothesis is imported by its plugin's terminal summary, so it is named too.
    """
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return []
    from importlib.metadata import entry_points

    names = [ep.value.partition(":")[0] for ep in entry_points(group="pytest11")]
    if "_hypothesis_pytestplugin" in names:
        names.append("hypothesis")
    return names


class WarmWorker:
    """Runs ``pytest.main(argv)`` in a fork of the pre-imported zygote; one call per run."""

    def __init__(self, extra_preload: Sequence[str] = ()) -> None:
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload([*PRELOAD, *plugin_modules(), *extra_preload])
        self._live: set[BaseProcess] = set()
        self._lock = threading.Lock()

    def start(self, scratch: Path) -> None:
        """Start the zygote now (it imports PRELOAD), so the first request is already warm."""
        scratch.mkdir(parents=True, exist_ok=True)
        self.run(["--version"], scratch / "warmup.log", timeout_s=120.0)

    def run(self, argv: Sequence[str], log_path: Path, *, timeout_s: float) -> int:
        """Block until the run ends; its exit code, or -9 when it was killed at ``timeout_s``."""
        process = self._ctx.Process(target=_run_pytest, args=(list(argv), str(log_path)))
        process.start()
        with self._lock:
            self._live.add(process)
        try:
            process.join(timeout_s)
            if process.is_alive():
                process.kill()
                process.join(5.0)
                return -9
            return process.exitcode if process.exitcode is not None else -9
        finally:
            with self._lock:
                self._live.discard(process)
            if not process.is_alive():
                process.close()

    def stop(self) -> None:
        """Kill the gate runs still going (server shutdown); the zygote exits with us."""
        with self._lock:
            live = list(self._live)
        for process in live:
            with contextlib.suppress(Exception):
                process.kill()
