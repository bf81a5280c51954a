"""JUnit XML properties: per gate (kind, outcome, observed, threshold) and per run (decision)."""

from __future__ import annotations

import functools
from collections.abc import Generator, Mapping
from typing import Any

import pytest

from pytest_rollout._state import RunView
from pytest_rollout.redact import Redactor
from pytest_rollout.report import provenance, results

PLUGIN_NAME = "rollout-junit"
PREFIX = "rollout_"


class JunitProperties:
    """Adds rollout properties to the ``--junitxml`` report (controller only)."""

    def __init__(self, config: pytest.Config, view: RunView) -> None:
        self.config = config
        self.view = view

    @functools.cached_property
    def redact(self) -> Redactor:
        return provenance.redactor_for(
            self.config, self.view
        )  # on first use: the context is set by then

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        # junitxml closes the test case with the teardown report's user_properties: add ours
        # before it (and RolloutSession) see that report.
        if report.when == "teardown":
            result = results.at_teardown(report)
            if result is not None:
                record: Mapping[str, Any] = result.get("record") or {}
                for name, value in (
                    ("kind", result["kind"]),
                    ("outcome", result["outcome"]),
                    ("metric", record.get("metric")),
                    ("observed", record.get("observed")),
                    ("threshold", record.get("threshold")),
                    ("unit", record.get("unit")),
                    ("reason", result.get("reason")),
                ):
                    report.user_properties.append((PREFIX + name, self._text(value)))
        return (yield)

    def pytest_rollout_decision(self, config: pytest.Config, record: Mapping[str, Any]) -> None:
        xml = _log_xml(config)
        if xml is None:
            return
        for name in ("phase", "decision", "reason", "evaluated_at", "environment", "digest"):
            xml.add_global_property(PREFIX + name, self._text(record.get(name)))

    def _text(self, value: Any) -> str:
        return "" if value is None else self.redact(str(value))


def _log_xml(config: pytest.Config) -> Any:
    """pytest's LogXML, found by duck typing: its stash key lives in ``_pytest.junitxml``."""
    for plugin in config.pluginmanager.get_plugins():
        if type(plugin).__name__ == "LogXML" and hasattr(plugin, "add_global_property"):
            return plugin
    return None
