"""The staging stack fixtures, shared with any other suite that imports them the same way."""

from __future__ import annotations

from staging.testing import engram, staging_stack

__all__ = ["engram", "staging_stack"]
