"""Feature-flag controllers: flagd file and HTTP admin backends, audit log, verified rollback.

Heavy modules (openfeature, requests) load only where used; this package root stays light.
"""

from __future__ import annotations

from pytest_rollout.flags.base import (
    FlagBackendError,
    FlagController,
    FlagError,
    FlagFormatError,
    FlagState,
    FlagValueError,
    FlagVerificationError,
    UnknownFlagError,
)

__all__ = [
    "FlagBackendError",
    "FlagController",
    "FlagError",
    "FlagFormatError",
    "FlagState",
    "FlagValueError",
    "FlagVerificationError",
    "UnknownFlagError",
]
