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
from datetime import date, datetime
from uuid import UUID

from safety_stream.events import PatientDied, decode_json
from safety_stream.monitoring.derived import DerivedEvent
from safety_stream.monitoring.monitor import Monitor
from safety_stream.plan import MonitoringPlan
from safety_stream.projections.projector import Changes
from safety_stream.projections.state import TrialState
from safety_stream.report.errors import LogIntegrityError
from safety_stream.store.base import EventStore, StoredEvent
from safety_stream.store.hashing import GENESIS
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

    @property
    def position(self) -> int:
        return self.state.position


def snapshot_as_of(store: EventStore, plan: MonitoringPlan, moment: datetime) -> Snapshot:
    """Fold the events stored up to ``moment``; raises ``LogIntegrityError`` on a broken chain."""
    snapshot = Snapshot(moment=moment, state=TrialState(), monitor=Monitor(plan))
    changes = Changes()

    def folding(events: Iterable[StoredEvent]) -> Iterator[StoredEvent]:
        for stored in events:
            event = decode_json(stored.payload)
            changes.fold(snapshot.state, event, stored.position, snapshot.monitor)
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
            snapshot.chain_head = stored.chain_hash
            yield stored

    verdict = verify_chain(folding(store.read(stored_until=moment)))
    if not verdict.ok:
        raise LogIntegrityError(verdict.broken_at, verdict.reason)
    snapshot.events = verdict.checked
    snapshot.derived = changes.derived
    return snapshot
