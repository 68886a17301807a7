"""The operations database on SQLite and PostgreSQL: the migrations create exactly the
models, run twice harmlessly (also from two servers at once), and a server refuses a
database at another schema revision."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from shopfloor.server.operations.db import Database, DatabaseError, describe, head_revision
from shopfloor.server.operations.schema import Base


def test_migrations_create_exactly_the_models(database_url):
    db = Database(database_url)
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    db.close()
    again = Database(database_url)  # a second start migrates nothing
    assert again.dialect in ("sqlite", "postgresql")
    again.close()


def test_servers_starting_together_migrate_once(database_url):
    errors: list[BaseException] = []

    def start() -> None:
        try:
            Database(database_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    Database(database_url).close()


def test_a_database_at_another_revision_is_refused(database_url):
    Database(database_url).close()
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'zzzz'"))
    engine.dispose()
    with pytest.raises(DatabaseError, match="shopfloor db upgrade"):
        Database(database_url, migrate=False)
    assert head_revision() == "0002"


def test_passwords_stay_out_of_the_logged_url():
    assert "s3cret" not in describe("postgresql+psycopg://u:s3cret@db/shop")
