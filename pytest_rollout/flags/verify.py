"""Read-back verification of a flagd file through the real OpenFeature flagd provider.

Writing the JSON is not the point; what the service will *evaluate* is.  So after a write we
start a fresh ``FlagdProvider`` in FILE mode on the file and ask it:

* booleans and numbers: the resolved value equals the requested one;
* cohorts: the share of ``SAMPLE_SPACE_IDS`` that resolve to "on" is within
  :func:`cohort_tolerance_pp` of the requested percent (exactly 0 % / 100 % at the ends);
* the flag-set metadata carries the change id that was just written, proving the provider read
  this very version of the file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_rollout.flags.base import FlagState, FlagValue, FlagVerificationError
from pytest_rollout.flags.flagd_format import CHANGE_ID_KEY

SAMPLE_SIZE = 4000
# Fixed, so a verification is reproducible: the same percent always gives the same share.
SAMPLE_SPACE_IDS: tuple[str, ...] = tuple(f"space-{i:05d}" for i in range(SAMPLE_SIZE))
# 4 binomial standard deviations (false alarm < 1e-4) plus 0.5 pp for the weight rounding.
_SIGMAS = 4.0


def cohort_tolerance_pp(percent: float, sample_size: int = SAMPLE_SIZE) -> float:
    """Allowed |observed - requested| in percentage points; 0 at exactly 0 % and 100 %."""
    if percent <= 0.0 or percent >= 100.0:
        return 0.0
    p = percent / 100.0
    return 100.0 * _SIGMAS * math.sqrt(p * (1.0 - p) / sample_size) + 0.5


@dataclass(frozen=True)
class FlagCheck:
    name: str
    expected: FlagValue
    observed: FlagValue | None
    ok: bool
    detail: str


@dataclass(frozen=True)
class VerificationReport:
    ok: bool
    checks: tuple[FlagCheck, ...]
    change_id_seen: str | None

    def summary(self) -> str:
        failed = [c.detail for c in self.checks if not c.ok]
        if failed:
            return "; ".join(failed)
        return f"{len(self.checks)} flag(s) read back through the flagd provider"


def _context(space_id: str | None = None) -> Any:
    from openfeature.evaluation_context import EvaluationContext

    return EvaluationContext(attributes={"space_id": space_id} if space_id is not None else {})


def _metadata_change_id(details: Any) -> str | None:
    value = (details.flag_metadata or {}).get(CHANGE_ID_KEY)
    return value if isinstance(value, str) else None


def _check(provider: Any, state: FlagState, expected: FlagValue) -> tuple[FlagCheck, str | None]:
    """One flag's check and the change id the provider's flag-set metadata shows."""
    name = state.name
    if state.type == "boolean":
        details = provider.resolve_boolean_details(name, not bool(expected), _context())
        observed: FlagValue = bool(details.value)
        ok = details.error_code is None and observed == bool(expected)
        check = FlagCheck(name, expected, observed, ok, f"{name}: provider says {observed}")
        return check, _metadata_change_id(details)
    if state.type == "number":
        details = provider.resolve_float_details(name, math.nan, _context())
        observed = float(details.value)
        ok = details.error_code is None and math.isclose(observed, float(expected), abs_tol=1e-9)
        check = FlagCheck(name, expected, observed, ok, f"{name}: provider says {observed:g}")
        return check, _metadata_change_id(details)
    on = 0
    for space_id in SAMPLE_SPACE_IDS:
        details = provider.resolve_boolean_details(name, False, _context(space_id))
        if details.error_code is not None:
            detail = f"{name}: provider error {details.error_code}"
            return FlagCheck(name, expected, None, False, detail), None
        on += bool(details.value)
    share = 100.0 * on / len(SAMPLE_SPACE_IDS)
    tolerance = cohort_tolerance_pp(float(expected))
    ok = abs(share - float(expected)) <= tolerance
    detail = (
        f"{name}: {share:.2f} % of {len(SAMPLE_SPACE_IDS)} sample spaces on, "
        f"requested {float(expected):g} % (tolerance {tolerance:.2f} pp)"
    )
    return FlagCheck(name, expected, share, ok, detail), _metadata_change_id(details)


def verify_flagd_file(
    path: str | os.PathLike[str],
    expected: Mapping[str, FlagValue],
    states: Mapping[str, FlagState],
    *,
    change_id: str | None = None,
) -> VerificationReport:
    """Evaluate the ``expected`` flags through a fresh FlagdProvider on ``path``.

    ``states`` gives each flag's type.  When ``change_id`` is given the provider must also show
    it in the flag-set metadata.  Raises FlagVerificationError only when the provider cannot
    load the file at all; mismatches are reported in the returned report.
    """
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType
    from openfeature.exception import OpenFeatureError

    provider = FlagdProvider(
        resolver_type=ResolverType.FILE,
        offline_flag_source_path=os.fspath(path),
        deadline_ms=500,  # the watcher thread wakes at this period; shorter = faster exit
    )
    try:
        provider.initialize(_context())
    except Exception as exc:  # the provider wraps parse errors in ProviderNotReadyError
        provider.shutdown()
        raise FlagVerificationError(
            f"the flagd provider could not load {os.fspath(path)!r}: {exc!r}"
        ) from exc
    checks: list[FlagCheck] = []
    seen: str | None = None
    try:
        for name, value in expected.items():
            try:
                check, seen_here = _check(provider, states[name], value)
            except OpenFeatureError as exc:
                check, seen_here = FlagCheck(name, value, None, False, f"{name}: {exc!r}"), None
            checks.append(check)
            seen = seen_here if seen_here is not None else seen
    finally:
        provider.shutdown()
    ok = all(c.ok for c in checks)
    stale = change_id is not None and seen != change_id
    if stale:
        checks.append(
            FlagCheck(
                CHANGE_ID_KEY,
                False,
                None,
                False,
                f"the provider read change {seen!r}, not the one just written ({change_id!r})",
            )
        )
    return VerificationReport(ok=ok and not stale, checks=tuple(checks), change_id_seen=seen)
