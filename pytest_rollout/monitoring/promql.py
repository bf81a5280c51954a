"""PromQL building blocks shared by the rules and the dashboards: selectors, record names, numbers.

Record names follow Prometheus' ``level:metric:operations`` convention and are derived from the
metric names in ``[monitoring.metrics]``, so two services rendered into one Prometheus never clash.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_rollout.durations import format_duration
from pytest_rollout.monitoring.settings import MonitoringSettings

PHASE_ACTIVE = "job:rollout_phase:active"
BASELINE_HOLD = "1h"  # how long a recorded baseline survives a gap (e.g. a Prometheus restart)


def num(value: float) -> str:
    """A PromQL number with 12 significant digits: 14.4 * 0.001 is written 0.0144."""
    rounded = float(f"{value:.12g}")
    if rounded == int(rounded) and abs(rounded) < 1e15:
        return str(int(rounded))
    return repr(rounded)


def window(seconds: float) -> str:
    return format_duration(seconds)


def resource_series(role: str, w: str, selector: str) -> str:
    """Per series of ``selector``: RSS averaged over ``w`` ("rss"), or the CPU rate ("cpu")."""
    return f"avg_over_time({selector}[{w}])" if role == "rss" else f"rate({selector}[{w}])"


def strip_total(metric: str) -> str:
    return metric[: -len("_total")] if metric.endswith("_total") else metric


@dataclass(frozen=True)
class Q:
    """Selectors and record names for one rendered service."""

    s: MonitoringSettings

    def sel(self, metric: str, **matchers: str) -> str:
        parts = [f'job="{self.s.job}"']
        for label, value in matchers.items():
            op, text = ("!=", value[1:]) if value.startswith("!") else ("=", value)
            parts.append(f'{label}{op}"{text}"')
        return f"{metric}{{{','.join(parts)}}}"

    def twin(self, metric: str) -> str:
        """``metric`` of the baseline replica (``[monitoring] twin_job``)."""
        assert self.s.twin_job is not None
        return f'{metric}{{job="{self.s.twin_job}"}}'

    def grp(self, metric: str, group: str, **matchers: str) -> str:
        return self.sel(metric, **{self.s.group_label: group, **matchers})

    def flag(self, name: str) -> str:
        m = self.s.metrics
        return f"max by (job) ({self.sel(m.flag, **{m.flag_label: name})})"

    def phase_active(self, phase: str) -> str:
        return f'{PHASE_ACTIVE}{{job="{self.s.job}",phase="{phase}"}}'

    # -- record names ------------------------------------------------------------------------
    @property
    def by_group(self) -> str:
        return f"job, {self.s.group_label}"

    def rec_rate(self, w: str) -> str:
        return f"job_{self.s.group_label}:{strip_total(self.s.metrics.requests)}:rate{w}"

    def rec_error_ratio(self, w: str) -> str:
        requests = strip_total(self.s.metrics.requests)
        return f"job_{self.s.group_label}:{requests}_errors:ratio_rate{w}"

    def rec_quantile(self, q: str, w: str) -> str:
        return f"job_{self.s.group_label}:{self.s.metrics.latency}:{q}_rate{w}"

    def rec_quality(self, w: str) -> str:
        return f"job_{self.s.group_label}:{self.s.metrics.quality}:mean_rate{w}"

    def rec_job_error_ratio(self, w: str) -> str:
        return f"job:{strip_total(self.s.metrics.requests)}_errors:ratio_rate{w}"

    def rec_job_slow_ratio(self, w: str) -> str:
        return f"job:{self.s.metrics.latency}:slow_ratio_rate{w}"

    def rec_baseline(self, role: str) -> str:
        m = self.s.metrics
        return {
            "rss": f"job:{m.rss}:baseline",
            "cpu": f"job:{strip_total(m.cpu)}:rate_baseline",
            "p99": f"job:{m.latency}:p99_baseline",
        }[role]

    # -- expressions ---------------------------------------------------------------------------
    def error_ratio(self, w: str, by: str) -> str:
        """Share of requests whose outcome is not ok; 0 (not absent) when nothing failed."""
        m = self.s.metrics
        bad = self.sel(m.requests, **{m.outcome_label: "!" + m.ok_outcome})
        total = self.sel(m.requests)
        return (
            f"(\n  sum by ({by}) (rate({bad}[{w}]))\n  or\n"
            f"  sum by ({by}) (rate({total}[{w}])) * 0\n)\n"
            f"/\nsum by ({by}) (rate({total}[{w}]))"
        )

    def quantile(self, q: float, w: str, by: str, **matchers: str) -> str:
        bucket = self.sel(f"{self.s.metrics.latency}_bucket", **matchers)
        return f"histogram_quantile({num(q)}, sum by ({by}, le) (rate({bucket}[{w}])))"

    def volume(self, w_seconds: float, by: str) -> str:
        """Requests in the window: rate() is the window's increase divided by its length."""
        requests = self.sel(self.s.metrics.requests)
        return f"sum by ({by}) (rate({requests}[{window(w_seconds)}])) * {num(w_seconds)}"
