"""Alembic's environment: migrate the connection ``db.upgrade`` hands over (there is no
alembic.ini; the URL never passes through Alembic's config)."""

from __future__ import annotations

from alembic import context

from shopfloor.server.operations.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
