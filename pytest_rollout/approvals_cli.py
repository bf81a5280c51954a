"""``rollout approvals PHASE``: list a phase's sign-offs (implemented in signoffs_cli)."""

from __future__ import annotations

from pytest_rollout.signoffs_cli import add_list_parser as add_parser
from pytest_rollout.signoffs_cli import run

__all__ = ["add_parser", "run"]
