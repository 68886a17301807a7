"""Screenshots of a running dashboard for the README (Debian's chromium via Playwright).

    shopfloor up &                       # let the demo run a few minutes first
    .venv/bin/python scripts/dashboard_screenshots.py http://127.0.0.1:8000 docs/screenshots
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

LINE = "acme%2Fplant1%2Fmachining%2Fline1"
VIEWS = {"overview": ("#/plant", "en"), "line": (f"#/asset/{LINE}", "en"),
         "cluster": ("#/cluster", "en"), "overview-zh": ("#/plant", "zh")}


def main(url: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
        for name, (route, lang) in VIEWS.items():
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script(f"localStorage.setItem('shopfloor.lang', '{lang}')")
            page.goto(f"{url}/{route}")
            page.wait_for_selector("section[data-end]", timeout=30000)
            page.wait_for_timeout(1000)  # charts finish drawing
            page.screenshot(path=out / f"{name}.png", full_page=True)
            print(out / f"{name}.png")
            page.close()
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), Path(sys.argv[2]))
