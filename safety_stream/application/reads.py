"""Consistent, role-scoped reads of the trial: the one place that decides what a principal sees.

:meth:`Reads.snapshot` takes the projector's lock once, catches up, and copies out what the
principal may see at that one log position: a site credential gets its own site's patients,
AEs, report clocks and dead letters, and nothing trial-wide (no log position, no monitoring
clock, no rules, decisions or quarantined events); readers (safety officer, DSMB, admin) get
everything. What it returns is copied (patients and AEs) or immutable (rule statuses, tuples,
read-only mappings): a reader works on it after the lock is released while ingest goes on.

Entry points read the monitor through :class:`MonitorView`, never through the monitor's own
mutable attributes (``counting``, ``clocks``, ``raised``, ``quarantined``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

from safety_stream.application.read_models import AeRead
from safety_stream.auth import Principal
from safety_stream.boundaries import BoundaryTable
from safety_stream.events import DsmbDecision
from safety_stream.monitoring.monitor import Monitor
from safety_stream.monitoring.status import ReportClockOut, RuleStatus, rule_statuses
from safety_stream.plan import MonitoringPlan
from safety_stream.projections.projector import Projector
from safety_stream.projections.state import AeState, PatientState, TrialState
from safety_stream.projections.toxicity import ModalityTable, toxicity_tables
from safety_stream.store.base import EventStore, Rejection

EVERYTHING = Principal("safety-stream", "safety_officer", None)
"""The process itself reading trial-wide (metrics, operators' endpoints): sees every site."""


# -- visibility: the rules every read goes through -------------------------------------------


def site_of(principal: Principal) -> str | None:
    """The one site ``principal`` may see, or None for every site."""
    return principal.sees_site


def sees_trial_wide(principal: Principal) -> bool:
    """Whether ``principal`` may see what belongs to no one site: the log's position, the
    monitoring clock, the rules, decisions, alerts and quarantined events."""
    return site_of(principal) is None


def sees(principal: Principal, site_id: str | None) -> bool:
    """Whether ``principal`` may see a record of ``site_id`` (None: a trial-wide record)."""
    site = site_of(principal)
    return site is None or site_id == site


# -- copies ----------------------------------------------------------------------------------


def _patient_copy(patient: PatientState) -> PatientState:
    return replace(
        patient,
        exposure={m: replace(e) for m, e in patient.exposure.items()},
        lab_history=list(patient.lab_history),
        child_pugh_history=list(patient.child_pugh_history),
    )


def _ae_copy(ae: AeState) -> AeState:
    return replace(
        ae,
        attribution=dict(ae.attribution),
        seriousness=list(ae.seriousness),
        amendments=list(ae.amendments),
        course=list(ae.course),
    )


def _visible_state(
    principal: Principal, state: TrialState
) -> tuple[Mapping[str, PatientState], Mapping[UUID, AeState]]:
    """Copies of the patients and AEs of ``state`` that ``principal`` may see."""
    patients = {
        pid: _patient_copy(p) for pid, p in state.patients.items() if sees(principal, p.site_id)
    }
    aes = {aid: _ae_copy(a) for aid, a in state.aes.items() if sees(principal, a.site_id)}
    return MappingProxyType(patients), MappingProxyType(aes)


# -- the views -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountingView:
    """One counting rule's boundary and observed path (what a boundary plot draws)."""

    rule_id: str
    title: str
    max_n: int
    table: BoundaryTable
    path: tuple[tuple[float, int], ...]
    status: str
    # the AEs behind x (the evidence behind n and x): those of the patients the rule counted
    counted_ae_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MonitorView:
    """What the monitor concluded, at one log position, as ``principal`` may see it.

    For a site: ``position`` and ``clock`` are None, ``rules`` holds only the expedited-report
    rule with the site's own clocks (its state judged from those alone), and ``counting``,
    ``raised``, ``decisions`` and ``quarantined`` are empty."""

    position: int | None
    clock: datetime | None  # the monitoring clock (the log's time; EPOCH before any event)
    rules: tuple[RuleStatus, ...]
    report_clocks: tuple[ReportClockOut, ...]
    counting: tuple[CountingView, ...]
    raised: Mapping[str, tuple[str, ...]]  # sentinel id -> what raised it
    late_aes: frozenset[UUID]  # serious AEs the server received > 24 h after the site
    decisions: tuple[DsmbDecision, ...]
    enrolment_paused: bool
    quarantined: tuple[int, ...]  # log positions the monitor could not process
    # lab sentinel id -> the patients whose labs raised it (in the order raised)
    raised_patients: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def counted_ae_ids(self, rule_id: str) -> tuple[str, ...] | None:
        """The AEs a counting rule counted, or the AEs that raised a sentinel (None: no such
        rule visible; a lab sentinel is raised by lab results: see ``raised_patients``)."""
        for counter in self.counting:
            if counter.rule_id == rule_id:
                return counter.counted_ae_ids
        return self.raised.get(rule_id)


@dataclass(frozen=True, slots=True)
class ReadSnapshot:
    """What one principal may see of the trial, read at one log position.

    ``monitor`` is None for a past state (``as_of``): the monitor is not folded again."""

    viewer: Principal
    site: str | None  # the one site the viewer sees, None for all
    taken_at: datetime  # when it was read (the as_of time of a past state)
    position: int | None  # the log position it was read at: None for a site
    patients: Mapping[str, PatientState]
    aes: Mapping[UUID, AeState]
    monitor: MonitorView | None
    plan: MonitoringPlan

    def trial_state(self) -> TrialState:
        """The visible patients and AEs as a :class:`TrialState` (position 0 for a site)."""
        return TrialState(self.position or 0, dict(self.patients), dict(self.aes))

    def toxicity(self, as_of: datetime | None = None) -> list[ModalityTable]:
        """The toxicity tables of what the viewer sees (every patient counted is visible)."""
        return toxicity_tables(
            self.trial_state(),
            as_of or self.taken_at,
            self.plan.related_means_at_least,
            self.plan.windows,
            self.site,
        )


@dataclass(frozen=True, slots=True)
class PatientHistory:
    """One visible patient, its AEs' current versions, and its AE events in log order."""

    patient: PatientState
    aes: tuple[AeState, ...]
    events: tuple[dict[str, Any], ...]  # position, stored_at (ISO), event (the payload)

    def adverse_events(self) -> tuple[AeRead, ...]:
        """The AEs as read models (what the API renders)."""
        return tuple(AeRead.of(a) for a in self.aes)


@dataclass(frozen=True, slots=True)
class Operational:
    """What operators' endpoints show about the pipeline itself (not scoped: no site data)."""

    projected: int  # the projection's log position
    quarantined: int  # how many stored events the monitor set aside
    save_failure: str | None  # why the last projection save failed, until one succeeds


def _monitor_view(principal: Principal, monitor: Monitor, state: TrialState) -> MonitorView:
    """Read under the projector's lock: everything copied or immutable."""
    statuses = rule_statuses(monitor)
    reported = [c for s in statuses if s.kind == "expedited_report" for c in s.clocks or []]
    clocks = tuple(c for c in reported if sees(principal, c.site_id))
    late = frozenset(
        ae_id
        for ae_id in monitor.report_clocks.site_late_aes
        if ae_id in state.aes and sees(principal, state.aes[ae_id].site_id)
    )
    if not sees_trial_wide(principal):
        reporting = [
            s.model_copy(update={"clocks": list(clocks), "status": _clock_status(clocks)})
            for s in statuses
            if s.kind == "expedited_report"
        ]
        return MonitorView(
            position=None, clock=None, rules=tuple(reporting), report_clocks=clocks,
            counting=(), raised=MappingProxyType({}), late_aes=late, decisions=(),
            enrolment_paused=monitor.enrolment_paused_by is not None, quarantined=(),
        )  # fmt: skip
    by_id = {s.rule_id: s.status for s in statuses}
    counting = tuple(
        CountingView(
            rule_id=c.rule.id,
            title=c.rule.title,
            max_n=c.rule.max_n,
            table=c.table,
            path=tuple(c.path),
            status=by_id[c.rule.id],
            counted_ae_ids=tuple(c.counted_evidence()),
        )
        for c in monitor.counting
    )
    return MonitorView(
        position=state.position,
        clock=monitor.clock,
        rules=tuple(statuses),
        report_clocks=clocks,
        counting=counting,
        raised=MappingProxyType({k: tuple(v) for k, v in monitor.raised.items()}),
        late_aes=late,
        decisions=tuple(monitor.decisions),
        enrolment_paused=monitor.enrolment_paused_by is not None,
        quarantined=tuple(sorted(monitor.quarantined)),
        raised_patients=MappingProxyType(
            {k: tuple(v) for k, v in monitor.lab_signals.raised_patients.items()}
        ),
    )


def _clock_status(clocks: tuple[ReportClockOut, ...]) -> str:
    """The expedited-report rule's state judged from ``clocks`` alone (as rule_statuses)."""
    if any(c.state == "overdue" for c in clocks):
        return "crossed"
    return "approached" if any(c.state == "open" for c in clocks) else "ok"


class Reads:
    """The trial's read side over the projector, the monitor and the event store."""

    def __init__(
        self, projector: Projector, monitor: Monitor, plan: MonitoringPlan, store: EventStore
    ) -> None:
        self._projector = projector
        self._monitor = monitor
        self._plan = plan
        self._store = store

    @property
    def plan(self) -> MonitoringPlan:
        return self._plan

    def snapshot(self, principal: Principal) -> ReadSnapshot:
        """Everything ``principal`` may see, at one log position (the lock is taken once)."""
        with self._projector.lock:
            self._projector.catch_up()
            state = self._projector.state
            taken_at = datetime.now(UTC)
            patients, aes = _visible_state(principal, state)
            monitor = _monitor_view(principal, self._monitor, state)
        return ReadSnapshot(
            viewer=principal,
            site=site_of(principal),
            taken_at=taken_at,
            position=monitor.position,
            patients=patients,
            aes=aes,
            monitor=monitor,
            plan=self._plan,
        )

    def monitoring(self, principal: Principal) -> MonitorView:
        """The monitor's part of a snapshot alone (no patients or AEs copied)."""
        with self._projector.lock:
            self._projector.catch_up()
            return _monitor_view(principal, self._monitor, self._projector.state)

    def past(self, principal: Principal, state: TrialState, moment: datetime) -> ReadSnapshot:
        """What ``principal`` may see of a past ``state`` (folded for ``moment``)."""
        patients, aes = _visible_state(principal, state)
        return ReadSnapshot(
            viewer=principal,
            site=site_of(principal),
            taken_at=moment,
            position=state.position if sees_trial_wide(principal) else None,
            patients=patients,
            aes=aes,
            monitor=None,
            plan=self._plan,
        )

    def patient_history(self, principal: Principal, patient_id: str) -> PatientHistory | None:
        """One patient with its AEs and AE events; None when there is no such patient or it
        is another site's (never confirm another site's ids)."""
        with self._projector.lock:
            self._projector.catch_up()
            state = self._projector.state
            found = state.patients.get(patient_id)
            if found is None or not sees(principal, found.site_id):
                return None
            patient = _patient_copy(found)
            aes = tuple(_ae_copy(a) for a in state.aes.values() if a.patient_id == patient_id)
        events = tuple(
            {"position": s.position, "stored_at": s.stored_at.isoformat(), "event": s.payload}
            for s in self._store.stream(patient.trial_id, patient_id)
            if s.event_type.startswith("ae.")
        )
        return PatientHistory(patient, aes, events)

    def rejections(
        self, principal: Principal, limit: int, after: int | None = None
    ) -> list[Rejection]:
        """Dead letters ``principal`` may see (a site: its own submissions), newest first;
        ``after``: from the one after that id on (oldest first, as the store lists them)."""
        site = site_of(principal)
        if after is None:
            return self._store.rejections(site_id=site, limit=limit)
        return self._store.rejections(site_id=site, limit=limit, after=after)

    def rejection(self, principal: Principal, rejection_id: int) -> Rejection | None:
        """One dead letter, if ``principal`` may see it."""
        found = self.rejections(principal, limit=1, after=rejection_id - 1)
        return found[0] if found and found[0].id == rejection_id else None

    def operational(self) -> Operational:
        """The projection's position, quarantined events and save failure (operators').

        Without the projector's lock: a health check never waits behind a long catch-up
        (each value is read in one step; they may be a fold apart)."""
        return Operational(
            projected=self._projector.state.position,
            quarantined=len(self._monitor.quarantined),
            save_failure=self._projector.save_failure,
        )

    def log_head(self) -> int:
        """The log's last position (trial-wide: for readers and operators only)."""
        return self._store.head()
