"""The audit report: pytest-html banner, columns and extras; JUnit properties; ``rollout verify``.

Call :func:`register` from ``pytest_configure`` on the controller (only it writes reports), with
the run's read-only :class:`~pytest_rollout._state.RunView`; it is idempotent.
"""

from __future__ import annotations

import pytest

from pytest_rollout._state import RunView

__all__ = ["register"]


def register(config: pytest.Config, view: RunView) -> None:
    """Register the report plugins that apply to this run."""
    manager = config.pluginmanager
    if manager.hasplugin("html") and config.getoption("htmlpath", None):
        from pytest_rollout.report.html import PLUGIN_NAME, HtmlReport

        if not manager.has_plugin(PLUGIN_NAME):
            manager.register(HtmlReport(config, view), PLUGIN_NAME)
    if manager.hasplugin("junitxml") and config.getoption("xmlpath", None):
        from pytest_rollout.report.junit import PLUGIN_NAME as JUNIT_NAME
        from pytest_rollout.report.junit import JunitProperties

        if not manager.has_plugin(JUNIT_NAME):
            manager.register(JunitProperties(config, view), JUNIT_NAME)
