"""The audit report: pytest-html banner, columns and extras; JUnit properties; ``rollout verify``.

Call :func:`register` from ``pytest_configure``; it is idempotent and does nothing on xdist
workers (only the controller writes reports).
"""

from __future__ import annotations

import pytest

__all__ = ["register"]


def register(config: pytest.Config) -> None:
    """Register the report plugins that apply to this run."""
    if hasattr(config, "workerinput"):
        return
    manager = config.pluginmanager
    if manager.hasplugin("html") and config.getoption("htmlpath", None):
        from pytest_rollout.report.html import PLUGIN_NAME, HtmlReport

        if not manager.has_plugin(PLUGIN_NAME):
            manager.register(HtmlReport(config), PLUGIN_NAME)
    if manager.hasplugin("junitxml") and config.getoption("xmlpath", None):
        from pytest_rollout.report.junit import PLUGIN_NAME as JUNIT_NAME
        from pytest_rollout.report.junit import JunitProperties

        if not manager.has_plugin(JUNIT_NAME):
            manager.register(JunitProperties(config), JUNIT_NAME)
