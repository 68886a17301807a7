"""``shopfloor up`` as a user runs it: everything starts, data flows, Ctrl-C stops it all."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shopfloor.up import free_port


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = pred()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_up_runs_the_demo_and_stops_on_ctrl_c(tmp_path, broker):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopfloor", "up", "--workdir", str(tmp_path / "sf"),
         "--port", str(port), "--broker", broker, "--duration", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "shopfloor is up" in line:
                break
        out = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in out, out
        for service in ("broker", "plant", "gateway", "edge", "server", "data"):
            assert f"ready    {service}" in out, out
        url = f"http://127.0.0.1:{port}"

        def producing_machines():
            states = httpx.get(f"{url}/api/v1/state", params={"scope": "acme"}).json()
            live = [s for s in states if s["state"] not in ("OFFLINE", "NO_SHIFT")]
            return len(live) == len(states) == 5

        wait_for(producing_machines, 60, "all five machines to report a live state")

        def parts_counted():
            end = datetime.now(UTC)
            doc = httpx.get(f"{url}/api/v1/oee", params={
                "scope": "demo-cluster", "start": (end - timedelta(minutes=2)).isoformat(),
                "end": end.isoformat()}).json()
            return doc if doc["counts"]["total"] > 0 else None

        doc = wait_for(parts_counted, 60, "parts to be counted")
        assert 0 < doc["availability"] <= 1 and doc["quality"] > 0.5
        assert "/static/js/main.js" in httpx.get(url + "/").text
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "shopfloor stopped." in rest
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_demo_calendar_follows_the_simulated_shift():
    from shopfloor.server import calendar
    from shopfloor.server.calendar import CalendarConfig
    from shopfloor.up import demo_calendar

    now = datetime(2026, 11, 22, 21, 30, 0, tzinfo=UTC).timestamp()
    cal = CalendarConfig.model_validate(demo_calendar(
        {"timeline": {"lead_in_s": 3, "duration_s": 28800}}, now))
    ns = 10**9
    shifts = calendar.shifts(cal, int(now * ns), int((now + 2 * 86400) * ns))
    # starts after the lead-in, lasts the scenario's shift (past midnight), then daily
    assert [(n, s, e - s) for n, s, e, _ in shifts[:1]] == [
        ("demo", int((now + 3) * ns), 28800 * ns)]
    assert shifts[1][1] - shifts[0][1] == 86400 * ns
    assert demo_calendar({"timeline": {"lead_in_s": 0, "duration_s": 86400}}, now) is None
