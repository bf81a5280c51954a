"""Small frozen results shared by every comparison."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    """What the data prove about treatment against control and a margin."""

    WITHIN = "within margin"  # proven no worse than the margin
    BEYOND = "beyond margin"  # proven worse than the margin
    UNDECIDED = "undecided"  # the interval straddles the margin, or too few samples


@dataclass(frozen=True)
class GroupEstimate:
    """One group's statistic with its interval (each side at the comparison's alpha)."""

    estimate: float
    ci: tuple[float, float]
    n: int
    resolution: float = 0.0  # width of the histogram bucket holding the estimate (0: exact data)
    # Edges of that bucket: the interval can never get narrower than them, whatever n.
    bucket: tuple[float, float] | None = None


@dataclass(frozen=True)
class Delta:
    """Treatment minus control with a two-sided interval whose sides each err with ``alpha``."""

    statistic: str  # "p99", "error rate", "mean"
    unit: str  # "s", "ratio", ""
    estimate: float
    ci: tuple[float, float]
    control: GroupEstimate
    treatment: GroupEstimate
    alpha: float  # per side
    sequential: bool
    # Standard deviation of one observation's contribution, per group (for power / sample size).
    unit_sd: tuple[float, float]  # (control, treatment)
    tuning_n: float = 1000.0  # where a confidence sequence is tightest (sequential only)
    # Standard deviation of the interval's (lower, upper) bound over repeated samples, when it
    # differs from the estimate's (order-statistic bounds in skewed tails); for power.
    bound_sd: tuple[float, float] | None = None

    @property
    def n(self) -> dict[str, int]:
        return {"control": self.control.n, "treatment": self.treatment.n}

    @property
    def level(self) -> float:
        """Two-sided confidence level of ``ci``."""
        return 1.0 - 2.0 * self.alpha
