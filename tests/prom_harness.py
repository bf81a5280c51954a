"""Test access to a real local Prometheus (implemented in pytest_rollout.promserver)."""

from pytest_rollout.promserver import (  # noqa: F401  (re-exported for tests)
    PrometheusServer,
    backfill,
    free_port,
    start,
    start_backfilled,
    start_scraping,
)
