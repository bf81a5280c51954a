"""Gate outcomes beyond pass/fail: a gate that cannot decide is *inconclusive*."""

from __future__ import annotations

from typing import NoReturn

OUTCOMES = ("pass", "fail", "inconclusive", "error")
KINDS = ("criterion", "abort")


class Inconclusive(BaseException):
    """Raised to end a gate as inconclusive.

    A BaseException, like pytest's own outcomes, so that gate code's ``except Exception`` cannot
    swallow it and turn "could not tell" into "passed".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def inconclusive(reason: str) -> NoReturn:
    """End the current gate as inconclusive: it blocks GO but is not a failure.

    Example::

        if n_treatment < 1000:
            pytest_rollout.inconclusive(f"only {n_treatment} treatment queries, need 1000")
    """
    raise Inconclusive(reason)
