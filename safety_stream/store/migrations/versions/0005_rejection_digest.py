"""Dead letters kept once per submission: a digest (site, location, reasons, bytes) and a
received count.

A site that resends an invalid record (a retry after a lost response) finds the dead letter it
already left; the count says how often it arrived. Rows kept before this revision, and rows
without bytes, have no digest and are never matched.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rejections") as table:
        table.add_column(sa.Column("digest", sa.String(64), nullable=True))
        table.add_column(sa.Column("received", sa.Integer(), server_default="1", nullable=False))
    op.create_index("ix_rejections_digest", "rejections", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_rejections_digest", "rejections")
    with op.batch_alter_table("rejections") as table:
        table.drop_column("received")
        table.drop_column("digest")
