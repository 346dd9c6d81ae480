"""Derived events: the monitor's conclusions, stored with the projection that produced them.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from safety_stream.store.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "derived_events",
        sa.Column("id", Position, primary_key=True, autoincrement=True),
        sa.Column("derived_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("plan_version", sa.String(32), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("caused_by", Position, nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_derived_events"),
        sa.UniqueConstraint("derived_id", name="uq_derived_events_derived_id"),
    )
    op.create_index("ix_derived_events_rule_id", "derived_events", ["rule_id"])


def downgrade() -> None:
    op.drop_index("ix_derived_events_rule_id", "derived_events")
    op.drop_table("derived_events")
