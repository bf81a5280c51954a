"""Which rollout phase is live, read from the flag values the service exports.

Each phase's ``[phases.X.flags]`` table is the truth: boolean flags must match exactly; a numeric
flag (a cohort percent) matches the half-open range above the next-lower value any phase uses, so
an intermediate ramp step (10 % between 5 % and 25 %) still belongs to the phase it leads into.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pytest_rollout.config import ConfigError, FlagValue
from pytest_rollout.monitoring.promql import Q, num
from pytest_rollout.monitoring.settings import MonitoringSettings


@dataclass(frozen=True)
class FlagCondition:
    flag: str
    equals: bool | None = None  # boolean flags
    above: float | None = None  # numeric: value > above (None: no lower bound) ...
    at_most: float | None = None  # ... and value <= at_most

    def holds(self, value: float) -> bool:
        if self.equals is not None:
            return value == (1.0 if self.equals else 0.0)
        assert self.at_most is not None
        return value <= self.at_most and (self.above is None or value > self.above)

    def promql(self, q: Q) -> str:
        sel = q.flag(self.flag)
        if self.equals is not None:
            return f"{sel} == {1 if self.equals else 0}"
        assert self.at_most is not None
        if self.above is None:
            return f"{sel} <= {num(self.at_most)}"
        return f"({sel} > {num(self.above)}) <= {num(self.at_most)}"


def conditions(settings: MonitoringSettings) -> dict[str, tuple[FlagCondition, ...]]:
    """Per phase, the flag conditions that say it is live; errors if two phases overlap."""
    numeric: dict[str, set[float]] = {}
    for phase in settings.phases.values():
        for flag, value in phase.flags.items():
            if not isinstance(value, bool):
                numeric.setdefault(flag, set()).add(float(value))
    out: dict[str, tuple[FlagCondition, ...]] = {}
    for key, phase in settings.phases.items():
        conds = []
        for flag, value in sorted(phase.flags.items()):
            if isinstance(value, bool):
                conds.append(FlagCondition(flag, equals=value))
            else:
                lower = [v for v in numeric[flag] if v < value]
                conds.append(
                    FlagCondition(flag, above=max(lower) if lower else None, at_most=float(value))
                )
        out[key] = tuple(conds)
    _check_disjoint(settings, out)
    return out


def _check_disjoint(
    settings: MonitoringSettings, conds: Mapping[str, tuple[FlagCondition, ...]]
) -> None:
    keys = sorted(k for k, c in conds.items() if c)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if _compatible(conds[a], conds[b]):
                raise ConfigError(
                    f"{settings.source}: [phases.{a}.flags] and [phases.{b}.flags] describe "
                    "overlapping flag states, so alerts cannot tell the phases apart; make them "
                    "differ in at least one flag"
                )


def _compatible(a: tuple[FlagCondition, ...], b: tuple[FlagCondition, ...]) -> bool:
    mine = {c.flag: c for c in a}
    for other in b:
        c = mine.get(other.flag)
        if c is None:
            continue
        if c.equals is not None or other.equals is not None:
            if c.equals != other.equals:
                return False
        elif c.at_most == other.at_most:
            continue
        else:
            return False  # distinct numeric values give disjoint ranges by construction
    return True


def matching(
    conds: Mapping[str, tuple[FlagCondition, ...]], values: Mapping[str, FlagValue]
) -> list[str]:
    """Phases whose conditions hold for these flag values (what the recording rule computes)."""
    return [
        key
        for key, cs in conds.items()
        if cs and all(c.flag in values and c.holds(float(values[c.flag])) for c in cs)
    ]


def active_rule_expr(conds: tuple[FlagCondition, ...], q: Q) -> str:
    """1 with label {job} while every condition holds (the rule adds the phase label)."""
    body = "\n  and on(job)\n  ".join(f"({c.promql(q)})" for c in conds)
    return f"group by (job) (\n  {body}\n)"
