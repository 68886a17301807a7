from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import services  # noqa: E402


@pytest.fixture
def mosquitto(tmp_path):
    with services.mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
def influxdb(tmp_path):
    with services.influxdb1(tmp_path / "influxdb") as db:
        yield db


@pytest.fixture
def victoria(tmp_path):
    with services.victoria_metrics(tmp_path / "vm") as vm:
        yield vm
