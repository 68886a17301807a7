"""The benchmark script runs end to end on loopback against the project's simulators with
tiny parameters (no rate is asserted: the figures depend on the machine) and prints both
lines beside EMQ Neuron's anchor."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)


def test_bench_prints_modbus_and_opcua_figures_beside_neurons():
    out = subprocess.run(
        [sys.executable, "-m", "shopfloor.edge.bench", "--seconds", "1", "--devices", "2",
         "--tags", "5", "--opcua-tags", "6", "--opcua-servers", "2"], capture_output=True,
        text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("modbus polling   2 devices x 5 tags"), out.stdout
    assert lines[1].startswith("opcua subscribe  6 tags changing every 1 s, 2 asyncua servers"), \
        out.stdout
    assert lines[2].startswith("opcua + MQTT     6 tags") and "PUBACK" in lines[2], out.stdout
    for line in lines[:3]:
        figures = line.rsplit("): ", 1)[1] if "): " in line else line.split(": ", 1)[1]
        rate = float(figures.split(" tags/s")[0].replace(",", ""))
        cpu = float(figures.split(", ")[1].split(" CPU-s")[0])
        assert rate > 0 and cpu > 0, line
        assert line.endswith(" CPU-s/s") and "x Neuron)" in line, line
    assert lines[3].startswith("EMQ Neuron") and lines[3].endswith(
        "15,000 tags/s, 0.0827 CPU-s per 1,000 tags"), out.stdout
    assert "1.24 CPU-s per s" in lines[4], out.stdout


def test_bench_against_node_opcua_servers_prints_the_opcua_lines_only():
    """``--opcua-server node``: the load comes from node-opcua (tests/peers), the values the
    servers wrote are counted; ``--runs`` leaves the Modbus line out."""
    out = subprocess.run(
        [sys.executable, "-m", "shopfloor.edge.bench", "--seconds", "1", "--opcua-tags", "6",
         "--opcua-servers", "2", "--opcua-server", "node", "--runs", "opcua,mqtt"],
        capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("opcua subscribe  6 tags changing every 1 s, 2 node servers"), \
        out.stdout
    assert lines[1].startswith("opcua + MQTT     6 tags") and lines[2].startswith("EMQ Neuron")
    for line in lines[:2]:
        wrote = float(re.search(r"([\d,]+) (values|written)/s", line)[1].replace(",", ""))
        rate = float(line.rsplit("): ", 1)[1].split(" tags/s")[0].replace(",", ""))
        assert wrote > 0 and rate > 0, line


def test_bench_refuses_an_unknown_run():
    out = subprocess.run([sys.executable, "-m", "shopfloor.edge.bench", "--runs", "opcua,x"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "unknown ['x']" in out.stderr


def test_bench_refuses_more_tags_than_a_simulated_plc_has():
    out = subprocess.run([sys.executable, "-m", "shopfloor.edge.bench", "--tags", "113"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "has 112 tags" in out.stderr
