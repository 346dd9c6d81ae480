"""The projection as documents (one per patient, one per AE) and the read port of derived
events: what every projection repository stores and how it is read back, with no storage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from safety_stream.events.derived import DerivedEvent
from safety_stream.projections.state import AE_JSON, PATIENT_JSON, TrialState

PATIENTS, AES = "patients", "aes"


class StoredDerived(NamedTuple):
    number: int  # order of storing; a reader follows with ``after=number``
    event: DerivedEvent


def state_documents(
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


def state_from_documents(documents: Iterable[tuple[str, str, str]], position: int) -> TrialState:
    state = TrialState(position=position)
    for projection, key, doc in documents:
        if projection == PATIENTS:
            state.patients[key] = PATIENT_JSON.validate_json(doc)
        else:
            state.aes[UUID(key)] = AE_JSON.validate_json(doc)
    return state


class DerivedSource(Protocol):
    def derived_events(
        self, rule_id: str | None = None, after: int = 0, limit: int | None = None
    ) -> list[StoredDerived]:
        """Stored derived events in the order they were stored, after number ``after``; at
        most ``limit`` of them (None: all), read no further than that."""
        ...
