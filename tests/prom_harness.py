"""Test access to a real local Prometheus (implemented in pytest_rollout.promserver)."""

from pytest_rollout.net import free_port  # noqa: F401  (re-exported for tests)
from pytest_rollout.promserver import (  # noqa: F401  (re-exported for tests)
    PrometheusServer,
    backfill,
    start,
    start_backfilled,
    start_scraping,
)
