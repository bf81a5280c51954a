"""A baseline comparison's verdicts in words: current against baseline, and what would decide.

The stats engine explains an A/B comparison (treatment, control, "about N samples would decide
it"); a baseline comparison has neither group and its sample sizes are fixed by the windows, so its
rows are explained here from the same numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_rollout.stats import NonInferiority

#: Where a comparison's window lengths are set, for the "compare a longer window" advice.
WINDOW_SETTINGS = (
    "rollout baseline save --window and rollout compare --window, or the phase's window"
)


def explain(result: NonInferiority, unit: str, windows: tuple[float, float]) -> str:
    """The verdict in a baseline's words: current against baseline (the stats engine's own
    explanation says treatment and control, which a baseline comparison does not have)."""
    from pytest_rollout.stats import Verdict

    est, (lo, hi) = result.estimate, result.ci
    if est > 0:
        direction = f"{_amount(est, unit)} higher than"
    elif est < 0:
        direction = f"{_amount(-est, unit)} lower than"
    else:
        direction = "the same as"
    text = (
        f"current {result.delta.statistic} is {direction} the baseline's, "
        f"{result.delta.level * 100:g} % interval {_amount(lo, unit, signed=True)} to "
        f"{_amount(hi, unit, signed=True)}"
    )
    bound = f"+{_amount(result.margin, unit)}"
    if result.verdict is Verdict.WITHIN:
        return f"{text}, within the {bound} margin"
    if result.verdict is Verdict.BEYOND:
        return f"{text}, beyond the {bound} margin"
    if result.bucket_limited:
        # Longer windows cannot help: the bounds stop at bucket edges wider than the margin.
        advice = result.explanation[result.explanation.find("undecidable with these buckets") :]
        return f"{text}, undecided against the {bound} margin; {advice}"
    return f"{text}, undecided against the {bound} margin; {_longer_windows(result, unit, windows)}"


def _longer_windows(result: NonInferiority, unit: str, windows: tuple[float, float]) -> str:
    """How much longer both windows would have to be to decide (at the same traffic).

    The sample sizes are set by the windows (the requests in each, or at most 12 batch means
    whose variance shrinks as the batches lengthen), not by waiting, so the advice is a window
    length: the engine's n needed, as a factor over today's n, applied to both windows.
    """
    from pytest_rollout.durations import format_duration

    what = "requests" if unit == "s" else "batch means"
    fixed = (
        f"the windows fix the sample sizes ({result.n['control']} baseline / "
        f"{result.n['treatment']} current {what}), so waiting cannot decide it"
    )
    needed = result.n_needed
    if needed is None:
        return (
            f"{fixed}; the current value sits too close to the margin for these windows: "
            f"compare longer ones, the baseline's too ({WINDOW_SETTINGS})"
        )
    scale = max(needed[g] / max(result.n[g], 1) for g in ("control", "treatment"))
    base_w, cur_w = (format_duration(w * scale) for w in windows)
    lengths = f"{cur_w} windows" if base_w == cur_w else f"{cur_w} current, {base_w} baseline"
    return (
        f"{fixed}: compare windows about {scale:.1f}x as long ({lengths}), the baseline's too "
        f"({WINDOW_SETTINGS})"
    )


def _amount(value: float, unit: str, *, signed: bool = False) -> str:
    """A difference in the row's unit: latency in ms, RSS in MB, CPU in cores."""
    from pytest_rollout.stats.format import fmt

    if unit == "B":  # bytes as MB, like the table
        return fmt(value / 1e6, "MB", signed=signed)
    return fmt(value, unit, signed=signed)
