"""pytest-rollout: progressive rollouts as executable go/no-go gates."""

from pytest_rollout.decision import Decision
from pytest_rollout.gate import GateRecord
from pytest_rollout.outcomes import Inconclusive, inconclusive

__version__ = "0.1.0"

__all__ = ["Decision", "GateRecord", "Inconclusive", "__version__", "inconclusive"]
