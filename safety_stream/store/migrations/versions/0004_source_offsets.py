"""Offsets of ordered sources (Kafka topic partitions), committed with what they carried.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "source_offsets",
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("offset", Position, nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_source_offsets"),
    )


def downgrade() -> None:
    op.drop_table("source_offsets")
