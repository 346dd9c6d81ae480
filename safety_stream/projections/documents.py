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
    return [
        {"projection": projection, "key": key, "doc": doc}
        for projection, key, doc in document_rows(state, patients, aes)
    ]


def document_rows(
    state: TrialState, patients: Iterable[str], aes: Iterable[UUID]
) -> list[tuple[str, str, str]]:
    """(projection, key, JSON document) of the given patients and AEs, in that order."""
    # The adapters' serializers are called directly: TypeAdapter.dump_json passes on the same
    # defaults, and over a replay's half a million AEs its wrapper was a sixth of the cost.
    patient_json, ae_json = PATIENT_JSON.serializer.to_json, AE_JSON.serializer.to_json
    known_patients, known_aes = state.patients, state.aes
    rows = [(PATIENTS, key, patient_json(known_patients[key]).decode()) for key in patients]
    rows += [(AES, str(key), ae_json(known_aes[key]).decode()) for key in aes]
    return rows


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
