"""The initial store: log, stream versions, reference indexes, dead letters, credentials,
projection positions and documents.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from safety_stream.store.tables import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("position", Position, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("stream_version", sa.Integer(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("stored_at", UtcDateTime(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("chain_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
        sa.UniqueConstraint(
            "trial_id", "patient_id", "stream_version",
            name="uq_events_trial_id_patient_id_stream_version",
        ),
    )  # fmt: skip
    op.create_index("ix_events_stored_at", "events", ["stored_at"])
    op.create_table(
        "streams",
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("trial_id", "patient_id", name="pk_streams"),
    )
    op.create_table(
        "patient_index",
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", name="pk_patient_index"),
    )
    op.create_table(
        "ae_index",
        sa.Column("ae_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("ctcae_term", sa.String(200), nullable=False),
        sa.Column("onset_date", sa.Date(), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("fatal", sa.Boolean(), nullable=False),
        sa.Column("retracted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("ae_id", name="pk_ae_index"),
    )
    op.create_table(
        "rejections",
        sa.Column("id", Position, primary_key=True, autoincrement=True),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=True),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rejections"),
    )
    op.create_index("ix_rejections_site_id", "rejections", ["site_id"])
    op.create_table(
        "credentials",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_credentials"),
        sa.UniqueConstraint("token_hash", name="uq_credentials_token_hash"),
    )
    op.create_table(
        "projection_positions",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("position", Position, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_projection_positions"),
    )
    op.create_table(
        "projection_docs",
        sa.Column("projection", sa.String(64), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("projection", "key", name="pk_projection_docs"),
    )


def downgrade() -> None:
    for table in (
        "projection_docs", "projection_positions", "credentials", "rejections",
        "ae_index", "patient_index", "streams", "events",
    ):  # fmt: skip
        op.drop_table(table)
