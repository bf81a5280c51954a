"""`rollout render argo|flagger`: schema-valid AnalysisTemplates, Flagger webhooks, deploy/ in step.

The AnalysisTemplate schema is Argo Rollouts' own CRD (vendored in data/, see its README).  The
schema allows unknown keys, so every key we write is also looked up in its properties.
"""

from __future__ import annotations

import copy
import shlex
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pytest_rollout.cli import main
from pytest_rollout.render_controllers import Target, argo_job, argo_web, flagger_webhooks

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "gates" / "rollout.toml"
CRD = Path(__file__).parent / "data" / "analysis-template-crd.yaml"
DEPLOY = REPO / "deploy"
URL = "http://pytest-rollout.rollouts.svc:8080"


@cache
def schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    assert crd["spec"]["names"]["kind"] == "AnalysisTemplate"
    found: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return found


def unknown_keys(doc: Any, node: dict[str, Any], path: str = "") -> Iterator[str]:
    """Key paths of ``doc`` that ``node`` (an OpenAPI schema) does not declare."""
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            yield from unknown_keys(item, node.get("items", {}), f"{path}[{i}]")
        return
    if not isinstance(doc, dict):
        return
    props = node.get("properties")
    if props is None:
        # Free-form maps (labels) declare their values; the top metadata is a plain ObjectMeta.
        if "additionalProperties" in node or node.get("x-kubernetes-preserve-unknown-fields"):
            return
        if path == "metadata":
            assert set(doc) <= {"name", "labels", "annotations", "namespace"}, doc
            return
        yield f"{path} (the schema declares no keys here)"
        return
    for key, value in doc.items():
        where = f"{path}.{key}" if path else key
        if key not in props:
            yield where
        else:
            yield from unknown_keys(value, props[key], where)


def check_against_crd(doc: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(schema()).validate(doc)
    assert list(unknown_keys(doc, schema())) == []


def web() -> dict[str, Any]:
    return argo_web(Target(phase="phase2", url=URL))


def job() -> dict[str, Any]:
    return argo_job(Target(phase="phase3", image="registry.example/pytest-rollout:0.1.0"))


def test_web_template_is_valid_for_the_crd_and_maps_decisions_to_argo_outcomes() -> None:
    doc = web()
    check_against_crd(doc)
    (metric,) = doc["spec"]["metrics"]
    web_provider = metric["provider"]["web"]
    assert web_provider["method"] == "POST"
    assert web_provider["url"] == f"{URL}/v1/phases/phase2/evaluate"
    assert web_provider["jsonPath"] == "{$.decision}"
    assert metric["successCondition"] == 'result == "GO"'
    assert metric["failureCondition"] == 'result == "ABORT"'
    # HOLD matches neither: Inconclusive, and one Inconclusive pauses the rollout.
    assert metric["inconclusiveLimit"] == 0 and metric["failureLimit"] == 0
    (header,) = web_provider["headers"]
    (arg,) = doc["spec"]["args"]
    assert header["value"] == "Bearer {{args." + arg["name"] + "}}"
    assert arg["valueFrom"]["secretKeyRef"]["key"] == "ROLLOUT_SERVE_TOKEN"


def test_job_template_is_valid_for_the_crd_and_runs_the_phase_once() -> None:
    doc = job()
    check_against_crd(doc)
    (metric,) = doc["spec"]["metrics"]
    spec = metric["provider"]["job"]["spec"]
    assert spec["backoffLimit"] == 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/pytest-rollout:0.1.0"
    command = container["command"]
    assert command[:3] == ["python", "-m", "pytest"] and command[4:6] == ["-m", "phase3"]


def test_several_measurements_carry_the_interval_argo_requires() -> None:
    doc = argo_web(Target(phase="phase4", url=URL, count=3, interval_s=300))
    check_against_crd(doc)
    (metric,) = doc["spec"]["metrics"]
    assert metric["count"] == 3 and metric["interval"] == "300s"


def test_the_key_check_catches_a_misspelt_field_the_schema_alone_accepts() -> None:
    doc = web()
    doc["spec"]["metrics"][0]["successCondtion"] = doc["spec"]["metrics"][0].pop("successCondition")
    jsonschema.Draft7Validator(schema()).validate(doc)  # the CRD lets it through ...
    assert list(unknown_keys(doc, schema())) == ["spec.metrics[0].successCondtion"]  # ... we not


def test_schema_validation_rejects_a_wrong_type() -> None:
    doc = copy.deepcopy(job())
    doc["spec"]["metrics"][0]["provider"]["job"]["spec"]["backoffLimit"] = "none"
    with pytest.raises(jsonschema.ValidationError, match="backoffLimit|'none'"):
        check_against_crd(doc)


def test_flagger_webhooks_gate_on_go_and_roll_back() -> None:
    hooks = flagger_webhooks(Target(phase="phase2", url=URL, timeout_s=60))["webhooks"]
    by_type = {h["type"]: h for h in hooks}
    assert set(by_type) == {
        "confirm-rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
        "rollback",
    }
    for kind in ("confirm-rollout", "confirm-traffic-increase", "confirm-promotion"):
        assert by_type[kind]["url"] == f"{URL}/v1/flagger/phase2/gate"
    assert by_type["rollback"]["url"] == f"{URL}/v1/flagger/phase2/rollback"
    assert len({h["name"] for h in hooks}) == 4
    for hook in hooks:
        assert hook["timeout"] == "60s"
        # Flagger sends metadata as a map of strings in the webhook payload.
        assert all(isinstance(v, str) for v in hook["metadata"].values())


def rendered_files() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.read_text().startswith("# Rendered by"))


