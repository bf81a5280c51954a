"""pytest-html integration: decision banner, per-gate columns and extras, safe environment table.

Registered on the controller only (pytest-html writes the report there, also under xdist).
"""

from __future__ import annotations

import functools
import html as html_lib
import os
from collections.abc import Callable, Generator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout._state import RunView
from pytest_rollout.durations import format_elapsed
from pytest_rollout.instants import parse_instant
from pytest_rollout.redact import REDACTED, Redactor, is_secret_name
from pytest_rollout.report import provenance, render, results
from pytest_rollout.report.timeline import TIMELINE_ENV, current_look, read_timeline, timeline_html

PLUGIN_NAME = "rollout-html"


class HtmlReport:
    """Hooks into pytest-html 4; every value from outside goes through render.esc."""

    def __init__(self, config: pytest.Config, view: RunView) -> None:
        self.config = config
        self.view = view
        self.record: Mapping[str, Any] | None = None  # from pytest_rollout_decision

    # Built on first use: the run's context (with its Prometheus URL) is configured by then.
    @functools.cached_property
    def redact(self) -> Redactor:
        return provenance.redactor_for(self.config, self.view)

    @functools.cached_property
    def renderer(self) -> render.Renderer:
        return render.Renderer(self.redact)

    # -- per gate ------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        # Before pytest-html (trylast) stores the teardown report and collects every phase's
        # extras: attach the gate's details to it, where they are complete.
        if report.when == "teardown":
            result = results.at_teardown(report)
            if result is not None:
                from pytest_html import extras

                png, note = self._plot(result)
                details = self.renderer.gate_extra(result, png, note)
                # pytest-html's own attribute; TestReport does not declare it.
                report.extras = [  # type: ignore[attr-defined]
                    *getattr(report, "extras", []),
                    extras.html(details),
                ]
        return (yield)

    def _plot(self, result: dict[str, Any]) -> tuple[str | None, str | None]:
        """(base64 PNG, None) or (None, why there is no plot)."""
        record = result.get("record") or {}
        series = record.get("series") or {}
        if not series:
            return None, None
        from pytest_rollout.report import plots

        try:
            png = plots.render_png(
                series,
                metric=str(record.get("metric") or result["nodeid"]),
                unit=str(record.get("unit") or ""),
                threshold=record.get("threshold"),
                threshold_on=plots.threshold_target(series, record.get("extra") or {}),
            )
        except ImportError:
            return (
                None,
                "plot unavailable: matplotlib is not installed "
                "(pip install 'pytest-rollout[report]')",
            )
        return png, None if png else "the recorded series hold no finite points"

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report: Any) -> None:
        asked = self.view.phases_asked()
        if asked:  # the decision is not known yet (sessionstart); the phase is
            report.title = self.redact(f"Rollout {'+'.join(asked)}: gate report")

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.extend(render.header_cells())

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        if not cells:
            return  # another plugin removed the row
        # pytest-html 4.2 puts the node id in unescaped; parametrize ids can carry label values.
        when = getattr(report, "when", "call")
        test_id = report.nodeid + ("" if when == "call" else f"::{when}")
        for index, cell in enumerate(cells):
            if 'class="col-testId"' in cell:
                cells[index] = f'<td class="col-testId">{self.renderer.esc(test_id)}</td>'
        cells.extend(self.renderer.row_cells(results.settled(self.view, report.nodeid)))
        cells[:] = [self.redact(cell) for cell in cells]

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_html(self, report: pytest.TestReport, data: list[str]) -> None:
        # Captured output and tracebacks are already escaped by pytest-html; drop credentials.
        data[:] = [self.redact(entry) for entry in data]

    # -- the decision --------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        for problem in reversed(self.view.problems):
            prefix.insert(
                0,
                f'<p class="rollout-problem"><strong>pytest-rollout: ERROR:</strong> '
                f"{self.renderer.esc(problem)}</p>",
            )
        if self.record is None:
            return
        prefix.insert(0, self.renderer.banner(self._banner_view(self.record)))
        section = _timeline_section(self.record, self.renderer.esc)
        if section:
            prefix.insert(1, section)

    def pytest_rollout_decision(self, config: pytest.Config, record: Mapping[str, Any]) -> None:
        self.record = record

    def _banner_view(self, record: Mapping[str, Any]) -> render.BannerView:
        context = record.get("context") or {}
        window = record.get("window") or {}
        counts: dict[str, int] = {}
        for gate in record.get("gates", []):
            counts[gate["outcome"]] = counts.get(gate["outcome"], 0) + 1
        return render.BannerView(
            phase=str(record.get("phase")),
            decision=str(record.get("decision")),
            reason=str(record.get("reason", "")),
            environment=record.get("environment"),
            evaluated_at=str(record.get("evaluated_at")),
            window=window,
            window_length=_length(window),
            command=provenance.reproduce_command(
                self.config,
                at=str(record.get("evaluated_at")),
                environment=record.get("environment"),
                redactor=self.redact,
            ),
            commit=provenance.git_commit(self.config.rootpath),
            operator=str(context.get("operator", "unknown")),
            ci=provenance.ci_identity(self.redact),
            prometheus_url=context.get("prometheus_url"),
            flags_before=(record.get("flags") or {}).get("before") or {},
            flags_after=(record.get("flags") or {}).get("after") or {},
            actions=record.get("actions") or [],
            digest=str(record.get("digest")),
            record_path=self.config.getoption("rollout_decision_json", None),
            counts=counts,
        )

    # -- the environment table -----------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # pytest-html (trylast) renders pytest-metadata's dict with innerHTML, and xdist workers
        # refill it late in the run: clean it here, just before the report is written.
        try:
            from pytest_metadata.plugin import metadata_key  # type: ignore[import-untyped]
        except ImportError:
            return
        metadata = self.config.stash.get(metadata_key, None)
        if metadata is not None:
            _clean_metadata(metadata, self.redact)


def _clean_metadata(metadata: MutableMapping[str, Any], redact: Redactor) -> None:
    """Redact credentials and escape what pytest-html 4.2 inserts as HTML (top-level keys are
    set as text, values and the keys of nested tables as HTML)."""
    for key in list(metadata):
        value = metadata[key]
        if is_secret_name(str(key)):
            metadata[key] = REDACTED
        elif isinstance(value, Mapping):
            metadata[key] = {
                _safe(k, redact): REDACTED if is_secret_name(str(k)) else _safe(v, redact)
                for k, v in value.items()
            }
        else:
            metadata[key] = _safe(value, redact)


def _safe(value: Any, redact: Redactor) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return html_lib.escape(redact(str(value)))


def _timeline_section(record: Mapping[str, Any], esc: Callable[[Any], str]) -> str:
    """The watch's timeline chart, when `rollout watch` runs this look (ROLLOUT_TIMELINE)."""
    path = os.environ.get(TIMELINE_ENV)
    if not path:
        return ""
    previous = read_timeline(Path(path))
    return timeline_html([*previous, current_look(record, previous)], esc)


def _length(window: dict[str, str]) -> str:
    try:
        return format_elapsed(parse_instant(window["end"]) - parse_instant(window["start"]))
    except (KeyError, ValueError):
        return "?"
