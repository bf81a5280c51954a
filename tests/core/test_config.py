"""rollout.toml / [tool.pytest_rollout]: markers, settings precedence, strict validation."""

from __future__ import annotations

import datetime as dt
import math
import string
import tomllib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rollout.config import ConfigError, RolloutConfig, parse_config
from pytest_rollout.durations import format_elapsed
from pytest_rollout.instants import rfc3339
from tests.core.helpers import gate_module, gate_source, output, read_record, run_gates

# --------------------------------------------------------------------------------------------
# markers


def test_builtin_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = run_gates(pytester, "--markers")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.phase0: rollout gate of phase0 (pre-deployment)*",
            "@pytest.mark.phase1: rollout gate of phase1 (shadow)*",
            "@pytest.mark.phase2: rollout gate of phase2 (canary)*",
            "@pytest.mark.phase3: rollout gate of phase3 (ramp)*",
            "@pytest.mark.phase4: rollout gate of phase4 (ramp)*",
            "@pytest.mark.phase5: rollout gate of phase5 (full rollout)*",
            "@pytest.mark.abort: this gate is an abort trigger*",
        ]
    )


def test_phases_from_rollout_toml_are_registered(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".toml",
        rollout="""
        [phases.bake]
        name = "overnight bake"
        description = "hold 25 % for 12 hours before the next step"

        [phases.phase2]
        name = "blended canary"
        description = "blended recall for 5 % of spaces"
    """,
    )
    result = run_gates(pytester, "--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.phase2: rollout gate of phase2 (blended canary): blended recall for 5 %*",
            "@pytest.mark.bake: rollout gate of bake (overnight bake): hold 25 % for 12 hours*",
        ]
    )
    pytester.makepyfile(test_gates=gate_module(gate_source("test_bake_gate", "pass", phase="bake")))
    record_path = pytester.path / "decision.json"
    result = run_gates(
        pytester, "--strict-markers", "-m", "bake", "--rollout-decision-json", str(record_path)
    )
    assert result.ret == 0, output(result)
    record = read_record(record_path)
    assert record["phase"] == "bake" and record["decision"] == "GO"


def test_unknown_phase_marker_fails_under_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gates=gate_module(gate_source("test_gate", "pass", phase="phase9")))
    result = run_gates(pytester, "--strict-markers")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*'phase9' not found in `markers` configuration option*"])


@pytest.mark.parametrize("marker", ["phase2('canary')", "phase2(window='1h')"])
def test_phase_marker_with_arguments_is_a_usage_error(
    pytester: pytest.Pytester, marker: str
) -> None:
    pytester.makepyfile(
        test_gates=f"""
        import pytest

        @pytest.mark.{marker}
        def test_gate():
            pass
    """
    )
    result = run_gates(pytester, "--strict-markers")
    assert result.ret == 4, output(result)
    assert "test_gates.py::test_gate: @pytest.mark.phase2 takes no arguments" in result.stderr.str()
    assert "Traceback" not in output(result)


def test_abort_marker_with_arguments_is_refused_also_under_xdist(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_gates="""
        import pytest

        @pytest.mark.phase2
        @pytest.mark.abort(threshold=0.02)
        def test_trigger():
            pass
    """
    )
    serial = run_gates(pytester)
    assert serial.ret == 4
    assert "@pytest.mark.abort takes no arguments" in serial.stderr.str()
    # Under xdist a worker cannot raise a usage error; the gate errors and blocks GO.
    parallel = run_gates(pytester, xdist=True)
    assert parallel.ret not in (0, 3, 10), output(parallel)
    assert "INTERNALERROR" not in output(parallel)
    assert "@pytest.mark.abort takes no arguments" in output(parallel)


# --------------------------------------------------------------------------------------------
# precedence: CLI > env > ini > rollout.toml

PRECEDENCE_TOML = """
    [rollout]
    default_environment = "from_toml"

    [environments.from_toml]
    prometheus_url = "http://toml.example:9090"

    [environments.from_ini]
    prometheus_url = "http://toml-ini-env.example:9090"

    [environments.from_env]

    [environments.from_cli]
"""

LEVELS = ["toml", "ini", "env", "cli"]


