"""Fixtures of the report tests."""

from __future__ import annotations

# Imported once here: in-process pytester runs would otherwise re-import them every run.
import matplotlib.figure  # noqa: F401
import pytest_html.extras  # noqa: F401

import pytest_rollout.report.html  # noqa: F401
import pytest_rollout.report.junit  # noqa: F401
import pytest_rollout.report.plots  # noqa: F401
