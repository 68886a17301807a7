"""The first schema: reasons, stop segments and their audit, orders, targets, alert rules,
alerts and their delivery events.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ASSET = 400


def _segment_ref() -> list[sa.Column]:
    """The columns naming a stop's segment (``schema._SegmentRef``)."""
    return [sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("machine", sa.String(ASSET), nullable=False),
            sa.Column("stop_start", sa.BigInteger, nullable=False),
            sa.Column("segment_start", sa.BigInteger, nullable=False)]


def _stamp(what: str) -> list[sa.Column]:
    """Who did ``what`` (created, updated) and when (ns)."""
    return [sa.Column(f"{what}_by", sa.String(200), nullable=False),
            sa.Column(f"{what}_at", sa.BigInteger, nullable=False)]


def upgrade() -> None:
    op.create_table(
        "reasons",
        sa.Column("enterprise", sa.String(64), primary_key=True),
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("parent", sa.String(64)),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("name_zh", sa.String(200)),
        sa.Column("loss", sa.String(32), nullable=False),
        sa.Column("planned", sa.Boolean, nullable=False),
        sa.Column("position", sa.Integer, nullable=False))
    op.create_table(
        "stop_segments", *_segment_ref(),
        sa.Column("reason", sa.String(64)),
        sa.Column("comment", sa.Text),
        *_stamp("updated"),
        sa.UniqueConstraint("machine", "stop_start", "segment_start"))
    op.create_table(
        "stop_audit", *_segment_ref(),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("old_value", sa.Text),
        sa.Column("new_value", sa.Text),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False))
    op.create_index("ix_stop_audit_stop", "stop_audit", ["machine", "stop_start"])
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("order_no", sa.String(64), nullable=False, unique=True),
        sa.Column("line", sa.String(ASSET), nullable=False),
        sa.Column("product", sa.String(64), nullable=False),
        sa.Column("planned_qty", sa.Integer, nullable=False),
        sa.Column("planned_start", sa.BigInteger, nullable=False),
        sa.Column("planned_end", sa.BigInteger, nullable=False),
        *_stamp("created"))
    op.create_index("ix_orders_line", "orders", ["line"])
    op.create_table(
        "targets",
        sa.Column("scope", sa.String(ASSET), primary_key=True),
        sa.Column("oee", sa.Float, nullable=False),
        *_stamp("updated"))
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(ASSET), nullable=False),
        sa.Column("state", sa.String(32)),
        sa.Column("for_s", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float),
        sa.Column("enabled", sa.Boolean, nullable=False),
        *_stamp("created"))
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.Integer, sa.ForeignKey("alert_rules.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("asset", sa.String(ASSET), nullable=False),
        sa.Column("open_key", sa.String(ASSET + 24), unique=True),
        sa.Column("opened_at", sa.BigInteger, nullable=False),
        sa.Column("resolved_at", sa.BigInteger),
        sa.Column("value", sa.Float),
        sa.Column("message", sa.Text, nullable=False))
    op.create_index("ix_alerts_opened_at", "alerts", ["opened_at"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("webhook_done", sa.Boolean, nullable=False),
        sa.Column("mqtt_done", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_until", sa.BigInteger),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("alert_id", "event"))


def downgrade() -> None:
    for table in ("alert_events", "alerts", "alert_rules", "targets", "orders", "stop_audit",
                  "stop_segments", "reasons"):
        op.drop_table(table)
