"""Fixtures of the report tests."""

from __future__ import annotations

from collections.abc import Iterator

# Imported once here: in-process pytester runs would otherwise re-import them every run.
import matplotlib.figure  # noqa: F401
import pytest
import pytest_html.extras  # noqa: F401

import pytest_rollout.report.html  # noqa: F401
import pytest_rollout.report.junit  # noqa: F401
import pytest_rollout.report.plots  # noqa: F401

ROLLOUT_ENV_VARS = ("ROLLOUT_ENV", "ROLLOUT_PROMETHEUS_URL", "ROLLOUT_FLAGS",
                    "ROLLOUT_PROMETHEUS_TOKEN", "ROLLOUT_PROMETHEUS_USER",
                    "ROLLOUT_PROMETHEUS_PASSWORD", "ROLLOUT_PROMETHEUS_CA_BUNDLE")


@pytest.fixture(autouse=True)
def _clean_rollout_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Gate runs must not pick up a developer's ROLLOUT_* settings."""
    for name in ROLLOUT_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    yield