@pytest.mark.parametrize("highest", LEVELS)
def test_precedence_cli_env_ini_toml(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, highest: str
) -> None:
    pytester.makefile(".toml", rollout=PRECEDENCE_TOML)
    pytester.makepyfile(test_gates=gate_module(gate_source("test_gate", "pass")))
    present = LEVELS[: LEVELS.index(highest) + 1]
    args: list[str] = []
    if "ini" in present:
        pytester.makeini("""
            [pytest]
            rollout_env = from_ini
            rollout_prometheus_url = http://ini.example:9090
        """)
    if "env" in present:
        monkeypatch.setenv("ROLLOUT_ENV", "from_env")
        monkeypatch.setenv("ROLLOUT_PROMETHEUS_URL", "http://env.example:9090")
    if "cli" in present:
        args += ["--rollout-env", "from_cli", "--rollout-prometheus-url", "http://cli.example:9090"]
    record_path = pytester.path / "decision.json"
    result = run_gates(pytester, *args, "--rollout-decision-json", str(record_path))
    assert result.ret == 0, output(result)
    record = read_record(record_path)
    assert record["environment"] == f"from_{highest}"
    expected_url = {
        "toml": "http://toml.example:9090",
        "ini": "http://ini.example:9090",
        "env": "http://env.example:9090",
        "cli": "http://cli.example:9090",
    }[highest]
    assert record["context"]["prometheus_url"] == expected_url


