"""A gate's numbers as sentences and short cell texts (plain text; escaping is render.py's job)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pytest_rollout.stats.format import fmt

NONE = "—"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def is_comparison(record: Mapping[str, Any]) -> bool:
    """Treatment against control: observed and threshold are differences, shown signed."""
    return record.get("ci") is not None


def value_text(value: Any, unit: str, *, signed: bool = False) -> str:
    number = _number(value)
    return NONE if number is None else fmt(number, unit, signed=signed)


def observed_vs_threshold(record: Mapping[str, Any]) -> str:
    unit = str(record.get("unit") or "")
    signed = is_comparison(record)
    observed = value_text(record.get("observed"), unit, signed=signed)
    threshold = value_text(record.get("threshold"), unit, signed=signed)
    if observed == NONE and threshold == NONE:
        return NONE
    return f"{observed} vs {threshold}"


def interval_text(record: Mapping[str, Any]) -> str:
    ci = record.get("ci")
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return NONE
    unit = str(record.get("unit") or "")
    return f"{value_text(ci[0], unit, signed=True)} to {value_text(ci[1], unit, signed=True)}"


def p_value_text(record: Mapping[str, Any]) -> str:
    p = _number(record.get("p_value"))
    if p is None:
        return NONE
    return "< 0.0001" if p < 1e-4 else f"{p:.3g}"


def n_text(record: Mapping[str, Any]) -> str:
    n = record.get("n")
    if not isinstance(n, Mapping) or not n:
        return NONE
    return ", ".join(
        f"{group} {count:,}" if isinstance(count, int) else f"{group} {count}"
        for group, count in n.items()
    )


def statistics_in_words(record: Mapping[str, Any], outcome: str, reason: str) -> str:
    """What the gate measured and how it compares, in sentences.

    The A/B code's own explanation (``gate.observe(explanation=...)``) comes first: it knows the
    direction and the margin ("treatment p99 is 1.6 ms higher than control, 95 % interval -1.1 to
    +4.4 ms, within the +10 ms margin"); the numbers follow so the sentence can be checked.
    """
    sentences: list[str] = []
    explanation = record.get("explanation")
    if explanation:
        sentences.append(str(explanation).rstrip(".") + ".")
    metric = record.get("metric") or "this gate"
    unit = str(record.get("unit") or "")
    signed = is_comparison(record)
    observed = _number(record.get("observed"))
    threshold = _number(record.get("threshold"))
    if observed is not None:
        text = f"Observed {metric}: {fmt(observed, unit, signed=signed)}"
        if threshold is not None:
            text += f" against a threshold of {fmt(threshold, unit, signed=signed)}"
        if interval_text(record) != NONE:
            text += f", interval {interval_text(record)}"
        p_text = p_value_text(record)
        if p_text != NONE:
            text += f", p {p_text}" if p_text.startswith("<") else f", p = {p_text}"
        sentences.append(text + ".")
    elif record.get("metric"):
        sentences.append(f"No value was observed for {metric}.")
    if n_text(record) != NONE:
        sentences.append(f"Samples: {n_text(record)}.")
    if explanation and str(explanation) in reason:
        # The A/B code's reasons repeat the explanation; keep only what they add (the advice).
        reason = reason.split(str(explanation), 1)[1].lstrip(" :;.")
    verdicts = {
        "pass": "The gate passed",
        "fail": "The gate failed",
        "inconclusive": "The gate could not decide (inconclusive, blocks GO)",
        "error": "The gate errored (blocks GO)",
    }
    verdict = verdicts.get(outcome, f"Outcome: {outcome}")
    sentences.append(f"{verdict}: {reason.rstrip('.')}." if reason else f"{verdict}.")
    return " ".join(sentences)
