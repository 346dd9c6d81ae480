"""Ingest: validate a submission against the store and append it, in one transaction.

Every record ends in exactly one outcome: stored (with its position), duplicate (a resend of a
stored event: nothing changes), or rejected / conflict / forbidden (kept in the dead-letter
store with its problems). Stored events and dead letters commit together, before the caller
acknowledges anything; a failure rolls back both, and the client's retry (same event ids)
then finds nothing or everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from safety_stream.ctcae import CtcaeDictionary
from safety_stream.events import EventBase
from safety_stream.store.base import EventStore
from safety_stream.validation.problems import Problem
from safety_stream.validation.records import InputFormat, RawRecord
from safety_stream.validation.validator import Validator

Status = Literal["stored", "duplicate", "rejected", "conflict", "forbidden"]
FORBIDDEN_CODES = frozenset({"auth.site_mismatch", "reference.patient_of_other_site"})


@dataclass(frozen=True, slots=True)
class Outcome:
    location: str
    status: Status
    event_id: str | None = None
    event_type: str | None = None
    position: int | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IngestReport:
    outcomes: list[Outcome]

    def count(self, status: Status) -> int:
        return sum(o.status == status for o in self.outcomes)


def _site_problem(allowed_site: str) -> Problem:
    return Problem(
        path="site_id",
        message=f"this credential may only write events of site {allowed_site}",
        code="auth.site_mismatch",
        allowed=allowed_site,
    )


def _status(problems: list[Problem]) -> Status:
    codes = {p.code for p in problems}
    if codes & FORBIDDEN_CODES:
        return "forbidden"
    if "store.event_id_conflict" in codes:
        return "conflict"
    return "rejected"


def ingest(
    store: EventStore,
    records: Iterable[RawRecord],
    input_format: InputFormat,
    ctcae: CtcaeDictionary,
    source: str,
    site_id: str | None,
) -> IngestReport:
    """Validate and store ``records``; ``site_id`` restricts writes to one site (None: any)."""
    outcomes: list[Outcome] = []
    positions: dict[str, int] = {}

    def gate(event: EventBase) -> list[Problem]:
        if site_id is not None and event.site_id != site_id:
            return [_site_problem(site_id)]
        return []

    with store.write() as session:
        validator = Validator(ctcae, outside=session, stored=session, gate=gate)
        results = validator.validate(records, csv_paths=input_format is InputFormat.CSV)
        for result in results:
            event = result.event
            if result.problems or event is None:
                session.reject(
                    source,
                    site_id,
                    result.location,
                    result.raw,
                    [p.as_dict() for p in result.problems],
                )
                outcomes.append(
                    Outcome(
                        result.location,
                        _status(result.problems),
                        problems=result.problems,
                    )
                )
                continue
            event_id = str(event.event_id)
            if result.duplicate_of is not None:
                # a resend of an event stored earlier, or earlier in this same submission
                position = positions.get(event_id)
                if position is None:
                    position = int(result.duplicate_of.removeprefix("position "))
                outcomes.append(
                    Outcome(result.location, "duplicate", event_id, event.event_type, position)
                )
                continue
            appended = session.append(event)
            positions[event_id] = appended.position
            outcomes.append(
                Outcome(
                    result.location, appended.status, event_id, event.event_type, appended.position
                )
            )
    return IngestReport(outcomes)
