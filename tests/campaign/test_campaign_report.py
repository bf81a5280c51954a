"""`rollout campaign report` end to end in a subprocess: the page, its badges, its exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.campaign.helpers import make_campaign
from tests.report.helpers import Node, parse

ROOT = Path(__file__).resolve().parents[2]


def report(
    tmp_path: Path, paths: dict[str, Path], **env: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "site" / "campaign.html"
    command = [
        sys.executable,
        "-m",
        "pytest_rollout",
        "campaign",
        "report",
        "--audit-log",
        str(paths["log"]),
        "--records",
        str(paths["records"]),
        "--out",
        str(out),
    ]
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=environ, check=False
    )
    return done, out


def rows(page: Node) -> list[str]:
    return [" ".join(tr.text().split()) for tr in page.find("table", id="events").find_all("tr")]


def test_a_verified_campaign_exits_0_with_every_phase_event_and_link(tmp_path: Path) -> None:
    paths = make_campaign(tmp_path)
    done, out = report(tmp_path, paths)
    assert done.returncode == 0, done.stderr
    page = parse(out.read_text())
    integrity = page.find("section", id="integrity")
    assert integrity.attrs["data-state"] == "verified"
    chain = integrity.find("span", cls="badge").text()
    assert chain == "verified"
    assert "hash chain verified over" in integrity.text()
    assert "5 of 5 digest(s) verified" in integrity.text()  # 4 records + the watch look's
    events = rows(page)
    assert any("rollback by gate: blended_recall 5 → 0" in r for r in events), events
    assert any("rollback by alert EngramRecallP99High" in r for r in events), events
    assert any("approved as service owner by bob" in r for r in events), events
    assert any("watch look 1: HOLD" in r for r in events), events
    assert sum("digest verified" in r for r in events) == 5
    assert not any("baseline.json" in r for r in events)  # not a decision record
    phases = [s.attrs["data-phase"] for s in page.find_all("section", cls="phase")]
    assert phases == ["phase0", "phase2", "phase5"]
    phase2 = page.find("section", data_phase="phase2")
    text = " ".join(phase2.text().split())
    assert "Held14m50s (until the final decision" in text, text  # since +600 s, ABORT at +1490 s
    assert "approved as service owner by bob" in text
    links = [a.attrs["href"] for a in phase2.find_all("a")]
    assert "../records/phase2.html" in links and "../records/phase2-regression.html" in links
    assert "../records/watch-phase2/looks/1/report.html" not in links  # not written
    figures = {
        tr.find("th").text(): tr for tr in page.find("table", id="key-figures").find_all("tr")[1:]
    }
    assert "+0.4 ms" in figures["p99 latency"].text() and "+0.9 ms" in figures["p99 latency"].text()
    assert "not recorded" in figures["confidence"].text()
    assert "no later look measured it" in figures["p50 latency"].text()  # phase 2 only
    assert page.find("img", id="share-chart").attrs["src"].startswith("data:image/png;base64,")
    assert "http://" not in out.read_text() and "https://" not in out.read_text()  # self-contained


def test_a_changed_record_fails_loudly_and_the_page_marks_it_red(tmp_path: Path) -> None:
    paths = make_campaign(tmp_path)
    record_path = paths["records"] / "phase2-regression.json"
    record = json.loads(record_path.read_text())
    record["decision"] = "GO"  # someone hides the ABORT
    record_path.write_text(json.dumps(record))
    done, out = report(tmp_path, paths)
    assert done.returncode == 1
    assert f"NOT VERIFIED {record_path}: the record was changed after it was written" in done.stderr
    page = parse(out.read_text())
    assert page.find("section", id="integrity").attrs["data-state"] == "failed"
    assert str(record_path) in page.find("ul", id="problems").text()
    red = [" ".join(tr.text().split()) for tr in page.find_all("tr", cls="failed")]
    assert len(red) == 1 and "DIGEST NOT VERIFIED" in red[0] and "phase2-regression.json" in red[0]
    # its figures are not evidence: the phase's final look is marked untrustworthy
    assert "digest NOT verified" in page.find("section", data_phase="phase2").text()


def test_a_tampered_audit_log_fails_loudly_and_the_page_marks_the_chain_red(
    tmp_path: Path,
) -> None:
    paths = make_campaign(tmp_path)
    lines = paths["log"].read_text().splitlines()
    edited = json.loads(lines[4])
    assert edited["kind"] == "approval"
    edited["reason"] = "approved (edited afterwards)"
    lines[4] = json.dumps(edited)
    paths["log"].write_text("\n".join(lines) + "\n")
    done, out = report(tmp_path, paths)
    page = parse(out.read_text())
    assert "approved (edited afterwards)" in page.text()  # the page is written whatever happens
    assert done.returncode == 1, done.stderr
    assert f"NOT VERIFIED {paths['log']}:" in done.stderr
    integrity = page.find("section", id="integrity")
    assert integrity.attrs["data-state"] == "failed"
    assert integrity.find("span", cls="badge").text() == "BROKEN"
    assert "hash chain broken" in integrity.find("ul", id="problems").text()


def test_an_unreadable_record_and_a_missing_audit_log_fail(tmp_path: Path) -> None:
    paths = make_campaign(tmp_path)
    (paths["records"] / "phase3.json").write_text('{"phase": "phase3", "decis')  # torn write
    paths["log"].unlink()
    done, out = report(tmp_path, paths)
    assert done.returncode == 1
    assert "phase3.json" in done.stderr and "audit log" in done.stderr
    assert out.exists()


def test_secrets_in_reasons_and_the_environment_never_reach_the_page(tmp_path: Path) -> None:
    token = "s3cr3t-deploy-token-value"
    paths = make_campaign(
        tmp_path,
        hostile={
            "approval_reason": f"checked https://grafana.example/d/x?token={token}",
            "flag_reason": f"phase 2 by {token}",
        },
    )
    done, out = report(tmp_path, paths, ROLLOUT_DEPLOY_TOKEN=token)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert token not in text
    assert "[redacted]" in text
