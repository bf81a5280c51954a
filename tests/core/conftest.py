"""Fixtures of the plugin-core tests: real Prometheus servers, a fault-injecting fake one."""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis  # noqa: F401  (imported once here: in-process pytester runs re-import it otherwise)
import pytest

import pytest_rollout.metrics.prometheus  # noqa: F401  (same: keep it out of every inner run)

ROLLOUT_ENV_VARS = ("ROLLOUT_ENV", "ROLLOUT_PROMETHEUS_URL", "ROLLOUT_FLAGS",
                    "ROLLOUT_PROMETHEUS_TOKEN", "ROLLOUT_PROMETHEUS_USER",
                    "ROLLOUT_PROMETHEUS_PASSWORD", "ROLLOUT_PROMETHEUS_CA_BUNDLE")


@pytest.fixture(autouse=True)
def _clean_rollout_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Gate runs must not pick up a developer's ROLLOUT_* settings."""
    for name in ROLLOUT_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    yield
