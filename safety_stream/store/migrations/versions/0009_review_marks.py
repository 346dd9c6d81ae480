"""Readers' "reviewed up to here" marks on AEs and alerts: one row per reader and item, the
log position it was reviewed at (``safety_stream.review.marks``). Starts empty.

Revision ID: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from safety_stream.store.tables import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "review_marks",
        sa.Column("reader", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("position", Position, nullable=False),
        sa.Column("marked_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("reader", "kind", "item_id", name="pk_review_marks"),
    )


def downgrade() -> None:
    op.drop_table("review_marks")
