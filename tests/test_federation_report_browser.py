"""The cluster's printable report in real headless Chromium (Debian's ``chromium``,
issue 16): every indicator's chart draws the API's figures, the Chinese page renders, and
the page prints to PDF. Saves ``report-en.png``, ``report-zh.png`` in the test's tmp dir
(``SHOPFLOOR_SCREENSHOTS=DIR``: there too, e.g. docs/screenshots). Run under
`flock /tmp/shopfloor-heavy.lock`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.test_federation_cluster import cluster, world  # noqa: F401 - the fixtures

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.timeout(120)


def test_the_report_renders_and_prints_in_chromium(cluster, tmp_path):  # noqa: F811
    c, _ = cluster
    api = c.get("/api/v1/cluster/history", params={"start": "2026-11"}).json()["periods"][0]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 900, "height": 1200})
        for lang in ("en", "zh"):
            html = c.get("/api/v1/cluster/report", params={"period": "2026-11",
                                                           "lang": lang}).text
            page.set_content(html)
            bars = page.evaluate("""() => [...document.querySelectorAll('section[data-indicator]')]
                .map(s => [s.dataset.indicator, [...s.querySelectorAll('svg')].map(
                  g => g.querySelectorAll('rect')[1].getBoundingClientRect().width)])""")
            assert [b[0] for b in bars] == [k for k in api["pooled"] if k not in ("gaps",
                                                                                   "note")]
            for ind, widths in bars:
                want = [r[ind] for r in api["enterprises"]] + [
                    api["pooled"][ind], api["mean_of_enterprises"][ind]]
                for w, v in zip(widths, want, strict=True):
                    assert w == pytest.approx(0 if v is None else min(v, 1) * 260, abs=0.6)
            out = tmp_path / f"report-{lang}.png"
            page.screenshot(path=str(out), full_page=True)
            assert out.stat().st_size > 10_000
            if lang == "zh":
                assert page.inner_text("h1").endswith("集群指标报告")
                pdf = page.pdf(format="A4")
                assert pdf[:5] == b"%PDF-" and len(pdf) > 5_000
            if os.environ.get("SHOPFLOOR_SCREENSHOTS"):
                shutil.copy(out, Path(os.environ["SHOPFLOOR_SCREENSHOTS"]) / out.name)
        browser.close()
