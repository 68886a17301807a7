"""The benchmark script runs end to end on loopback with tiny parameters (no rate is
asserted: the figures depend on the machine) and prints both lines."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)


def test_bench_prints_modbus_and_opcua_figures():
    out = subprocess.run(
        [sys.executable, "-m", "shopfloor.edge.bench", "--seconds", "1", "--devices", "2",
         "--tags", "5", "--opcua-tags", "5"], capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("modbus polling   2 devices x 5 tags"), out.stdout
    assert lines[1].startswith("opcua subscribe  5 tags"), out.stdout
    for line in lines:
        rate = float(line.split(": ")[1].split(" tags/s")[0].replace(",", ""))
        assert rate > 0, line
