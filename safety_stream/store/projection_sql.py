"""The projection repository in SQL: documents with the position beside them, and the
derived events, each checkpoint in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from safety_stream.events.derived import DERIVED_JSON, DerivedEvent
from safety_stream.projections.documents import (
    StoredDerived,
    document_rows,
    state_from_documents,
)
from safety_stream.projections.projector import PROJECTION, StaleProjectionError
from safety_stream.projections.state import TrialState
from safety_stream.store.bulk import BulkWrite
from safety_stream.store.engine import write_transaction, writers_of
from safety_stream.store.tables import DerivedEventRow, ProjectionDocRow, ProjectionPositionRow

# documents go as (projection, key, doc) tuples straight to the driver: a replay inserts every
# one, a checkpoint inserts or replaces those changed since the last one
DOCS = ProjectionDocRow.metadata.tables[ProjectionDocRow.__tablename__]
INSERT_DOCS = BulkWrite.insert(DOCS)
UPSERT_DOCS = BulkWrite.upsert(DOCS, ["projection", "key"])
for _statement in (INSERT_DOCS, UPSERT_DOCS):
    if _statement.parameters != ["projection", "key", "doc"]:
        raise RuntimeError(f"projection_docs has the columns {_statement.parameters}")


def _derived_rows(derived: Sequence[DerivedEvent]) -> list[dict[str, Any]]:
    return [
        {
            "derived_id": d.derived_id,
            "kind": d.kind,
            "severity": d.severity,
            "rule_id": d.rule_id,
            "plan_version": d.plan_version,
            "occurred_at": d.occurred_at,
            "caused_by": d.caused_by,
            "doc": d.model_dump_json(),
        }
        for d in derived
    ]


class SqlProjectionRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _turns(self) -> AbstractContextManager[None]:
        """On SQLite (one writer at a time) a checkpoint takes its turn in the queue of this
        process's writers, between appends; PostgreSQL writes it beside them."""
        if self._engine.dialect.name == "sqlite":
            return writers_of(self._engine)
        return nullcontext()

    def load(self) -> TrialState:
        with self._engine.connect() as connection:
            position = connection.execute(
                select(ProjectionPositionRow.position).where(
                    ProjectionPositionRow.name == PROJECTION
                )
            ).scalar()
            rows = connection.execute(
                select(ProjectionDocRow.projection, ProjectionDocRow.key, ProjectionDocRow.doc)
            )
            return state_from_documents(((r[0], r[1], r[2]) for r in rows), position or 0)

    def _upsert(
        self,
        connection: Connection,
        docs: list[tuple[str, str, str]],
        position: int,
        derived: Sequence[DerivedEvent] = (),
        forward_only: bool = False,
    ) -> None:
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        # the position first: a projector that fell behind another one saving the same
        # projection (a worker that lost its partition) stops before writing anything
        statement = dialect.insert(ProjectionPositionRow).values(name=PROJECTION, position=position)
        moved = connection.execute(
            statement.on_conflict_do_update(
                index_elements=["name"],
                set_={"position": statement.excluded.position},
                where=None if not forward_only else ProjectionPositionRow.position < position,
            ).returning(ProjectionPositionRow.position)  # (psycopg reports no rowcount here)
        ).first()
        if forward_only and moved is None:
            raise StaleProjectionError(position)
        if derived:
            connection.execute(
                dialect.insert(DerivedEventRow).on_conflict_do_nothing(
                    index_elements=["derived_id"]
                ),
                _derived_rows(derived),
            )
        UPSERT_DOCS.execute_values(connection, docs)

    def save(
        self,
        state: TrialState,
        patients: set[str],
        aes: set[UUID],
        derived: Sequence[DerivedEvent] = (),
    ) -> None:
        rows = document_rows(state, patients, aes)  # serialised before taking a turn to write
        with self._turns(), write_transaction(self._engine) as connection:
            self._upsert(
                connection,
                rows,
                state.position,
                derived,
                forward_only=True,
            )

    def replace_all(self, state: TrialState, derived: Sequence[DerivedEvent] = ()) -> None:
        docs = document_rows(state, state.patients, state.aes)
        with self._turns(), write_transaction(self._engine) as connection:
            connection.execute(delete(ProjectionDocRow))
            for start in range(0, len(docs), 10_000):
                INSERT_DOCS.execute_values(connection, docs[start : start + 10_000])
            self._upsert(connection, [], state.position, derived)

    def derived_events(
        self, rule_id: str | None = None, after: int = 0, limit: int | None = None
    ) -> list[StoredDerived]:
        query = (
            select(DerivedEventRow.id, DerivedEventRow.doc)
            .where(DerivedEventRow.id > after)
            .order_by(DerivedEventRow.id)
        )
        if rule_id is not None:
            query = query.where(DerivedEventRow.rule_id == rule_id)
        if limit is not None:  # LIMIT -1: no limit on SQLite, an error on PostgreSQL
            query = query.limit(max(limit, 0))
        with self._engine.connect() as connection:
            return [
                StoredDerived(number, DERIVED_JSON.validate_json(doc))
                for number, doc in connection.execute(query)
            ]
