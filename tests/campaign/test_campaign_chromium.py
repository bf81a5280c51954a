"""The campaign page in real headless Chromium: hostile names and reasons show as text, none runs."""

from __future__ import annotations

from pathlib import Path

from tests.campaign.helpers import make_campaign
from tests.campaign.test_campaign_report import report
from tests.report.helpers import Node, dump_dom, parse

# Each payload marks <html data-xss-WHERE="1"> if it runs.
MARK = "document.documentElement.dataset.xss{}=1"
PAYLOADS = {
    "approval_reason": "<script>{}</script>",
    "approval_by": '"><img src=x onerror={}>',
    "role": "<svg onload={}>",
    "flag_reason": "</td></tr></table><img src=x onerror={}>",
    "actor": "<img src=x onerror={}>",
    "record_reason": '<iframe srcdoc="<script>parent.{}</script>"></iframe>',
    "look_gate": "<img src=x onerror={}>",
}
P = {where: shape.format(MARK.format(where.replace("_", ""))) for where, shape in PAYLOADS.items()}


def visible_text(dom: Node) -> str:
    parts: list[str] = []

    def walk(node: Node) -> None:
        if node.tag in ("script", "style", "template"):
            return
        for child in node.children:
            parts.append(child) if isinstance(child, str) else walk(child)

    walk(dom)
    return "".join(parts)


def test_hostile_names_and_reasons_render_as_text_and_never_run(tmp_path: Path) -> None:
    paths = make_campaign(tmp_path, hostile=P)
    done, out = report(tmp_path, paths)
    assert done.returncode == 0, done.stderr
    dom = parse(dump_dom(out, tmp_path / "chromium-profile"))
    page = dom.find("html")
    assert sorted(name for name in page.attrs if name.startswith("data-xss")) == []
    assert not dom.find_all("script") and not dom.find_all("iframe") and not dom.find_all("svg")
    assert [img.attrs.get("id") for img in dom.find_all("img")] == ["share-chart"]
    text = visible_text(dom)
    for where, payload in P.items():
        assert payload in text, f"{where} payload not shown literally"
    # where they belong: the approval in phase 2's summary, the flag reason in the timeline
    phase2 = dom.find("section", data_phase="phase2").text()
    assert P["approval_reason"] in phase2 and P["approval_by"] in phase2 and P["role"] in phase2
    assert P["flag_reason"] in dom.find("table", id="events").text()


def test_a_positive_control_shows_the_dump_would_catch_a_script(tmp_path: Path) -> None:
    """The same check on a page that does run its payload: the marker appears."""
    page = tmp_path / "control.html"
    page.write_text(f"<html><body><img src=x onerror={MARK.format('control')}></body></html>")
    dom = parse(dump_dom(page, tmp_path / "chromium-profile"))
    assert dom.find("html").attrs.get("data-xsscontrol") == "1"
