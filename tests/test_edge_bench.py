"""The benchmark script runs end to end on loopback against the project's simulators with
tiny parameters (no rate is asserted: the figures depend on the machine) and prints both
lines beside EMQ Neuron's anchor."""

from __future__ import annotations

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


def test_bench_refuses_more_tags_than_a_simulated_plc_has():
    out = subprocess.run([sys.executable, "-m", "shopfloor.edge.bench", "--tags", "113"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "has 112 tags" in out.stderr
