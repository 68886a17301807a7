"""The soak of benchmarks/soak.py, five minutes of it (issue 17, point 4): the whole stack
at ten times the demo's rate, no growth after the first minute, no sample lost. The
long run (2 h or more) is the same script with a longer --duration_s."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).parents[1] / "benchmarks" / "soak.py"


@pytest.mark.timeout(600)
def test_five_minute_soak():
    run = subprocess.run([sys.executable, str(SOAK), "--duration_s", "300", "--interval_s",
                          "30", "--warmup_s", "60"], capture_output=True, text=True,
                         timeout=540)
    print(run.stdout[-6000:], run.stderr[-3000:])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "soak: passed" in run.stdout
