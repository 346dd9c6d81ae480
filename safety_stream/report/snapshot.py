"""The log as it stood at a moment: folded state, monitor, derived events and provenance.

A snapshot folds every event *stored* up to the moment (as ``state_as_of`` does) with a fresh
monitor as the observer, so rule states, observed paths, sentinels and report clocks are what
the system knew then. In the same single pass it walks the hash chain: the head hash names the
exact log prefix a report came from, and a broken chain stops the report. It also keeps the
``patient.died`` events, whose cause and date the projection state does not hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from safety_stream.events import (
    AdverseEventReported,
    AdverseEventResolved,
    AdverseEventRetracted,
    AdverseEventUpdated,
    AlertTriaged,
    ClockTicked,
    DsmbDecision,
    EventBase,
    GradeChange,
    PatientDied,
    PatientLostToFollowUp,
    SafetyReportSubmitted,
    decode_json,
)
from safety_stream.events.derived import DerivedEvent
from safety_stream.events.hashing import GENESIS
from safety_stream.monitoring.monitor import Monitor
from safety_stream.plan import MonitoringPlan
from safety_stream.projections.projector import Changes
from safety_stream.projections.state import TrialState
from safety_stream.report.errors import LogIntegrityError
from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import ReviewDetails, fold_details
from safety_stream.store.base import EventStore, StoredEvent
from safety_stream.store.verify import verify_chain


@dataclass(frozen=True)
class Death:
    """The latest ``patient.died`` event of one patient."""

    patient_id: str
    site_id: str
    death_date: date
    primary_cause: str
    related_ae_id: UUID | None


@dataclass
class Snapshot:
    moment: datetime  # the cut-off: events stored at or before it are in
    state: TrialState
    monitor: Monitor
    derived: list[DerivedEvent] = field(default_factory=list)
    deaths: dict[str, Death] = field(default_factory=dict)
    events: int = 0
    chain_head: str = GENESIS  # chain hash of the last event folded
    first_stored_at: datetime | None = None
    last_stored_at: datetime | None = None
    cutoff: date | None = None  # the clinical data cut-off (None: everything stored)
    included: int = 0  # events folded that the cut-off selected by their date (or all)
    after_cutoff: int = 0  # events stored by the snapshot but dated after the cut-off

    log_position: int = 0  # the last stored event verified (folded or after the cut-off)
    details: ReviewDetails = field(default_factory=ReviewDetails)  # the history behind state

    @property
    def position(self) -> int:
        """The log prefix the snapshot covers: up to this position (and ``chain_head``)."""
        return self.log_position

    def review(self) -> ReviewData:
        """The folded events as the review workspace reads them (state and history)."""
        return ReviewData(self.state, self.details, self.chain_head, self.last_stored_at)


def clinical_date(event: EventBase) -> date | None:
    """The date of what an event says happened to a patient; None for what applies whenever
    it was recorded (corrections, retractions, safety reports, DSMB decisions)."""
    kind = type(event)
    if kind is AdverseEventReported:
        return event.onset_date  # type: ignore[attr-defined, no-any-return]
    if kind is AdverseEventResolved:
        return event.end_date  # type: ignore[attr-defined, no-any-return]
    if kind is AdverseEventUpdated:
        course = event.grade_change in (GradeChange.WORSENED, GradeChange.IMPROVED)  # type: ignore[attr-defined]
        return event.occurred_at.date() if course else None
    if kind in (
        AdverseEventRetracted,
        SafetyReportSubmitted,
        DsmbDecision,
        ClockTicked,
        AlertTriaged,
    ):
        return None
    if kind is PatientDied:
        return event.death_date  # type: ignore[attr-defined, no-any-return]
    if kind is PatientLostToFollowUp:
        return event.last_contact_date  # type: ignore[attr-defined, no-any-return]
    return event.occurred_at.date()


def snapshot_as_of(
    store: EventStore,
    plan: MonitoringPlan,
    moment: datetime,
    cutoff: date | None = None,
    upto: int | None = None,
) -> Snapshot:
    """Fold the events stored up to ``moment`` (and at most log position ``upto``); with a
    clinical ``cutoff``, only those whose clinical date is on or before it, and the monitoring
    clock then runs to the end of that day. Raises ``LogIntegrityError`` on a broken chain
    (the whole stored prefix is verified, whatever the cut-off leaves out)."""
    snapshot = Snapshot(moment=moment, state=TrialState(), monitor=Monitor(plan))
    snapshot.cutoff = cutoff
    changes = Changes()

    def folding(events: Iterable[StoredEvent]) -> Iterator[StoredEvent]:
        for stored in events:
            if upto is not None and stored.position > upto:
                return
            event = decode_json(stored.payload)
            day = clinical_date(event) if cutoff is not None else None
            if day is not None and cutoff is not None and day > cutoff:
                snapshot.after_cutoff += 1
                snapshot.chain_head, snapshot.log_position = stored.chain_hash, stored.position
                yield stored
                continue
            snapshot.included += day is not None or cutoff is None
            changes.fold(snapshot.state, event, stored.position, snapshot.monitor)
            fold_details(snapshot.details, event, stored.position, stored.stored_at)
            if isinstance(event, PatientDied):
                snapshot.deaths[event.patient_id] = Death(
                    event.patient_id,
                    event.site_id,
                    event.death_date,
                    event.primary_cause,
                    event.related_ae_id,
                )
            if snapshot.first_stored_at is None:
                snapshot.first_stored_at = stored.stored_at
            snapshot.last_stored_at = stored.stored_at
            snapshot.chain_head, snapshot.log_position = stored.chain_hash, stored.position
            yield stored

    verdict = verify_chain(folding(store.read(stored_until=moment)))
    if not verdict.ok:
        raise LogIntegrityError(verdict.broken_at, verdict.reason)
    if cutoff is not None:  # windows that ended and clocks that ran out by the cut-off
        end = datetime.combine(cutoff + timedelta(days=1), time.min, UTC) - timedelta(
            microseconds=1
        )
        changes.derived += snapshot.monitor.advance(snapshot.state, min(end, moment), 0)
    snapshot.events = verdict.checked
    snapshot.derived = changes.derived
    return snapshot
