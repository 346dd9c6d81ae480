"""Projection repositories: in memory, and SQL documents with the position beside them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from sqlalchemy import Connection, Engine, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from safety_stream.monitoring.derived import DERIVED_JSON, DerivedEvent
from safety_stream.projections.projector import PROJECTION, StaleProjectionError
from safety_stream.projections.state import AE_JSON, PATIENT_JSON, TrialState
from safety_stream.store.tables import DerivedEventRow, ProjectionDocRow, ProjectionPositionRow

PATIENTS, AES = "patients", "aes"


class StoredDerived(NamedTuple):
    number: int  # order of storing; a reader follows with ``after=number``
    event: DerivedEvent


def _documents(
    state: TrialState, patients: Iterable[str], aes: Iterable[UUID]
) -> list[dict[str, Any]]:
    docs = [
        {
            "projection": PATIENTS,
            "key": key,
            "doc": PATIENT_JSON.dump_json(state.patients[key]).decode(),
        }
        for key in patients
    ]
    docs += [
        {"projection": AES, "key": str(key), "doc": AE_JSON.dump_json(state.aes[key]).decode()}
        for key in aes
    ]
    return docs


def _load(documents: Iterable[tuple[str, str, str]], position: int) -> TrialState:
    state = TrialState(position=position)
    for projection, key, doc in documents:
        if projection == PATIENTS:
            state.patients[key] = PATIENT_JSON.validate_json(doc)
        else:
            state.aes[UUID(key)] = AE_JSON.validate_json(doc)
    return state


class DerivedSource(Protocol):
    def derived_events(self, rule_id: str | None = None, after: int = 0) -> list[StoredDerived]:
        """Stored derived events in the order they were stored, after number ``after``."""
        ...


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


class InMemoryProjectionRepository:
    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], str] = {}
        self.derived: dict[UUID, DerivedEvent] = {}  # in the order first stored
        self.position = 0

    def load(self) -> TrialState:
        return _load(((p, k, d) for (p, k), d in self.documents.items()), self.position)

    def save(
        self,
        state: TrialState,
        patients: set[str],
        aes: set[UUID],
        derived: Sequence[DerivedEvent] = (),
    ) -> None:
        if state.position <= self.position:
            raise StaleProjectionError(state.position)
        self._put(state, patients, aes, derived)

    def _put(
        self, state: TrialState, patients: set[str], aes: set[UUID], derived: Sequence[DerivedEvent]
    ) -> None:
        for doc in _documents(state, patients, aes):
            self.documents[(doc["projection"], doc["key"])] = doc["doc"]
        for item in derived:
            self.derived.setdefault(item.derived_id, item)
        self.position = state.position

    def replace_all(self, state: TrialState, derived: Sequence[DerivedEvent] = ()) -> None:
        self.documents.clear()
        self._put(state, set(state.patients), set(state.aes), derived)

    def derived_events(self, rule_id: str | None = None, after: int = 0) -> list[StoredDerived]:
        return [
            StoredDerived(number, item)
            for number, item in enumerate(self.derived.values(), start=1)
            if number > after and (rule_id is None or item.rule_id == rule_id)
        ]


class SqlProjectionRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

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
            return _load(((r[0], r[1], r[2]) for r in rows), position or 0)

    def _upsert(
        self,
        connection: Connection,
        docs: list[dict[str, Any]],
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
        if docs:
            statement = dialect.insert(ProjectionDocRow)
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["projection", "key"], set_={"doc": statement.excluded.doc}
                ),
                docs,
            )

    def save(
        self,
        state: TrialState,
        patients: set[str],
        aes: set[UUID],
        derived: Sequence[DerivedEvent] = (),
    ) -> None:
        with self._engine.begin() as connection:
            self._upsert(
                connection,
                _documents(state, patients, aes),
                state.position,
                derived,
                forward_only=True,
            )

    def replace_all(self, state: TrialState, derived: Sequence[DerivedEvent] = ()) -> None:
        with self._engine.begin() as connection:
            connection.execute(delete(ProjectionDocRow))
            docs = _documents(state, state.patients, state.aes)
            for start in range(0, len(docs), 10_000):
                connection.execute(insert(ProjectionDocRow), docs[start : start + 10_000])
            self._upsert(connection, [], state.position, derived)

    def derived_events(self, rule_id: str | None = None, after: int = 0) -> list[StoredDerived]:
        query = (
            select(DerivedEventRow.id, DerivedEventRow.doc)
            .where(DerivedEventRow.id > after)
            .order_by(DerivedEventRow.id)
        )
        if rule_id is not None:
            query = query.where(DerivedEventRow.rule_id == rule_id)
        with self._engine.connect() as connection:
            return [
                StoredDerived(number, DERIVED_JSON.validate_json(doc))
                for number, doc in connection.execute(query)
            ]
