"""Credentials expire and are revoked (kept, for the audit), and every change to them is
recorded in ``credential_changes``, an append-only, hash-chained history (added, rotated,
revoked).

Credentials created before this revision get no expiry and are not revoked; the history starts
empty (nothing recorded what happened before).

Revision ID: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from safety_stream.store.tables import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("credentials") as table:
        table.add_column(sa.Column("expires_at", UtcDateTime(), nullable=True))
        table.add_column(sa.Column("revoked_at", UtcDateTime(), nullable=True))
    op.create_table(
        "credential_changes",
        sa.Column("id", Position, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("chain_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credential_changes"),
    )


def downgrade() -> None:
    op.drop_table("credential_changes")
    with op.batch_alter_table("credentials") as table:
        table.drop_column("revoked_at")
        table.drop_column("expires_at")
