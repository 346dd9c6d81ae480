"""Ingest: validate a submission against the store and append it, in one transaction.

Every record ends in exactly one outcome: stored (with its position), duplicate (a resend of a
stored event: nothing changes), or rejected / conflict / forbidden (kept in the dead-letter
store with its problems). Stored events and dead letters commit together, before the caller
acknowledges anything; a failure rolls back both, and the client's retry (same event ids)
then finds nothing or everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from safety_stream.ctcae import CtcaeDictionary
from safety_stream.events import (
    EVENT_TYPES,
    AlertTriaged,
    ClockTicked,
    DsmbDecision,
    EventBase,
    PatientEnrolled,
)
from safety_stream.store.base import EventStore, WriteSession
from safety_stream.validation.checks import DEFAULT_CLOCK_SKEW
from safety_stream.validation.codes import ProblemCode
from safety_stream.validation.problems import Problem
from safety_stream.validation.records import InputFormat, RawRecord
from safety_stream.validation.validator import Validator

Status = Literal["stored", "duplicate", "rejected", "conflict", "forbidden"]
FORBIDDEN_CODES = frozenset(
    {
        ProblemCode.AUTH_SITE_MISMATCH,
        ProblemCode.REFERENCE_PATIENT_OF_OTHER_SITE,
        ProblemCode.AUTH_DECISION_NOT_ALLOWED,
        ProblemCode.AUTH_TICK_NOT_ALLOWED,
        ProblemCode.AUTH_TRIAGE_NOT_ALLOWED,
    }
)
TICK_REFUSED = Problem(
    path="event_type",
    message="only the server records that its clock ticked",
    code=ProblemCode.AUTH_TICK_NOT_ALLOWED,
    allowed="the data events of your site",
)
TRIAGE_REFUSED = Problem(
    path="event_type",
    message="an alert's triage step cannot be posted as data",
    code=ProblemCode.AUTH_TRIAGE_NOT_ALLOWED,
    allowed="triage alerts with POST /v1/alerts/{id}/triage (a reader credential) or on the board",
)
CONFLICT_CODES = frozenset(
    {ProblemCode.STORE_EVENT_ID_CONFLICT, ProblemCode.GOVERNANCE_ENROLMENT_PAUSED}
)
DECISION_REFUSED = Problem(
    path="event_type",
    message="a DSMB decision cannot be posted as data",
    code=ProblemCode.AUTH_DECISION_NOT_ALLOWED,
    allowed="record decisions with POST /v1/decisions (a dsmb or safety_officer credential) or "
    "safety-stream decide",
)


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
    # newly stored, in order: (position, event, the server's receipt time)
    appended: list[tuple[int, EventBase, datetime]] = field(default_factory=list)
    redelivered: int = 0  # records of an ordered source taken before (see ``Offset``)

    def count(self, status: Status) -> int:
        return sum(o.status == status for o in self.outcomes)

    @classmethod
    def merged(cls, reports: Sequence[IngestReport]) -> IngestReport:
        """One report of consecutive parts of a submission, in order."""
        return cls(
            [o for r in reports for o in r.outcomes],
            [a for r in reports for a in r.appended],
            sum(r.redelivered for r in reports),
        )


def _site_problem(allowed_site: str) -> Problem:
    return Problem(
        path="site_id",
        message=f"this credential may only write events of site {allowed_site}",
        code=ProblemCode.AUTH_SITE_MISMATCH,
        allowed=allowed_site,
    )


def _trial_problem(trial_id: str) -> Problem:
    return Problem(
        path="trial_id",
        message=f"this server monitors trial {trial_id} only",
        code=ProblemCode.REFERENCE_OTHER_TRIAL,
        allowed=trial_id,
    )


@dataclass(frozen=True, slots=True)
class Offset:
    """Where a record came from in an ordered source, e.g. ("kafka:topic/0", 41).

    The last offset per source is stored in the transaction that stores the records, so a
    record delivered again (a consumer restarted before committing) is recognised and
    skipped: its events are not appended twice and its rejection is not kept twice.
    """

    source: str
    offset: int


_EVENT_ID = re.compile(rb'"event_id"\s*:\s*"([0-9A-Fa-f-]{32,36})"')
_AE_ID = re.compile(rb'"ae_id"\s*:\s*"([0-9A-Fa-f-]{32,36})"')
_PATIENT_ID = re.compile(rb'"patient_id"\s*:\s*"([^"\\]{1,64})"')


def _uuids(texts: Iterable[str | bytes]) -> set[UUID]:
    found = set()
    for text in texts:
        with suppress(ValueError, TypeError, AttributeError):  # not an id: validation says so
            found.add(UUID(text.decode() if isinstance(text, bytes) else text))
    return found


def lookup_keys(records: list[RawRecord]) -> tuple[set[UUID], set[UUID], set[str]]:
    """The event ids, cited AE ids and patient ids a batch will look up, found cheaply.

    A cache warmer only: it may miss ids (e.g. oddly escaped JSON) or find ids that turn out
    invalid; either way validation and the store still look up whatever they need.
    """
    event_ids: list[Any] = []
    ae_ids: list[Any] = []
    patients: set[str] = set()
    for record in records:
        if not record.parsed:
            event_ids += _EVENT_ID.findall(record.raw)
            ae_ids += _AE_ID.findall(record.raw)
            patients.update(p.decode("utf-8", "replace") for p in _PATIENT_ID.findall(record.raw))
            continue
        values = record.value if isinstance(record.value, list) else [record.value]
        for value in values:
            if isinstance(value, dict):
                event_ids.append(value.get("event_id"))
                ae_ids.append(value.get("ae_id"))
                if isinstance(value.get("patient_id"), str):
                    patients.add(value["patient_id"])
    return _uuids(event_ids), _uuids(ae_ids), patients


def _status(problems: list[Problem]) -> Status:
    codes = {p.code for p in problems}
    if codes & FORBIDDEN_CODES:
        return "forbidden"
    if codes & CONFLICT_CODES:
        return "conflict"
    return "rejected"


_CLAIMED_TYPE = re.compile(rb'"event_type"\s*:\s*"([a-z_.]{1,64})"')


def claimed_type(raw: bytes) -> str | None:
    """The event type an invalid record claims to be, if it names a known one (for metrics)."""
    found = _CLAIMED_TYPE.search(raw, 0, 4096)
    name = found.group(1).decode() if found else None
    return name if name in EVENT_TYPES else None


@dataclass(frozen=True, slots=True)
class _Gate:
    """What one submission may write, beyond what validation checks: governance events only
    through their own entry points, one site's events for a site, the plan's trial only, no
    enrolment while it is paused."""

    site_id: str | None
    trial_id: str | None
    may_decide: bool
    may_tick: bool
    may_triage: bool
    enrolment_paused: str | None

    def __call__(self, event: EventBase) -> list[Problem]:
        kind = type(event)
        if kind is DsmbDecision and not self.may_decide:
            return [DECISION_REFUSED]
        if kind is ClockTicked and not self.may_tick:
            return [TICK_REFUSED]
        if kind is AlertTriaged and not self.may_triage:
            return [TRIAGE_REFUSED]
        if self.site_id is not None and event.site_id != self.site_id:
            return [_site_problem(self.site_id)]
        if self.trial_id is not None and event.trial_id != self.trial_id:
            return [_trial_problem(self.trial_id)]
        if self.enrolment_paused is not None and kind is PatientEnrolled:
            return [
                Problem(
                    path="event_type",
                    message=f"enrolment is paused: {self.enrolment_paused}",
                    code=ProblemCode.GOVERNANCE_ENROLMENT_PAUSED,
                    allowed="no new patient until a DSMB decision resumes enrolment",
                )
            ]
        return []


def ingest(
    store: EventStore,
    records: Iterable[RawRecord],
    input_format: InputFormat,
    ctcae: CtcaeDictionary,
    source: str,
    site_id: str | None,
    offsets: Sequence[Offset] | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    *,
    may_decide: bool = False,
    may_tick: bool = False,
    may_triage: bool = False,
    enrolment_paused: str | None = None,
    trial_id: str | None = None,
) -> IngestReport:
    """Validate and store ``records``; ``site_id`` restricts writes to one site (None: any).

    ``offsets`` (one per record, ascending per source) makes the call idempotent per record.
    No time of an event may be after the server received it (its store's clock), beyond
    ``clock_skew``. DSMB decisions are refused unless ``may_decide`` (the decisions endpoint,
    the ``decide`` command), alert triage steps unless ``may_triage`` (the triage service);
    ``enrolment_paused`` (the decision that paused it) refuses new enrolments; ``trial_id``
    (the plan's trial) refuses another trial's events.
    """
    records = list(records)
    redelivered = 0
    outcomes: list[Outcome] = []
    appended: list[tuple[int, EventBase, datetime]] = []
    positions: dict[str, int] = {}

    gate = _Gate(site_id, trial_id, may_decide, may_tick, may_triage, enrolment_paused)
    with store.write() as session:
        if offsets is not None:
            records, redelivered = _new_records(session, records, offsets)
        session.prefetch(*lookup_keys(records))
        validator = Validator(
            ctcae, outside=session, stored=session, gate=gate,
            received_at=session.now(), clock_skew=clock_skew, one_site=site_id is not None,
        )  # fmt: skip
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
                        event_type=event.event_type if event else claimed_type(result.raw),
                        problems=result.problems,
                    )
                )
                continue
            event_id = str(event.event_id)
            if result.duplicate_of is not None:
                # a resend of an event earlier in this same submission, or stored earlier
                position = positions.get(event_id, result.duplicate_position)
                outcomes.append(
                    Outcome(result.location, "duplicate", event_id, event.event_type, position)
                )
                continue
            stored = session.append(event)
            positions[event_id] = stored.position
            if stored.status == "stored":
                assert stored.stored_at is not None
                appended.append((stored.position, event, stored.stored_at))
            outcomes.append(
                Outcome(result.location, stored.status, event_id, event.event_type, stored.position)
            )
    return IngestReport(outcomes, appended, redelivered)


def _new_records(
    session: WriteSession, records: list[RawRecord], offsets: Sequence[Offset]
) -> tuple[list[RawRecord], int]:
    """The records not taken before; records the new offsets in the session."""
    if len(offsets) != len(records):
        raise ValueError("one offset per record is needed")
    done: dict[str, int] = {}
    fresh = []
    for record, where in zip(records, offsets, strict=True):
        if where.source not in done:
            previous = session.source_offset(where.source)
            done[where.source] = -1 if previous is None else previous
        if where.offset > done[where.source]:
            fresh.append(record)
            done[where.source] = where.offset
            session.set_source_offset(where.source, where.offset)
    return fresh, len(records) - len(fresh)