def test_environment_url_used_when_no_override(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--rollout-env picks the profile whose prometheus_url applies."""
    pytester.makefile(".toml", rollout=PRECEDENCE_TOML)
    pytester.makepyfile(test_gates=gate_module(gate_source("test_gate", "pass")))
    record_path = pytester.path / "decision.json"
    result = run_gates(
        pytester, "--rollout-env", "from_ini", "--rollout-decision-json", str(record_path)
    )
    assert result.ret == 0, output(result)
    record = read_record(record_path)
    assert record["context"]["prometheus_url"] == "http://toml-ini-env.example:9090"


def test_pyproject_table_is_read(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("""
        [tool.pytest_rollout.phases.phase2]
        window = "15m"
    """)
    pytester.makepyfile(test_gates=gate_module(gate_source("test_gate", "pass")))
    record_path = pytester.path / "decision.json"
    result = run_gates(
        pytester,
        "--rollout-at",
        "2026-11-25T14:00:00Z",
        "--rollout-decision-json",
        str(record_path),
    )
    assert result.ret == 0, output(result)
    assert read_record(record_path)["window"]["start"] == "2026-11-25T13:45:00Z"


# --------------------------------------------------------------------------------------------
# configuration errors: a UsageError naming file, key and value, never a traceback

BAD_CONFIGS = [
    # (rollout.toml text, extra args, fragments the message must contain)
    ("[phases.phase2]\nwindw = '1h'\n", [], ["rollout.toml", "phases.phase2.windw"]),
    ("[rollout]\ndefault_env = 'staging'\n", [], ["rollout.toml", "rollout.default_env"]),
    ("[tresholds]\np99 = 0.01\n", [], ["rollout.toml", "tresholds"]),
    (
        "[phases.phase2]\nmin_samples = 'many'\n",
        [],
        ["rollout.toml", "phases.phase2.min_samples", "'many'"],
    ),
    ("[phases.phase2]\nalpha = 2.0\n", [], ["rollout.toml", "phases.phase2.alpha", "2.0"]),
    ("[phases.phase2]\nsequential = 'yes'\n", [], ["phases.phase2.sequential", "'yes'"]),
    ("[thresholds]\np99_margin_s = '10ms'\n", [], ["thresholds.p99_margin_s", "'10ms'"]),
    (
        "[phases.phase2]\nwindow = '5 minutes'\n",
        [],
        ["rollout.toml", "phases.phase2.window", "'5 minutes'"],
    ),
    ("[phases.phase2]\nwindow = '999999999y'\n", [], ["phases.phase2.window", "'999999999y'"]),
    ("[environments.staging]\ntimeout = '-1s'\n", [], ["environments.staging.timeout", "'-1s'"]),
    (
        "[environments.staging]\nmax_staleness = 300\n",
        [],
        ["environments.staging.max_staleness", "300"],
    ),
    (
        "[environments.staging]\nprometheus_url = 'prom:9090'\n",
        [],
        ["environments.staging.prometheus_url", "'prom:9090'"],
    ),
    (
        "[environments.staging]\n[environments.staging.phases.phase2]\nwindow = 'soon'\n",
        [],
        ["environments.staging.phases.phase2.window", "'soon'"],
    ),
    ("[rollout]\ndefault_environment = 'prod'\n", [], ["rollout.toml", "'prod'"]),
    (
        "[environments.staging]\n",
        ["--rollout-env", "production"],
        ["rollout.toml", "'production'", "staging"],
    ),
    ("[phases.phase2\nwindow = '1h'\n", [], ["rollout.toml", "not valid TOML"]),
    ("phases = 3\n", [], ["rollout.toml", "phases", "3"]),
]


@pytest.mark.parametrize(
    ("toml", "args", "fragments"),
    BAD_CONFIGS,
    ids=[f"{i}-{f[-1]}" for i, (_, _, f) in enumerate(BAD_CONFIGS)],
)
def test_config_error_is_a_usage_error(
    pytester: pytest.Pytester, toml: str, args: list[str], fragments: list[str]
) -> None:
    pytester.makefile(".toml", rollout=toml)
    pytester.makepyfile(test_gates=gate_module(gate_source("test_gate", "pass")))
    result = run_gates(pytester, "-m", "phase2", *args)
    assert result.ret == 4, output(result)
    message = result.stderr.str()
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "Traceback" not in output(result)


def test_unknown_environment_from_env_var(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makefile(".toml", rollout="[environments.staging]\n[environments.production]\n")
    pytester.makepyfile(test_gates=gate_module(gate_source("test_gate", "pass")))
    monkeypatch.setenv("ROLLOUT_ENV", "prodution")
    result = run_gates(pytester)
    assert result.ret == 4
    assert "'prodution'" in result.stderr.str()
    assert "known: production, staging" in result.stderr.str()
    assert "Traceback" not in output(result)


def test_pyproject_error_names_the_table(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("""
        [tool.pytest_rollout.phases.phase2]
        min_samples = -5
    """)
    pytester.makepyfile(test_gates=gate_module(gate_source("test_gate", "pass")))
    result = run_gates(pytester)
    assert result.ret == 4
    message = result.stderr.str()
    assert "pyproject.toml [tool.pytest_rollout]" in message
    assert "phases.phase2.min_samples = -5" in message
    assert "Traceback" not in output(result)


def test_explicit_missing_config_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gates=gate_module(gate_source("test_gate", "pass")))
    result = run_gates(pytester, "--rollout-config", "nowhere/rollout.toml")
    assert result.ret == 4
    assert "nowhere/rollout.toml" in result.stderr.str()


# --------------------------------------------------------------------------------------------
# phase names: a typo in a phase-keyed table is an error, never a silent fall back to defaults

DEFAULT_KNOWN = "phase0, phase1, phase2, phase3, phase4, phase5"


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_typo_in_environment_phase_override_is_a_usage_error(
    pytester: pytest.Pytester, xdist: bool
) -> None:
    # The reported defect: the override was dropped and phase2 went GO on the 1 h default window.
    pytester.makefile(
        ".toml",
        rollout="""
        [environments.ci]
        [environments.ci.phases.phsae2]
        window = "2m"
    """,
    )
    pytester.makepyfile(test_gates=gate_module(gate_source("test_gate", "pass")))
    result = run_gates(pytester, "-m", "phase2", "--rollout-env", "ci", xdist=xdist)
    assert result.ret == 4, output(result)
    message = result.stderr.str()
    assert "rollout.toml" in message, message
    assert "[environments.ci.phases.phsae2]" in message, message
    assert f"known phases: {DEFAULT_KNOWN}" in message, message
    assert "Traceback" not in output(result)


def test_unknown_override_phase_names_the_table_and_every_known_phase() -> None:
    raw = {
        "phases": {"bake": {"window": "12h"}},
        "environments": {"ci": {}, "staging": {"phases": {"bkae": {"window": "5m"}}}},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "rollout.toml")
    assert str(info.value) == (
        "rollout.toml: [environments.staging.phases.bkae]: 'bkae' is not a phase "
        f"(known phases: {DEFAULT_KNOWN}, bake); fix the name or define [phases.bkae]"
    )


def test_overrides_of_built_in_and_defined_phases_are_accepted() -> None:
    raw = {
        "phases": {"bake": {"window": "12h"}},
        "environments": {
            "ci": {"phases": {"bake": {"window": "5m"}, "phase3": {"min_samples": 10}}}
        },
    }
    config = parse_config(raw, "rollout.toml")
    assert config.phase("bake", "ci").window_s == 300.0
    assert config.phase("phase3", "ci").min_samples == 10
    assert config.phase("phase3").min_samples == 1000
    assert config.known_phases == (
        "phase0",
        "phase1",
        "phase2",
        "phase3",
        "phase4",
        "phase5",
        "bake",
    )


# --------------------------------------------------------------------------------------------
# Hypothesis: any TOML document is either a RolloutConfig or a ConfigError

KNOWN_KEYS = [
    "rollout",
    "phases",
    "environments",
    "thresholds",
    "default_environment",
    "group_label",
    "control",
    "treatment",
    "phase2",
    "phase0",
    "bake",
    "staging",
    "name",
    "description",
    "window",
    "duration",
    "min_samples",
    "alpha",
    "cohort_percent",
    "sequential",
    "holm",
    "flags",
    "rollback",
    "prometheus_url",
    "timeout",
    "retries",
    "max_staleness",
    "audit_log",
    "webhook",
    "service_url",
    "blended_recall",
    "p99_delta_s",
]

PHASE_FIELDS = [
    "name",
    "description",
    "window",
    "duration",
    "min_samples",
    "alpha",
    "cohort_percent",
    "sequential",
    "holm",
    "flags",
    "rollback",
    "thresholds",
]
ENV_FIELDS = [
    "prometheus_url",
    "flags",
    "timeout",
    "retries",
    "max_staleness",
    "audit_log",
    "webhook",
    "service_url",
    "phases",
]

keys = st.one_of(
    st.sampled_from(KNOWN_KEYS),
    st.text(alphabet=string.ascii_letters + string.digits + "_- .é", min_size=1, max_size=8),
)
durations = st.from_regex(
    r"-?\d{1,12}(\.\d{1,3})?(ms|s|m|h|d|w|y)( ?\d{1,3}[smh])?", fullmatch=True
)
scalars = st.one_of(
    st.sampled_from(
        [
            "30s",
            "5m",
            "1h30m",
            "7d",
            "0s",
            "-1m",
            "1.5h",
            "soon",
            "",
            "staging",
            "http://127.0.0.1:9090",
            "https://user:pw@prom/",
            "prom:9090",
            "999999999y",
        ]
    ),
    durations,
    st.text(max_size=10),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1)),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
# Mostly the real field names with mostly plausible values, so many documents get deep into
# the schema (and parse), with some wrong values and unknown keys at every level.


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` four times out of five, otherwise any scalar."""
    return st.integers(0, 4).flatmap(lambda i: scalars if i == 0 else valid)


def mostly_key(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A key: ``valid`` four times out of five, otherwise any key."""
    return st.integers(0, 4).flatmap(lambda i: keys if i == 0 else valid)


def with_junk(base: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    junk = st.integers(0, 4).flatmap(
        lambda i: st.dictionaries(keys, values, min_size=1, max_size=2) if i == 0 else st.just({})
    )
    return st.builds(lambda b, j: {**j, **b}, base, junk)


threshold_names = mostly_key(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True))
flag_states = st.dictionaries(keys, mostly(st.booleans() | st.floats(0, 100)), max_size=3)
phase_fields = {
    "name": mostly(st.text(min_size=1, max_size=8)),
    "description": mostly(st.text(min_size=1, max_size=8)),
    "window": mostly(durations),
    "duration": mostly(durations),
    "min_samples": mostly(st.integers(-5, 10**6)),
    "alpha": mostly(st.floats(0, 1)),
    "cohort_percent": mostly(st.floats(-1, 101)),
    "sequential": mostly(st.booleans()),
    "holm": mostly(st.booleans()),
    "flags": flag_states,
    "rollback": flag_states,
    "thresholds": st.dictionaries(threshold_names, mostly(st.floats()), max_size=3),
}
phase_tables = with_junk(st.fixed_dictionaries({}, optional=phase_fields))
override_tables = with_junk(
    st.fixed_dictionaries(
        {},
        optional={
            k: phase_fields[k]
            for k in ("window", "duration", "min_samples", "alpha", "cohort_percent")
        },
    )
)
env_fields = {
    "prometheus_url": mostly(st.sampled_from(["http://127.0.0.1:9090", "https://p/x"])),
    "flags": mostly(st.text(min_size=1, max_size=8)),
    "timeout": mostly(durations),
    "retries": mostly(st.integers(-2, 5)),
    "max_staleness": mostly(durations),
    "audit_log": scalars,
    "webhook": scalars,
    "service_url": scalars,
    "phases": st.dictionaries(
        st.sampled_from(["phase0", "phase2", "bake"]) | keys, override_tables, max_size=2
    ),
}
env_tables = with_junk(st.fixed_dictionaries({}, optional=env_fields))
phase_keys = mostly_key(st.sampled_from(["phase0", "phase2", "bake", "staging"]))
valid_ish = st.fixed_dictionaries(
    {},
    optional={
        "rollout": st.fixed_dictionaries(
            {},
            optional={
                "default_environment": st.sampled_from(["staging", "bake"]) | scalars,
                "group_label": scalars,
                "control": scalars,
                "treatment": scalars,
            },
        ),
        "phases": st.dictionaries(phase_keys, phase_tables, max_size=3),
        "environments": st.dictionaries(phase_keys, env_tables, max_size=2),
        "thresholds": st.dictionaries(keys, st.floats() | scalars, max_size=3),
    },
)
documents = with_junk(valid_ish)


def _toml_key(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return _toml_key(value).replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def to_toml(document: dict[str, Any]) -> str:
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in document.items())


def _control_chars_escaped(text: str) -> str:
    return "".join(c if c >= " " or c in "\n" else f"\\u{ord(c):04x}" for c in text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_toml_document_is_a_config_or_a_config_error(document: dict[str, Any]) -> None:
    text = to_toml(document)
    try:
        raw = tomllib.loads(_control_chars_escaped(text))
    except tomllib.TOMLDecodeError:
        return  # our little serialiser's limits, not the plugin's
    try:
        config = parse_config(raw, "generated.toml")
    except ConfigError as exc:
        assert str(exc).startswith("generated.toml"), str(exc)
        return
    assert isinstance(config, RolloutConfig)
    # A config that parsed must also answer every question the plugin asks of it.
    for env in [None, *config.environments]:
        for key in [
            *config.phases,
            "phase2",
            *(config.environments[env].phase_overrides if env else {}),
        ]:
            phase = config.phase(key, env)
            assert phase.window_s > 0 and phase.min_samples >= 1
            rfc3339(1_795_000_000 - phase.window_s)  # the record's window start must exist
    for name, value in config.thresholds.items():
        assert config.threshold(name) == value


def test_hypothesis_generator_reaches_valid_configs() -> None:
    """The property above is only worth something if valid documents come out too."""
    doc = {
        "rollout": {"default_environment": "staging"},
        "environments": {"staging": {"timeout": "1s", "phases": {"phase2": {"window": "5m"}}}},
        "phases": {"phase2": {"window": "1h", "thresholds": {"p99_delta_s": 0.01}}},
    }
    config = parse_config(tomllib.loads(to_toml(doc)), "generated.toml")
    assert config.phase("phase2", "staging").window_s == 300.0
    assert config.threshold("p99_delta_s", "phase2") == 0.01


def test_elapsed_time_formats_zero_and_refuses_negative_or_nan() -> None:
    assert [format_elapsed(s) for s in (0.0, 0.49, 0.6, 59.6, 3600.0)] == [
        "0s", "0s", "1s", "1m", "1h",
    ]  # fmt: skip
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="zero or more"):
            format_elapsed(bad)
