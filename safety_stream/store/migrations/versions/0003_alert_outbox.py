"""Alerts, their outbox (deliveries retried until delivered) and log (acknowledgements).

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from safety_stream.store.tables import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", Position, primary_key=True, autoincrement=True),
        sa.Column("derived_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("raised_at", UtcDateTime(), nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("derived_id", name="uq_alerts_derived_id"),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", Position, primary_key=True, autoincrement=True),
        sa.Column("derived_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("channel_type", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
        sa.UniqueConstraint(
            "derived_id", "channel", "reason", name="uq_alert_deliveries_derived_id_channel_reason"
        ),
    )
    op.create_index(
        "ix_alert_deliveries_state_next_attempt_at",
        "alert_deliveries",
        ["state", "next_attempt_at"],
    )
    op.create_table(
        "alert_log",
        sa.Column("id", Position, primary_key=True, autoincrement=True),
        sa.Column("derived_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_log"),
    )
    op.create_index("ix_alert_log_derived_id", "alert_log", ["derived_id"])


def downgrade() -> None:
    op.drop_index("ix_alert_log_derived_id", "alert_log")
    op.drop_table("alert_log")
    op.drop_index("ix_alert_deliveries_state_next_attempt_at", "alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_table("alerts")
