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


@pytest.fixture(scope="session")
def postgresql():
    """One PostgreSQL server for the session; tests take databases of their own."""
    with services.postgresql() as pg:
        yield pg


_DATABASES = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """An empty operations database, SQLite and PostgreSQL in turn (the same tests pass
    on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'operations.db'}"
    pg = request.getfixturevalue("postgresql")
    return pg.create_database(f"test_{next(_DATABASES)}")
