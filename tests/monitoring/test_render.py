"""The rendered monitoring: no drift from rollout.toml, valid for promtool, tests that bite."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_rollout.config import ConfigError, load_config
from pytest_rollout.monitoring.dashboards import dashboards, panel_queries
from pytest_rollout.monitoring.render import diff, render, write
from pytest_rollout.monitoring.settings import load_settings, slug
from pytest_rollout.monitoring.triggers import GATE_ONLY, TRIGGERS, phase_triggers
from pytest_rollout.promserver import PROMTOOL

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "gates" / "rollout.toml"
COMMITTED = REPO / "monitoring"
RUNBOOK = REPO / "docs" / "operations" / "dual_memory_rollout.md"
RUNBOOK_ANCHORS = {
    "phase-0-pre-deployment",
    "phase-1-shadow",
    "phase-2-canary",
    "phase-3-ramp-25",
    "phase-4-ramp-50",
    "phase-5-full-rollout",
    "rollback",
    "slo-burn-rate-alerts",
}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def fresh(env: str | None = None) -> dict[str, str]:
    return render(load_settings(load_config(CONFIG), env), "gates/rollout.toml")


def test_committed_files_match_a_fresh_render() -> None:
    stale = diff(fresh(), COMMITTED)
    assert stale == [], (
        f"monitoring/ drifted from gates/rollout.toml: {stale}; run "
        "`rollout render monitoring --config gates/rollout.toml --out monitoring/`"
    )


def test_render_is_deterministic() -> None:
    assert fresh() == fresh()


def test_committed_rules_pass_promtool_check_and_unit_tests() -> None:
    prom = COMMITTED / "prometheus"
    rules = sorted(p.name for p in prom.glob("*.rules.yml"))
    tests = sorted(p.name for p in prom.glob("*.test.yml"))
    assert rules == ["rollout.rules.yml", "slo.rules.yml"] and len(tests) == len(rules)
    check = promtool("check", "rules", *rules, cwd=prom)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = promtool("test", "rules", *tests, cwd=prom)
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_ci_profile_renders_valid_rules_with_short_windows(tmp_path: Path) -> None:
    write(fresh("ci"), tmp_path)
    prom = tmp_path / "prometheus"
    check = promtool("check", "rules", "rollout.rules.yml", "slo.rules.yml", cwd=prom)
    assert check.returncode == 0, check.stdout
    unit = promtool("test", "rules", "rollout.test.yml", cwd=prom)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    rules = yaml.safe_load((prom / "rollout.rules.yml").read_text())
    p99 = [
        r
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("alert") == "EngramRolloutP99Regression" and r["labels"]["phase"] == "phase2"
    ]
    assert len(p99) == 1 and "p99_rate2m" in p99[0]["expr"] and p99[0]["for"] == "10s"


def test_unit_tests_fail_when_a_rule_drifts_from_its_threshold(tmp_path: Path) -> None:
    """The generated promtool tests bite: loosen one abort threshold in the rules only."""
    prom = tmp_path / "prometheus"
    shutil.copytree(COMMITTED / "prometheus", prom)
    rules = (prom / "rollout.rules.yml").read_text()
    loosened = rules.replace(") > 0.02\n", ") > 0.2\n")
    assert loosened != rules
    (prom / "rollout.rules.yml").write_text(loosened)
    unit = promtool("test", "rules", "rollout.test.yml", cwd=prom)
    assert unit.returncode != 0 and "EngramRolloutP99Regression" in unit.stdout + unit.stderr


@pytest.mark.parametrize(
    ("alert", "old", "new"),
    [
        ("EngramRolloutCpuOverhead", ") > 10\n", ") > 100\n"),
        ("EngramRolloutMemoryOverhead", ") > 20\n", ") > 200\n"),
    ],
)
def test_unit_tests_fail_when_a_twin_overhead_rule_drifts(
    tmp_path: Path, alert: str, old: str, new: str
) -> None:
    """The overhead alerts compare with the baseline replica; their promtool cases bite too."""
    prom = tmp_path / "prometheus"
    shutil.copytree(COMMITTED / "prometheus", prom)
    rules_file = prom / "rollout.rules.yml"
    rules = yaml.safe_load(rules_file.read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == alert]
    assert 'job="engram-baseline"' in rule["expr"] and old in rule["expr"] + "\n"
    rule["expr"] = rule["expr"].replace(old.strip(), new.strip())
    rules_file.write_text(yaml.safe_dump(rules))
    unit = promtool("test", "rules", "rollout.test.yml", cwd=prom)
    assert unit.returncode != 0 and alert in unit.stdout + unit.stderr


def test_without_a_twin_overhead_compares_with_the_recorded_baseline(tmp_path: Path) -> None:
    """No baseline replica ([monitoring] twin_job unset): the phase 0 record, still tested."""
    path = tmp_path / "rollout.toml"
    text = CONFIG.read_text()
    assert text.count('twin_job = "engram-baseline"') == 1
    path.write_text(text.replace('twin_job = "engram-baseline"', ""))
    write(render(load_settings(load_config(path)), "rollout.toml"), tmp_path / "out")
    prom = tmp_path / "out" / "prometheus"
    unit = promtool("test", "rules", "rollout.test.yml", cwd=prom)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    rules = yaml.safe_load((prom / "rollout.rules.yml").read_text())
    by_name = {r.get("alert"): r for g in rules["groups"] for r in g["rules"]}
    cpu = by_name["EngramRolloutCpuOverhead"]["expr"]
    assert "job:process_cpu_seconds:rate_baseline" in cpu and "engram-baseline" not in cpu
    assert "EngramRolloutBaselineMissing" in by_name


def test_with_a_twin_a_missing_baseline_replica_pages() -> None:
    rules = committed_rules()
    absent = [
        r
        for r in rules
        if r.get("alert") == "EngramRolloutMetricAbsent"
        and r["labels"].get("replica") == "baseline"
    ]
    assert {r["labels"]["metric"] for r in absent} == {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    }
    assert all(
        'job="engram-baseline"' in r["expr"] and r["labels"]["severity"] == "page" for r in absent
    )


def committed_rules() -> list[dict[str, object]]:
    out = []
    for path in sorted((COMMITTED / "prometheus").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += group["rules"]
    return out


def test_every_alertable_abort_threshold_has_one_alert_per_phase() -> None:
    settings = load_settings(load_config(CONFIG))
    expected = {(phase, TRIGGERS[t].alert) for phase, t, _ in phase_triggers(settings)}
    alerts = [r for r in committed_rules() if "alert" in r]
    got = {
        (r["labels"]["phase"], r["alert"].removeprefix("Engram"))  # type: ignore[index,union-attr]
        for r in alerts
        if r["labels"].get("trigger")
    }  # type: ignore[union-attr]
    assert got == expected
    assert ("phase2", "RolloutP99Regression") in got and ("phase1", "RolloutMemoryOverhead") in got
    for phase in load_config(CONFIG).phases.values():
        for name in phase.thresholds:
            if name.endswith("_abort"):
                assert name in TRIGGERS or name in GATE_ONLY, name


def test_every_alert_has_severity_value_summary_and_runbook_anchor() -> None:
    alerts = [r for r in committed_rules() if "alert" in r]
    assert len(alerts) > 20
    for rule in alerts:
        labels, notes = rule["labels"], rule["annotations"]
        assert labels["severity"] in ("page", "ticket"), rule  # type: ignore[index]
        runbook, _, anchor = notes["runbook_url"].partition("#")  # type: ignore[index]
        assert runbook == "docs/operations/dual_memory_rollout.md" and anchor in RUNBOOK_ANCHORS
        if "trigger" in labels or "slo" in labels:  # type: ignore[operator]
            assert "{{ $value" in notes["summary"], rule  # type: ignore[index]


def test_comparison_alerts_keep_the_group_label() -> None:
    for rule in committed_rules():
        if rule.get("labels", {}).get("trigger") in (
            "p99_delta_abort_s",  # type: ignore[union-attr]
            "error_rate_delta_abort",
        ):
            assert "group_left" in rule["expr"] and "ignoring(group)" not in rule["expr"]  # type: ignore[operator]


def test_runbook_anchors_exist_in_the_runbook() -> None:
    settings = load_settings(load_config(CONFIG))
    derived = {settings.anchor(k) for k in settings.phases}
    assert derived <= RUNBOOK_ANCHORS
    headings = {
        slug(line.lstrip("#"))
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    assert headings >= RUNBOOK_ANCHORS, RUNBOOK_ANCHORS - headings


def test_dashboards_have_stable_uids_and_only_contract_or_rendered_series() -> None:
    settings = load_settings(load_config(CONFIG))
    boards = dashboards(settings)
    assert sorted(boards) == [
        "engram-rollout-canary",
        "engram-rollout-overview",
        "engram-rollout-shadow",
        "engram-rollout-slo",
    ]
    recorded = {r["record"] for r in committed_rules() if "record" in r}
    for uid, board in boards.items():
        assert (COMMITTED / "grafana" / f"{uid}.json").is_file()
        ids = [p["id"] for p in board["panels"]]
        assert ids == list(range(1, len(ids) + 1))
        for title, expr in panel_queries(board):
            assert "$__" not in expr, title  # must run on plain Prometheus too
            for name in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr):
                assert (
                    name.startswith(("engram_", "process_")) or name in recorded or name == "ALERTS"
                ), (uid, title, name)


BAD_MONITORING = [  # (text in rollout.toml, replaced by, expected in the message)
    (  # TOML's nan is a float: it must not pass as a latency objective
        "latency_objective_s = 0.05",
        "latency_objective_s = nan",
        "slo.latency_objective_s = nan: expected seconds > 0",
    ),
    (
        'alert_prefix = "Engram"',
        'alert_prefix = "Engram"\nbogus = 1',
        "unknown key monitoring.bogus",
    ),
    (
        'requests = "engram_recall_total"',
        'latncy = "engram_recall_total"',
        "unknown key monitoring.metrics.latncy",
    ),
    (
        "[monitoring.environments.ci]",
        "[monitoring.environments.nowhere]",
        "monitoring.environments.nowhere = 'nowhere'",
    ),
    ('abort_for = "10s"', 'abort_for = "soon"', "abort_for = 'soon'"),
    (
        'uid_prefix = "engram-rollout"',
        'uid_prefix = "Engram Rollout"',
        "monitoring.uid_prefix = 'Engram Rollout'",
    ),
    (  # the twin is another job than the service's own
        'twin_job = "engram-baseline"',
        'twin_job = "engram"',
        "monitoring.twin_job = 'engram': expected the job name of the baseline replica",
    ),
    (  # a typo in a phase name: the table, the value and every phase it could have meant
        'baseline_phase = "phase0"',
        'baseline_phase = "phsae0"',
        "[monitoring] baseline_phase = 'phsae0': 'phsae0' is not a phase "
        "(known phases: phase0, phase1, phase2, phase3, phase4, phase5)",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_MONITORING)
def test_bad_monitoring_tables_name_file_key_and_value(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = CONFIG.read_text()
    assert text.count(old) == 1
    path = tmp_path / "rollout.toml"
    path.write_text(text.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_settings(load_config(path), "ci")
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_baseline_phase_without_its_own_table_is_an_error(tmp_path: Path) -> None:
    # phase5 stays a known (built-in) phase, but monitoring renders only phases with a table.
    text = CONFIG.read_text().replace("[phases.phase5", "[phases.bake")
    path = tmp_path / "rollout.toml"
    path.write_text(text.replace('baseline_phase = "phase0"', 'baseline_phase = "phase5"'))
    with pytest.raises(ConfigError) as info:
        load_settings(load_config(path))
    assert "monitoring.baseline_phase = 'phase5': expected one of the phases (" in str(info.value)
    assert "phase5" not in str(info.value).split("expected")[1]


def test_an_abort_threshold_without_promql_mapping_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rollout.toml"
    path.write_text(
        CONFIG.read_text().replace(
            "[phases.phase2.thresholds]\n", "[phases.phase2.thresholds]\nrecall_drop_abort = 0.1\n"
        )
    )
    with pytest.raises(ConfigError, match="phase2.thresholds.recall_drop_abort"):
        render(load_settings(load_config(path)), "x")


def test_phases_with_the_same_flags_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rollout.toml"
    path.write_text(CONFIG.read_text().replace("blended_recall = 25\n", "blended_recall = 5\n", 1))
    with pytest.raises(ConfigError, match="overlapping flag states"):
        render(load_settings(load_config(path)), "x")


def test_cli_renders_and_checks_in_a_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "monitoring"
    cmd = [
        sys.executable,
        "-m",
        "pytest_rollout",
        "render",
        "monitoring",
        "--config",
        str(CONFIG),
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (out / "prometheus" / "rollout.rules.yml").is_file()
    assert subprocess.run([*cmd, "--check"], capture_output=True, timeout=60).returncode == 0
    (out / "grafana" / "engram-rollout-canary.json").write_text("{}\n")
    checked = subprocess.run([*cmd, "--check"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 1 and "engram-rollout-canary.json" in checked.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[monitoring]\ntitle = 3\n")
    failed = subprocess.run(
        [*cmd[:-4], "--config", str(broken), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 2 and "monitoring.title = 3" in failed.stderr


def test_every_abort_alert_carries_the_labels_rollout_serve_routes_on() -> None:
    """`rollout serve` rolls back on firing alerts labelled rollout_action="abort" + phase."""
    settings = load_settings(load_config(CONFIG))
    phases = set(settings.phases)
    aborts = [r for r in committed_rules() if "alert" in r and r["labels"].get("trigger")]  # type: ignore[union-attr]
    assert len(aborts) >= 9
    for rule in aborts:
        labels = rule["labels"]
        assert labels["rollout_action"] == "abort", rule["alert"]  # type: ignore[index]
        assert labels["phase"] in phases, rule["alert"]  # type: ignore[index]
    others = [r for r in committed_rules() if "alert" in r and not r["labels"].get("trigger")]  # type: ignore[union-attr]
    assert others and all("rollout_action" not in r["labels"] for r in others)  # type: ignore[operator]
