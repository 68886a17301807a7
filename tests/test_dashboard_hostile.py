"""Names and strings from the plant are shown as text, never run (issue 17, point 8): a
registry whose every name is HTML with script, and samples whose product and state
strings are too, in headless Chromium on every view of the dashboard. (Tag names and
topic segments cannot carry markup: the contract's patterns refuse it, checked here.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import sync_playwright
from test_e2e import start_server

from shopfloor.contract import Batch, ContractError, DevicePath, Sample, decode_data
from shopfloor.storage.sqlite import SqliteStore
from shopfloor.supervisor import Supervisor, free_port

CHROMIUM = "/usr/bin/chromium"
CNC = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")
LINE = "acme/plant1/machining/line1"


def hostile(tag: str) -> str:
    """Markup that records ``tag`` in window.__xss if it ever runs."""
    return (f'{tag} <img src=x onerror="window.__xss.push(\'{tag}\')">'
            f"<script>window.__xss.push('{tag}-script')</script><b>bold</b>")


def registry() -> dict:
    return {"cluster": {"id": "demo-cluster", "name": hostile("cluster")},
            "enterprises": [{"id": "acme", "name": hostile("enterprise"), "sites": [
                {"id": "plant1", "name": hostile("site"), "workshops": [
                    {"id": "machining", "name": hostile("workshop"), "lines": [
                        {"id": "line1", "name": hostile("line"), "equipment": [
                            {"id": "cnc-01", "name": hostile("machine"),
                             "ideal_cycle_time_s": 0.5}]}]}]}]}]}


def test_markup_cannot_enter_through_tags_or_topics():
    now = time.time_ns()
    bad_tag = Batch("edge-1", 0, (Sample("<script>", now, 1),)).encode()
    with pytest.raises(ContractError) as e:
        decode_data(CNC.topic("data"), bad_tag, now_ns=now)
    assert e.value.reason == "bad_tag"
    ok = Batch("edge-1", 1, (Sample("t", now, 1),)).encode()
    with pytest.raises(ContractError) as e:
        decode_data("shopfloor/v1/acme/plant1/<b>/line1/cnc-01/data", ok, now_ns=now)
    assert e.value.reason == "bad_topic"


@pytest.mark.timeout(120)
def test_names_and_strings_show_as_text_in_every_view(tmp_path: Path):
    now = time.time_ns()
    with SqliteStore(tmp_path / "store.db") as store:
        store.write([(CNC, Sample("state", now - 60 * 10**9, "PRODUCING")),
                     (CNC, Sample("product", now - 60 * 10**9, hostile("product"))),
                     (CNC, Sample("part_count", now - 50 * 10**9, 1)),
                     (CNC, Sample("part_count", now - 10**9, 30)),
                     (CNC, Sample("state", now - 20 * 10**9, hostile("state")))])
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(registry()))
    cfg = tmp_path / "server.yaml"
    cfg.write_text(yaml.safe_dump({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(tmp_path / "store.db")}},
        "http": {"host": "127.0.0.1", "port": free_port()}, "oee": {"stale_after_s": 3600}}))
    sup = Supervisor(tmp_path / "logs")
    try:
        url = start_server(sup, "server", cfg)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page()
            page.add_init_script("window.__xss = [];")
            views = [("#/plant", "view-plant", ["enterprise", "site", "workshop", "line",
                                                "machine"]),
                     (f"#/asset/{LINE}", "view-asset", ["line", "machine"]),
                     (f"#/asset/{LINE}/cnc-01", "view-asset", ["machine"]),
                     ("#/cluster", "view-cluster", ["cluster", "enterprise"])]
            for route, testid, names in views:
                page.goto(f"{url}/{route}")
                # data-end: the view's update (its API calls) has filled it
                page.wait_for_selector(f'[data-testid="{testid}"][data-end]', timeout=20000)
                text = page.inner_text("body")
                for name in names:
                    assert hostile(name) in text, (route, name)  # the markup, as text
                assert page.locator("b", has_text="bold").count() == 0, route
                assert page.locator("img[src=x]").count() == 0, route
                assert page.evaluate("window.__xss") == [], route
                if testid == "view-asset":
                    box = page.locator('[data-testid="gantt"]').bounding_box()
                    assert box is not None
                    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + 30)  # tooltip
                    page.wait_for_timeout(300)
                    assert page.evaluate("window.__xss") == [], route
            browser.close()
    finally:
        sup.stop_all()
