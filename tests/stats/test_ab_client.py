"""The AB client over a fake ``prom``: selector merging, fail-closed inputs, recording."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pytest_rollout.ab import AB, ABSettings, split_selector
from pytest_rollout.gate import GateRecord
from pytest_rollout.outcomes import Inconclusive


@dataclass(frozen=True)
class FakeSample:
    labels: dict[str, str]
    value: float


class FakeProm:
    def __init__(self, answers: dict[str, list[FakeSample]]) -> None:
        self.answers = answers
        self.sent: list[str] = []

    def vector(
        self, query: str, *, allow_empty: bool = False, allow_nan: bool = False
    ) -> list[FakeSample]:
        self.sent.append(query)
        for key, samples in self.answers.items():
            if key in query:
                return samples
        return []


def test_selectors_are_merged_with_the_cohort_label() -> None:
    prom = FakeProm(
        {
            'outcome!="ok", cohort=~"a|b"': [
                FakeSample({"cohort": "a"}, 10),
                FakeSample({"cohort": "b"}, 1),
            ],
            "x_total{cohort": [
                FakeSample({"cohort": "a"}, 20_000),
                FakeSample({"cohort": "b"}, 2_000),
            ],
        }
    )
    gate = GateRecord(nodeid="t")
    ab = AB(
        prom,
        gate,
        ABSettings(group_label="cohort", control="a", treatment="b", window="30m", min_samples=100),
    )
    c = ab.proportion_delta('x_total{outcome!="ok"}', "x_total", margin=0.01)
    assert prom.sent[0] == 'sum by (cohort) (increase(x_total{outcome!="ok", cohort=~"a|b"}[30m]))'
    assert prom.sent[1] == 'sum by (cohort) (increase(x_total{cohort=~"a|b"}[30m]))'
    assert c.n == {"control": 20_000, "treatment": 2_000}
    assert c.require() is c
    assert gate.extra["comparisons"][0]["kind"] == "proportion_delta"
    assert gate.n == {"control": 20_000, "treatment": 2_000}


def test_zero_traffic_is_inconclusive_not_pass() -> None:
    ab = AB(FakeProm({}), GateRecord(nodeid="t"), ABSettings())
    with pytest.raises(Inconclusive, match="no x_total"):
        ab.proportion_delta('x_total{outcome="error"}', "x_total", margin=0.001)
    with pytest.raises(Inconclusive, match="histogram data"):
        ab.quantile_delta("lat_seconds", q=0.99, margin=0.01)


def test_below_min_samples_abort_trigger_is_inconclusive() -> None:
    prom = FakeProm(
        {
            'outcome="error"': [
                FakeSample({"group": "control"}, 10),
                FakeSample({"group": "treatment"}, 50),
            ],
            "x_total{group": [
                FakeSample({"group": "control"}, 10_000),
                FakeSample({"group": "treatment"}, 200),
            ],
        }
    )
    c = AB(
        prom, GateRecord(nodeid="t", kind="abort"), ABSettings(min_samples=1000)
    ).proportion_delta('x_total{outcome="error"}', "x_total", margin=0.001)
    with pytest.raises(Inconclusive, match="need 1000 per group"):
        c.abort_if_worse()


def test_proven_regression_fails_with_an_actionable_message() -> None:
    prom = FakeProm(
        {
            'outcome="error"': [
                FakeSample({"group": "control"}, 10),
                FakeSample({"group": "treatment"}, 500),
            ],
            "x_total{group": [
                FakeSample({"group": "control"}, 10_000),
                FakeSample({"group": "treatment"}, 5_000),
            ],
        }
    )
    gate = GateRecord(nodeid="t", kind="abort")
    c = AB(prom, gate, ABSettings()).proportion_delta(
        'x_total{outcome="error"}', "x_total", margin=0.001
    )
    with pytest.raises(AssertionError, match="beyond the \\+0.1 pp margin.*hold the canary"):
        c.abort_if_worse()
    assert gate.p_value is not None and gate.p_value < 1e-6


def test_srm_uses_the_gauge_value_and_fails_on_mismatch() -> None:
    prom = FakeProm(
        {"spaces": [FakeSample({"group": "control"}, 950), FakeSample({"group": "treatment"}, 20)]}
    )
    c = AB(prom, GateRecord(nodeid="t"), ABSettings()).srm(
        "spaces", expected={"control": 0.95, "treatment": 0.05}
    )
    assert prom.sent == ['sum by (group) (spaces{group=~"control|treatment"})']
    with pytest.raises(AssertionError, match="sample ratio mismatch"):
        c.require()


def test_selector_already_naming_the_group_is_rejected() -> None:
    ab = AB(FakeProm({}), GateRecord(nodeid="t"), ABSettings())
    with pytest.raises(ValueError, match="adds the cohort label"):
        ab.quantile_delta('lat{group="treatment"}', q=0.5, margin=0.01)
    assert split_selector('a_b{x="1"}') == ("a_b", 'x="1"')
    with pytest.raises(ValueError):
        split_selector("rate(x[5m])")


def test_holm_family_splits_alpha() -> None:
    assert ABSettings(alpha=0.05, holm_family_size=5).alpha_per_side == pytest.approx(0.005)
