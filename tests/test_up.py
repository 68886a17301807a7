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
        assert "/api/v1/oee" in httpx.get(url + "/").text
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "shopfloor stopped." in rest
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/healthz", timeout=2)
