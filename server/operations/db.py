"""Opening the operations database: the URL (the config's, else a SQLite file beside the
embedded store), the engine, its migrations, sessions.

``open_database`` migrates to the newest schema (Alembic, ``migrations/``) unless the
config says not to; several servers starting at once take turns (PostgreSQL: an advisory
lock; SQLite: a lock file beside it), so each migration runs once.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from shopfloor.errors import ShopfloorError
from shopfloor.server.operations.config import DatabaseConfig

log = logging.getLogger("shopfloor.server.operations")
MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_FILE = "operations.db"
_MIGRATION_LOCK = 15_150_015  # PostgreSQL advisory lock key held while migrating


class DatabaseError(ShopfloorError, RuntimeError):
    """The operations database cannot be used (unreachable, or an older schema)."""


def database_url(cfg: DatabaseConfig, default_dir: Path) -> str:
    """The configured URL, or a SQLite file ``operations.db`` in ``default_dir``."""
    if cfg.url is not None:
        return cfg.url.get_secret_value()
    return f"sqlite:///{(default_dir / DEFAULT_FILE).resolve()}"


def describe(url: str) -> str:
    """The URL for logs: its password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def _alembic(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    """SQLite: one migrator at a time on this host (a lock file beside the database)."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate-lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def upgrade(engine: Engine) -> None:
    """Migrate to the newest schema, one migrator at a time (PostgreSQL: an advisory lock;
    SQLite: a lock file)."""
    with _file_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        command.upgrade(_alembic(conn), "head")


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic(None)).get_current_head()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


class Database:
    """The engine and its session factory; ``session()`` is one transaction."""

    def __init__(self, url: str, migrate: bool = True):
        self.url = url
        sqlite = make_url(url).get_backend_name() == "sqlite"
        self.engine = create_engine(
            url, pool_pre_ping=not sqlite,
            connect_args={"timeout": 30} if sqlite else {})
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            upgrade(self.engine)
        rev, head = current_revision(self.engine), head_revision()
        if rev != head:
            raise DatabaseError(f"operations database {describe(url)} is at schema {rev}, "
                                f"this server needs {head}: run `shopfloor db upgrade`")
        log.info("operations database %s (schema %s)", describe(url), rev)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on return, rolled back on an exception."""
        with self._sessions.begin() as s:
            yield s

    def close(self) -> None:
        self.engine.dispose()


def open_database(cfg: DatabaseConfig, default_dir: Path) -> Database:
    default_dir.mkdir(parents=True, exist_ok=True)
    return Database(database_url(cfg, default_dir), cfg.migrate)


def run_upgrade(config_path: Path | str) -> int:
    """``shopfloor db upgrade``: migrate the database of a server config."""
    from shopfloor.config import load_config
    from shopfloor.server.config import ServerConfig
    from shopfloor.server.operations.service import default_dir

    config_path = Path(config_path)
    cfg = load_config(config_path, ServerConfig)
    where = default_dir(cfg, config_path.parent)
    where.mkdir(parents=True, exist_ok=True)
    url = database_url(cfg.operations.database, where)
    engine = create_engine(url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        print(f"{describe(url)}: schema {before} -> {current_revision(engine)}")
    finally:
        engine.dispose()
    return 0
