"""``shopfloor up`` as a user runs it: everything starts, data flows, Ctrl-C stops it all."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from services import sigint_default

from shopfloor.pids import PidDir, start_ticks
from shopfloor.supervisor import free_port


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
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=sigint_default)
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


def start_up(workdir, port: int, **popen) -> tuple[subprocess.Popen, str]:
    """``shopfloor up`` (Mosquitto) until it says it is up; (process, its output so far)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopfloor", "up", "--workdir", str(workdir), "--port",
         str(port), "--broker", "mosquitto", "--duration", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "shopfloor is up" in line or "error" in line.lower():
            break
    return proc, "".join(lines)


def services_of(workdir) -> dict[str, int]:
    return {p.name: p.pid for p in PidDir(workdir).alive() if p.name != "up"}


@pytest.mark.timeout(180)
def test_two_quick_sigints_stop_everything_even_when_sigint_was_ignored(tmp_path):
    """Ctrl-C twice within a second used to leave broker, plant and gateway running; and
    a `shopfloor up` started by a background script (SIGINT inherited as ignored) did
    not stop on SIGINT at all."""
    workdir = tmp_path / "sf"
    ignore = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    proc, out = start_up(workdir, free_port(), preexec_fn=ignore)
    try:
        assert "shopfloor is up" in out, out
        pids = services_of(workdir)
        assert set(pids) == {"broker", "plant", "gateway", "edge", "server"}
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "already stopping" in rest and "shopfloor stopped." in rest, rest
    assert {name: pid for name, pid in pids.items() if start_ticks(pid) is not None} == {}
    assert list((workdir / "pids").glob("*.pid")) == []
    # Mosquitto saved its persistence file at shutdown (as root it could not, before)
    assert (workdir / "mosquitto.db").stat().st_size > 0
    assert "Permission denied" not in (workdir / "logs" / "broker.log").read_text()


@pytest.mark.timeout(240)
def test_a_new_up_stops_what_a_killed_one_left_and_refuses_beside_a_live_one(tmp_path):
    workdir = tmp_path / "sf"
    first, out = start_up(workdir, free_port(), preexec_fn=sigint_default)
    assert "shopfloor is up" in out, out
    orphans = services_of(workdir)
    first.kill()  # `shopfloor up` dies; its services (own sessions) run on
    first.communicate(timeout=10)
    assert all(start_ticks(pid) is not None for pid in orphans.values())
    second, out = start_up(workdir, free_port(), preexec_fn=sigint_default)
    try:
        assert "stopping what a previous run left running: server (pid " \
            f"{orphans['server']}), edge (pid {orphans['edge']})" in out, out
        assert f"broker (pid {orphans['broker']})" in out
        assert "shopfloor is up" in out, out
        assert all(start_ticks(pid) is None for pid in orphans.values())
        third = subprocess.run(
            [sys.executable, "-m", "shopfloor", "up", "--workdir", str(workdir), "--port",
             str(free_port())], capture_output=True, text=True, timeout=60)
        assert third.returncode != 0
        assert f"another `shopfloor up` runs in {workdir}: up (pid {second.pid})" \
            in third.stderr + third.stdout, third
        assert set(services_of(workdir)) == {"broker", "plant", "gateway", "edge", "server"}
    finally:
        second.send_signal(signal.SIGINT)
        rest, _ = second.communicate(timeout=90)
    assert second.returncode == 0 and "shopfloor stopped." in rest, rest
    assert services_of(workdir) == {}