def test_committed_deploy_manifests_equal_a_fresh_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the headers name --config relative to the repository
    files = rendered_files()
    assert {p.name for p in files} == {
        "argo-analysistemplate.yaml",
        "argo-analysistemplate-job.yaml",
        "flagger-canary-webhooks.yaml",
    }
    for path in files:
        first = path.read_text().splitlines()[0]
        argv = shlex.split(first.removeprefix("# Rendered by `rollout ").removesuffix("`."))
        out = tmp_path / path.name
        assert argv[2:4] == ["--config", "gates/rollout.toml"]
        assert main([*argv, "--out", str(out)]) == 0
        assert out.read_text() == path.read_text(), (
            f"deploy/{path.name} drifted; run: rollout {' '.join(argv)} --out deploy/{path.name}"
        )
    capsys.readouterr()


def test_every_deploy_manifest_parses_and_the_service_reaches_serve() -> None:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert len(loaded) == 1, path
        docs[path.name] = loaded[0]
    assert len(docs) == 5
    for name in ("argo-analysistemplate.yaml", "argo-analysistemplate-job.yaml"):
        check_against_crd(docs[name])
    deployment, service = docs["deployment.yaml"], docs["service.yaml"]
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == pod["metadata"]["labels"]
    (container,) = pod["spec"]["containers"]
    port = container["args"][container["args"].index("--port") + 1]
    assert (
        container["ports"][0]["containerPort"] == int(port) == service["spec"]["ports"][0]["port"]
    )
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    # The rendered manifests point at this Service.
    url = docs["argo-analysistemplate.yaml"]["spec"]["metrics"][0]["provider"]["web"]["url"]
    assert url.startswith(f"http://{service['metadata']['name']}.rollouts.svc:{port}/")


def test_dockerfile_runs_serve_with_the_gates_the_job_template_names() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["rollout", "serve"]' in text
    assert "COPY gates ./gates" in text and "WORKDIR /srv" in text
    command = job()["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]
    assert command["containers"][0]["command"][3] == "/srv/gates"


def rollout(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_rollout", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_cli_writes_checks_and_names_what_is_wrong(tmp_path: Path) -> None:
    out = tmp_path / "at.yaml"
    base = ("render", "argo", "--phase", "phase2", "--url", URL, "--config", str(CONFIG))
    assert rollout(*base, "--out", str(out)).returncode == 0
    assert rollout(*base, "--out", str(out), "--check").returncode == 0
    out.write_text(out.read_text().replace("phase2-gates", "phase2-gate"))
    stale = rollout(*base, "--out", str(out), "--check")
    assert stale.returncode == 1 and "differs from a fresh render" in stale.stderr
    job = ("render", "argo", "--config", str(CONFIG), "--phase", "phase2", "--provider", "job")
    job_out = tmp_path / "job.yaml"
    job_out.write_text("stale\n")
    stale_job = rollout(*job, "--image", "i:1", "--out", str(job_out), "--check", "--", "-x")
    assert stale_job.returncode == 1
    assert f"--image i:1 --out {job_out} -- -x" in stale_job.stderr  # rerunnable as printed

    bad_phase = rollout(
        "render", "flagger", "--phase", "phase9", "--url", URL, "--config", str(CONFIG)
    )
    assert bad_phase.returncode == 2 and "--phase 'phase9'" in bad_phase.stderr
    assert "phase0" in bad_phase.stderr
    bad_url = rollout(
        "render", "argo", "--phase", "phase2", "--url", f"{URL}/v1", "--config", str(CONFIG)
    )
    assert bad_url.returncode == 2 and "--url" in bad_url.stderr
    no_image = rollout(
        "render", "argo", "--phase", "phase2", "--provider", "job", "--config", str(CONFIG)
    )
    assert no_image.returncode == 2 and "--image" in no_image.stderr
    job_args = rollout(*base, "--", "-x")
    assert job_args.returncode == 2 and "--provider job" in job_args.stderr


def test_every_render_command_in_the_integrations_doc_runs(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "integrations.md").read_text()
    joined = doc.replace("\\\n", " ")
    commands = [
        shlex.split(line.strip())
        for line in joined.splitlines()
        if line.strip().startswith(("rollout render argo", "rollout render flagger"))
    ]
    assert len(commands) == 3
    for argv in commands:
        out = argv.index("--out") + 1
        argv[out] = str(tmp_path / Path(argv[out]).name)
        config = argv.index("--config") + 1
        argv[config] = str(REPO / argv[config])
        assert main(argv[1:]) == 0, argv
