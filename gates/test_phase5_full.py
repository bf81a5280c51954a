"""Phase 5 — full rollout: all spaces on blended recall, stable over the hold, then the report.

    pytest gates -m phase5 --rollout-decision-json out/phase5.json --html out/phase5.html

With no control group left, stability is judged against absolute limits and the phase 0
baseline; the last gate writes the post-rollout summary (out/post_rollout_summary.md).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_rollout import inconclusive
from pytest_rollout.instants import rfc3339
from pytest_rollout.stats import proportion_estimate

import canary
from contract import require_no_episodes_lost

if TYPE_CHECKING:
    # types only: the fixture classes load when the gates run, as they would without annotations
    from pytest_rollout import Baseline, Flags, Gate, Phase, Prom, Rollout

pytestmark = pytest.mark.phase5


def _window(phase: Phase) -> str:
    return f"{int(phase.window_s)}s"


def test_all_spaces_on_blended_recall(flags: Flags, phase: Phase, gate: Gate) -> None:
    canary.cohort_flag_matches_phase(flags, phase, gate)


def test_error_rate_under_0_1pct_over_the_hold(prom: Prom, phase: Phase, gate: Gate) -> None:
    w = _window(phase)
    errors = prom.value(f"sum(increase({canary.ERRORS}[{w}]))")
    total = prom.value(f"sum(increase({canary.REQUESTS}[{w}]))")
    if total < phase.config.min_samples:
        inconclusive(f"only {total:.0f} recalls in the last {w}; need {phase.config.min_samples}")
    limit = phase.threshold("error_rate_max")
    est = proportion_estimate(
        min(round(errors), round(total)), round(total), alpha=phase.config.alpha / 2
    )
    gate.observe(
        metric="recall error rate",
        observed=est.estimate,
        threshold=limit,
        unit="",
        n={"all": int(total)},
        ci=est.ci,
        explanation=f"error rate {est.estimate:.4%} (upper bound {est.ci[1]:.4%}) over "
        f"{int(total)} recalls, limit {limit:.2%}",
    )
    assert est.ci[1] < limit, (
        f"error rate upper bound {est.ci[1]:.4%} is not below {limit:.2%}: do not close the "
        "rollout; investigate errors by outcome (dashboard: rollout overview)"
    )


def test_no_episodes_lost_over_the_hold(prom: Prom, phase: Phase, gate: Gate) -> None:
    require_no_episodes_lost(prom, phase, gate)


def test_p99_latency_within_5pct_of_phase0_baseline(baseline: Baseline, phase: Phase) -> None:
    baseline.check(
        metrics=("p99 latency",),
        window_s=phase.window_s,
        margin=phase.threshold("p99_regression_vs_baseline_pct_max") / 100,
    )


def test_post_rollout_summary_written(
    prom: Prom, phase: Phase, rollout: Rollout, gate: Gate, pytestconfig: pytest.Config
) -> None:
    w = _window(phase)
    figures = {
        "recall p50 (s)": f"histogram_quantile(0.5, sum by (le) (increase("
        f"{canary.LATENCY}_bucket[{w}])))",
        "recall p99 (s)": f"histogram_quantile(0.99, sum by (le) (increase("
        f"{canary.LATENCY}_bucket[{w}])))",
        "recalls": f"sum(increase({canary.REQUESTS}[{w}]))",
        "errors": f"sum(increase({canary.ERRORS}[{w}]))",
        "mean confidence": f"sum(increase({canary.CONFIDENCE}_sum[{w}])) / "
        f"sum(increase({canary.CONFIDENCE}_count[{w}]))",
        "episodes": "sum(engram_episodes)",
        "concepts": "sum(engram_concepts)",
        "bindings": "sum(engram_bindings)",
        "semantic fallbacks": f"sum(increase(engram_semantic_pathway_timeouts_total[{w}]))",
        "resident memory (bytes)": 'max(process_resident_memory_bytes{job="engram"})',
    }
    values = {name: prom.value(query) for name, query in figures.items()}
    out = Path(pytestconfig.rootpath) / "out" / "post_rollout_summary.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Dual-memory rollout: post-rollout summary",
        "",
        f"Evaluated at {rfc3339(rollout.at)} over the last {w} "
        f"(environment {rollout.environment}).",
        "",
        "| figure | value |",
        "|---|---|",
        *[f"| {name} | {value:.6g} |" for name, value in values.items()],
        "",
        "Attach this file, the phase 5 HTML report and its decision record to the post-mortem "
        "(docs/operations/checklists.md#post-mortem).",
    ]
    out.write_text("\n".join(lines) + "\n")
    (out.with_suffix(".json")).write_text(json.dumps(values, indent=2, sort_keys=True))
    gate.observe(
        metric="post-rollout summary figures",
        observed=len(values),
        threshold=len(figures),
        unit="figures",
        explanation=f"written to {out}",
    )
    assert all(math.isfinite(v) for v in values.values())
    assert out.read_text().count("\n|") >= len(figures)
