"""Counts people enter (rejects found at inspection, parts of a machine without a
counter) and their audit trail.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ASSET = 400


def upgrade() -> None:
    op.create_table(
        "count_entries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("machine", sa.String(ASSET), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("deleted_by", sa.String(200)),
        sa.Column("deleted_at", sa.BigInteger))
    op.create_index("ix_count_entries_at", "count_entries", ["at"])
    op.create_table(
        "count_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.Integer, sa.ForeignKey("count_entries.id"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("old_value", sa.Text),
        sa.Column("new_value", sa.Text),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False))
    op.create_index("ix_count_audit_entry_id", "count_audit", ["entry_id"])


def downgrade() -> None:
    op.drop_table("count_audit")
    op.drop_table("count_entries")
