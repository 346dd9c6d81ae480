"""The projection repository in memory (tests, the demo's memory runtime)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from uuid import UUID

from safety_stream.events.derived import DerivedEvent
from safety_stream.projections.documents import (
    StoredDerived,
    state_documents,
    state_from_documents,
)
from safety_stream.projections.projector import StaleProjectionError
from safety_stream.projections.state import TrialState


class InMemoryProjectionRepository:
    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], str] = {}
        self.derived: dict[UUID, DerivedEvent] = {}  # in the order first stored
        self.position = 0

    def load(self) -> TrialState:
        return state_from_documents(
            ((p, k, d) for (p, k), d in self.documents.items()), self.position
        )

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
        for doc in state_documents(state, patients, aes):
            self.documents[(doc["projection"], doc["key"])] = doc["doc"]
        for item in derived:
            self.derived.setdefault(item.derived_id, item)
        self.position = state.position

    def replace_all(self, state: TrialState, derived: Sequence[DerivedEvent] = ()) -> None:
        self.documents.clear()
        self._put(state, set(state.patients), set(state.aes), derived)

    def derived_events(
        self, rule_id: str | None = None, after: int = 0, limit: int | None = None
    ) -> list[StoredDerived]:
        found = (
            StoredDerived(number, item)
            for number, item in enumerate(self.derived.values(), start=1)
            if number > after and (rule_id is None or item.rule_id == rule_id)
        )
        return list(found if limit is None else islice(found, max(limit, 0)))
