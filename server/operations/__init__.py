"""What people write about the shop floor, in a relational database (SQLAlchemy 2 +
Alembic; SQLite embedded, PostgreSQL shared): the reason tree and stop classifications
with their audit trail (``reasons``, ``stops``), production orders and OEE targets
(``plans``), alert rules and alert history (``alerts``, ``delivery``, ``evaluator``).

``db.open_database(cfg, default_dir)`` opens (and migrates) it; the tables are in
``schema``, the migrations in ``migrations/``. DESIGN.md "Operations" says why.
"""
