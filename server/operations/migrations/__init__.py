"""Alembic migrations of the operations database (``db.upgrade`` runs them)."""
