"""The patient index keeps each patient's consent date, death date and fatal AE, so ingest can
refuse what a timeline cannot hold (an AE before consent, a treatment after death, a second
fatal AE).

Existing patients are filled in from the log: the consent date of their enrolment, the death
date of their patient.died, the last AE reported or updated at grade 5.

Revision ID: 0006
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FACT_EVENTS = ("patient.enrolled", "patient.died", "ae.reported", "ae.updated")


def upgrade() -> None:
    with op.batch_alter_table("patient_index") as table:
        table.add_column(sa.Column("consent_date", sa.Date(), nullable=True))
        table.add_column(sa.Column("death_date", sa.Date(), nullable=True))
        table.add_column(sa.Column("fatal_ae_id", sa.Uuid(), nullable=True))
    connection = op.get_bind()
    events = sa.table(
        "events",
        sa.column("position", sa.Integer()),
        sa.column("event_type", sa.String()),
        sa.column("patient_id", sa.String()),
        sa.column("payload", sa.Text()),
    )
    facts: dict[str, dict[str, Any]] = {}
    rows = connection.execute(
        sa.select(events.c.event_type, events.c.patient_id, events.c.payload)
        .where(events.c.event_type.in_(FACT_EVENTS))
        .order_by(events.c.position)
    )
    for kind, patient_id, payload in rows:
        document = json.loads(payload)
        mine = facts.setdefault(patient_id, {})
        if kind == "patient.enrolled":
            mine["consent_date"] = document["consent_date"]
        elif kind == "patient.died":
            mine["death_date"] = document["death_date"]
        elif document.get("grade") == 5:
            mine["fatal_ae_id"] = document["event_id" if kind == "ae.reported" else "ae_id"]
    index = sa.table(
        "patient_index",
        sa.column("patient_id", sa.String()),
        sa.column("consent_date", sa.Date()),
        sa.column("death_date", sa.Date()),
        sa.column("fatal_ae_id", sa.Uuid()),
    )
    for patient_id, mine in facts.items():
        values = {
            "consent_date": _day(mine.get("consent_date")),
            "death_date": _day(mine.get("death_date")),
            "fatal_ae_id": UUID(mine["fatal_ae_id"]) if mine.get("fatal_ae_id") else None,
        }
        connection.execute(index.update().where(index.c.patient_id == patient_id).values(**values))


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def downgrade() -> None:
    with op.batch_alter_table("patient_index") as table:
        table.drop_column("fatal_ae_id")
        table.drop_column("death_date")
        table.drop_column("consent_date")
