"""Acceptance of the built-in dashboard in real headless Chromium (Debian's ``chromium``
driven by Playwright) on the stack ``shopfloor up`` starts: a short simulated shift.

While the shift runs: live state changes reach the page (latency measured from the
simulator's ground truth and from the API's first sight of the change), the views
render, the language switches and persists. After the shift (data final): every
number a view shows equals the API's for the window the view states. The browser
console stays free of errors throughout. Screenshots go to the test's tmp dir
(docs/screenshots comes from scripts/dashboard_screenshots.py on a longer run).
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml
from playwright.sync_api import Page, sync_playwright
from services import sigint_default

from shopfloor.supervisor import free_port
from shopfloor.up import DEMO_SCENARIO

CHROMIUM = "/usr/bin/chromium"
SHIFT_S = 50
LEAD_S = 3  # NO_SHIFT before and after the shift
ROOT = "demo-cluster"
LINE = "acme/plant1/machining/line1"
MACHINE = f"{LINE}/cnc-02"
KPIS = ("oee", "availability", "performance", "quality")
LOSSES = ("failures", "setups", "small_stops", "slow_cycles", "process_rejects",
          "startup_rejects")
METRICS = ("equipment_digitalization_rate", "networking_rate", "key_process_nc_rate", "oee")

# Records every change of a live state badge: (id, state, since, epoch ms).
RECORD_CHANGES = """
window.__changes = [];
const last = {};
const scan = () => document.querySelectorAll("[data-state]").forEach(el => {
  const id = el.dataset.testid.slice("state-".length);
  if (last[id] !== el.dataset.state) {
    window.__changes.push({id, state: el.dataset.state, since: el.dataset.since,
                           first: !(id in last), t: Date.now()});
    last[id] = el.dataset.state;
  }
});
new MutationObserver(scan).observe(document.body,
  {subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"]});
scan();
"""

# One consistent reading of a view: its window and the text of every data-testid.
SNAPSHOT = """sel => {
  const v = document.querySelector(sel);
  const cells = {};
  v.querySelectorAll("[data-testid]").forEach(el => {
    cells[el.dataset.testid] = el.textContent.trim();
  });
  return {start: v.dataset.start, end: v.dataset.end, cells,
          intervals: v.querySelector("[data-testid=gantt]")?.dataset.intervals,
          buckets: v.querySelector("[data-testid=trend-1h]")?.dataset.buckets};
}"""


class Stack:
    """``shopfloor up`` as a subprocess; its output is read on a thread."""

    def __init__(self, workdir: Path, scenario: Path, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.truth = workdir / "truth.jsonl"
        self.lines: list[str] = []
        self.up = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shopfloor", "up", "--workdir", str(workdir), "--port",
             str(port), "--scenario", str(scenario), "--duration", "150"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=sigint_default)  # stop() sends SIGINT
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if "shopfloor is up" in line:
                self.up.set()

    def api(self, path: str, **params) -> dict | list:
        r = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        assert r.status_code == 200, (path, params, r.text)
        return r.json()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)


@pytest.fixture
def stack(tmp_path):
    scenario = yaml.safe_load(DEMO_SCENARIO.read_text())
    scenario["timeline"] = {"lead_in_s": LEAD_S, "duration_s": SHIFT_S, "lead_out_s": LEAD_S}
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    s = Stack(tmp_path / "sf", path, free_port())
    try:
        assert s.up.wait(60), "".join(s.lines)
        yield s
    finally:
        s.stop()
    assert s.proc.returncode == 0, "".join(s.lines)


def first_seen_states(stack: Stack, stop: threading.Event, seen: dict) -> None:
    """When the API first shows each (machine, since) state sample: epoch ms."""
    with httpx.Client(timeout=5) as c:
        while not stop.is_set():
            now = time.time() * 1000
            for s in c.get(f"{stack.url}/api/v1/state", params={"scope": ROOT}).json():
                seen.setdefault((s["id"], s["since"]), now)
            time.sleep(0.1)


def wait_for_the_end_of(truth: Path, timeout: float) -> None:
    """Until the simulator has logged every machine's states to the end of its run."""
    deadline = time.monotonic() + timeout
    while True:
        records = [json.loads(x) for x in truth.read_text().splitlines()]
        head = records[0]
        run_end = head["t0"] + (LEAD_S + SHIFT_S + LEAD_S) * 10**9
        ended = {r["machine"] for r in records if r["type"] == "state" and r["end"] >= run_end}
        if ended == {m["asset_id"] for m in head["machines"]}:
            return
        assert time.monotonic() < deadline, "the simulated run did not end"
        time.sleep(0.5)


def truth_starts(path: Path) -> dict[tuple[str, str], list[int]]:
    """Start times (epoch ms) of each machine's true state intervals, by (machine, state)."""
    out: dict[tuple[str, str], list[int]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["type"] == "state":
            out.setdefault((r["machine"], r["state"]), []).append(r["start"] / 1e6)
    return out


def shows(text: str, value: float | None, percent: bool) -> bool:
    """The text shows ``value`` at its displayed precision ("—" for null)."""
    if value is None:
        return text == "—"
    if percent:
        return abs(float(text.removesuffix("%").strip()) - 100 * value) <= 0.05 + 1e-9
    return int(text.replace(",", "")) == round(value)


def check_kpis(cells: dict, doc: dict, key: str) -> None:
    for k in KPIS:
        assert shows(cells[f"{k}-{key}"], doc[k], True), (k, key, cells[f"{k}-{key}"], doc[k])
    assert shows(cells[f"total-{key}"], doc["counts"]["total"], False), key
    assert shows(cells[f"reject-{key}"], doc["counts"]["reject"], False), key


def walk(node: dict):
    yield node
    for c in node.get("children", []):
        yield from walk(c)


def wait_view(page: Page, sel: str, after_ms: float | None = None) -> dict:
    """Snapshot of a view once it has data (with its window ending after ``after_ms``)."""
    deadline = time.monotonic() + 20
    while True:
        snap = page.evaluate(SNAPSHOT, sel) if page.query_selector(sel) else None
        if snap and snap["end"] and (after_ms is None or
                                     _ms(snap["end"]) > after_ms):
            return snap
        assert time.monotonic() < deadline, f"{sel} shows no data"
        time.sleep(0.2)


def _ms(iso: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def shot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=tmp_path / f"{name}.png", full_page=True)
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000  # a rendered page, not blank


def shown_equal(page: Page, stack: Stack, route: str, sel: str, check) -> None:
    """Open a view and ``check(snapshot, window)``; on a mismatch look again, twice
    (a sample still in flight when the view read the API), then fail."""
    page.goto(f"{stack.url}/{route}")
    for attempt in range(3):
        snap = wait_view(page, sel, after_ms=time.time() * 1000)
        try:
            check(snap, {"start": snap["start"], "end": snap["end"]})
            return
        except AssertionError:
            if attempt == 2:
                raise
            time.sleep(1)


def check_plant(stack: Stack, ids: list[str], snap: dict, win: dict) -> None:
    for i in ids:
        check_kpis(snap["cells"], stack.api("oee", scope=i, **win), i)


def check_asset(stack: Stack, scope: str, snap: dict, win: dict) -> None:
    doc = stack.api("oee", scope=scope, **win)
    for k in KPIS:
        assert shows(snap["cells"][f"card-{k}"], doc[k], True), (scope, k)
    for k in ("total", "good", "reject"):
        assert shows(snap["cells"][f"card-{k}"], doc["counts"][k], False), (scope, k)
    losses = stack.api("losses", scope=scope, **win)
    for k in LOSSES:
        assert abs(float(snap["cells"][f"loss-{k}"].split()[0])
                   - losses["losses_s"][k]) <= 0.05 + 1e-9, (scope, k)
    timeline = stack.api("timeline", scope=scope, **win)
    assert int(snap["intervals"]) == sum(len(e["intervals"])
                                         for e in timeline["equipment"]) > 1
    trend = stack.api("trend", scope=scope, granularity="1h", **win)
    assert int(snap["buckets"]) == len(trend["buckets"]) >= 1


def check_cluster(stack: Stack, snap: dict, win: dict) -> None:
    for m in METRICS:
        doc = stack.api("compare", scope=ROOT, metric=m, **(win if m == "oee" else {}))
        for e in doc["enterprises"]:
            assert shows(snap["cells"][f"cmp-{m}-{e['id']}"], e[m], True), (m, e)
        assert shows(snap["cells"][f"cmp-{m}-pooled"], doc["pooled"], True), m
        assert shows(snap["cells"][f"cmp-{m}-mean"], doc["mean_of_enterprise_rates"], True)
        for i, p in enumerate(doc["published"]):
            assert shows(snap["cells"][f"pub-{m}-{i}"], p["value_percent"] / 100, True)
        assert f"pub-{m}-{len(doc['published'])}" not in snap["cells"]


@pytest.mark.e2e
@pytest.mark.timeout(170)
def test_dashboard_in_chromium(stack, tmp_path):
    problems: list[str] = []
    seen: dict = {}
    stop_polling = threading.Event()
    poller = threading.Thread(target=first_seen_states, args=(stack, stop_polling, seen),
                              daemon=True)
    poller.start()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{stack.url}/#/plant")
        plant = "[data-testid=view-plant]"
        wait_view(page, plant)
        page.evaluate(RECORD_CHANGES)

        # live: state changes on the simulated machines reach the page
        t_end = time.monotonic() + 15
        while time.monotonic() < t_end:
            time.sleep(0.5)
        shot(page, tmp_path, "overview")
        changes = [c for c in page.evaluate("window.__changes") if not c["first"]]

        # line and machine views, cluster view, Chinese labels (still live)
        page.goto(f"{stack.url}/#/asset/{quote(LINE, safe='')}")
        page.wait_for_function("document.querySelector('[data-testid=gantt]')"
                               "?.dataset.intervals > 0", timeout=20000)
        shot(page, tmp_path, "line")
        page.select_option("[data-testid=window]", "1h")  # the window follows the choice
        page.wait_for_function("(v => Date.parse(v.dataset.end) - Date.parse(v.dataset.start)"
                               " === 3600000)(document.querySelector('[data-testid=view-asset]'))",
                               timeout=20000)
        page.select_option("[data-testid=window]", "30d")  # a month: by day, the last day
        page.wait_for_function("(v => Date.parse(v.dataset.end) - Date.parse(v.dataset.start)"
                               " === 30 * 86400000)(document.querySelector("
                               "'[data-testid=view-asset]'))", timeout=20000)
        page.wait_for_function("document.querySelector('[data-testid=trend-title]')"
                               ".textContent === 'Trend by day'", timeout=20000)
        page.select_option("[data-testid=window]", "shift")
        page.goto(f"{stack.url}/#/cluster")
        wait_view(page, "[data-testid=view-cluster]")
        shot(page, tmp_path, "cluster")
        page.goto(f"{stack.url}/#/plant")
        assert page.inner_text("nav a[data-view=plant]") == "Plant overview"
        page.click("[data-testid=lang]")
        assert page.inner_text("nav a[data-view=plant]") == "工厂总览"
        assert page.inner_text("[data-testid=lang]") == "English"
        wait_view(page, plant)
        headers = page.inner_text(f"{plant} thead")
        assert "设备综合效率" in headers and "OEE" not in headers
        page.reload()  # the choice persists
        assert page.inner_text("nav a[data-view=plant]") == "工厂总览"
        wait_view(page, plant)
        shot(page, tmp_path, "overview-zh")
        page.click("[data-testid=lang]")
        assert page.inner_text("nav a[data-view=plant]") == "Plant overview"

        # the state-change latency (acceptance: within 2 s)
        wait_for_the_end_of(stack.truth, SHIFT_S + 30)
        stop_polling.set()
        truth = truth_starts(stack.truth)
        e2e, dash = [], []
        for c in changes:
            if c["state"] == "OFFLINE":
                continue
            starts = [s for s in truth.get((c["id"], c["state"]), []) if s <= c["t"]]
            assert starts, c
            e2e.append(c["t"] - max(starts))
            api_first = seen.get((c["id"], c["since"]))
            if api_first is not None:  # else the 10 Hz poller missed it (loaded machine)
                dash.append(c["t"] - api_first)
        print(f"\n{len(e2e)} state changes; machine -> page ms: median "
              f"{statistics.median(e2e):.0f}, max {max(e2e):.0f}; API -> page ms: median "
              f"{statistics.median(dash):.0f}, max {max(dash):.0f}")
        assert len(e2e) >= 8 and len(dash) >= len(e2e) / 2, changes
        assert max(dash) <= 2000, dash           # the dashboard's part, every change
        assert statistics.median(e2e) <= 2000, e2e  # machine to page, typical change

        # after the shift the data are final: every number shown equals the API's
        ids = [a["id"] for a in walk(stack.api("assets")) if a["level"] in (
            "cluster", "line", "equipment")]
        assert len(ids) == 1 + 2 + 5
        shown_equal(page, stack, "#/plant", plant,
                    lambda snap, win: check_plant(stack, ids, snap, win))
        for scope in (LINE, MACHINE):
            shown_equal(page, stack, f"#/asset/{quote(scope, safe='')}",
                        "[data-testid=view-asset]",
                        lambda snap, win, scope=scope: check_asset(stack, scope, snap, win))
        shown_equal(page, stack, "#/cluster", "[data-testid=view-cluster]",
                    lambda snap, win: check_cluster(stack, snap, win))
        browser.close()
    assert problems == [], problems
