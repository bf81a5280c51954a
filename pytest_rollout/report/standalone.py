"""``-p pytest_rollout.report.standalone``: register the report plugins from the command line.

For runs where ``pytest_rollout.plugin`` does not register them itself; harmless when it does
(:func:`pytest_rollout.report.register` is idempotent).
"""

from __future__ import annotations

import pytest

from pytest_rollout.report import register


@pytest.hookimpl(trylast=True)  # after pytest-html and junitxml have configured themselves
def pytest_configure(config: pytest.Config) -> None:
    register(config)
