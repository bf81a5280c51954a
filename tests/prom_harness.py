"""Test access to a real local Prometheus; the implementation is shared with examples/ and staging."""

from pytest_rollout.promserver import (  # noqa: F401  (re-exported for tests)
    PrometheusServer,
    backfill,
    free_port,
    start,
    start_backfilled,
    start_scraping,
)
