"""The fixtures the matrix borrows: the core suite's Prometheus servers and the staging stack."""

from __future__ import annotations

from staging.testing import engram, staging_stack
from tests.core.conftest import backfilled_prom, fake_prom, refused_url

__all__ = ["backfilled_prom", "engram", "fake_prom", "refused_url", "staging_stack"]
