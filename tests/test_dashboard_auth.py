"""The dashboard on a server that needs a token (no anonymous read), in headless
Chromium: the token comes from ?token= (kept in localStorage) or from a prompt, and
both the REST calls and the live stream send it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import sync_playwright

from shopfloor.contract import DevicePath, Sample
from shopfloor.storage.sqlite import SqliteStore
from shopfloor.supervisor import free_port

CHROMIUM = "/usr/bin/chromium"
TOKEN = "dashboard-read-token-0123"
CNC = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")
CNC_ID = "acme/plant1/machining/line1/cnc-01"
SAMPLES = Path(__file__).parents[1] / "server"


@pytest.fixture
def server(tmp_path):
    now = time.time_ns()
    store = SqliteStore(tmp_path / "store.db")
    store.write([(CNC, Sample("state", now - 5 * 10**9, "DOWN")),
                 (CNC, Sample("part_count", now - 5 * 10**9, 10)),
                 (CNC, Sample("part_count", now - 10**9, 30))])
    store.close()
    (tmp_path / "registry.yaml").write_text((SAMPLES / "registry.sample.yaml").read_text())
    port = free_port()
    (tmp_path / "server.yaml").write_text(yaml.safe_dump({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(tmp_path / "store.db")}},
        "http": {"host": "127.0.0.1", "port": port},
        "oee": {"stale_after_s": 3600},
        "auth": {"anonymous_read": False,
                 "tokens": [{"name": "dashboard", "token": TOKEN, "scopes": ["read"]}]}}))
    proc = subprocess.Popen([sys.executable, "-m", "shopfloor", "server", "--config",
                             str(tmp_path / "server.yaml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        assert httpx.get(f"{url}/api/v1/assets").status_code == 401
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.mark.timeout(90)
def test_dashboard_sends_the_token_from_the_url_or_a_prompt(server):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        ctx = browser.new_context()
        page = ctx.new_page()
        problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.goto(f"{server}/?token={TOKEN}#/plant")
        # the state badge is filled from the live stream, the counts from /oee
        page.wait_for_selector(f'[data-testid="state-{CNC_ID}"][data-state="DOWN"]',
                               timeout=20000)
        page.wait_for_function(
            f"document.querySelector('[data-testid=\"total-{CNC_ID}\"]').textContent === '20'",
            timeout=20000)
        assert page.evaluate("localStorage.getItem('shopfloor.token')") == TOKEN
        assert problems == []
        page.goto(f"{server}/#/plant")  # no ?token= now: the stored one is used
        page.wait_for_selector(f'[data-testid="state-{CNC_ID}"][data-state="DOWN"]',
                               timeout=20000)
        assert problems == []

        fresh = browser.new_context().new_page()  # nothing stored: the page asks
        asked: list[str] = []

        def answer(dialog):
            asked.append(dialog.message)
            dialog.accept(TOKEN)

        fresh.on("dialog", answer)
        fresh.goto(f"{server}/#/plant")
        fresh.wait_for_selector(f'[data-testid="state-{CNC_ID}"][data-state="DOWN"]',
                                timeout=20000)
        assert len(asked) == 1 and "token" in asked[0]
        browser.close()
