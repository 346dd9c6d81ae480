"""Projection state: every patient's exposure and status, and every AE's current version.

``apply`` folds one event into the state. It is the only place the state changes, it does no
I/O and reads no clock, and folding the same events in the same order always gives the same
state; the projector, replay and "as of" queries all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal, cast
from uuid import UUID

from pydantic import TypeAdapter

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.events import (
    AE_AMENDMENTS,
    AdverseEventReported,
    AdverseEventResolved,
    AdverseEventRetracted,
    AdverseEventUpdated,
    AlertTriaged,
    AttributionByModality,
    ChildPughAssessed,
    ClockTicked,
    DsmbDecision,
    EventBase,
    GradeChange,
    LabResulted,
    PatientDied,
    PatientEnrolled,
    PatientLostToFollowUp,
    PatientWithdrawn,
    SafetyReportSubmitted,
    TreatmentAdministered,
)

PatientStatus = Literal["on_study", "withdrawn", "died", "lost_to_follow_up"]


@dataclass(slots=True)
class Exposure:
    """One modality for one patient: first and last administration, and how many."""

    first: datetime
    last: datetime
    administrations: int = 1


@dataclass(slots=True)
class PatientState:
    patient_id: str
    trial_id: str
    site_id: str
    enrolled_at: datetime | None
    status: PatientStatus = "on_study"
    status_at: datetime | None = None
    exposure: dict[str, Exposure] = field(default_factory=dict)
    # (test, value / ULN, when) and (Child-Pugh score, when; the first is the baseline), for
    # composite events that look inside a window
    lab_history: list[tuple[str, float, datetime]] = field(default_factory=list)
    child_pugh_history: list[tuple[int, datetime]] = field(default_factory=list)


@dataclass(slots=True)
class AeState:
    """The current version of one AE: the report folded with its amendments."""

    ae_id: UUID
    patient_id: str
    site_id: str
    ctcae_term: str
    soc: str
    grade: int
    onset_date: date
    attribution: dict[str, str]
    seriousness: list[str]
    expectedness: str
    immune_related: bool
    reported_at: datetime
    status: Literal["open", "resolved", "retracted"] = "open"
    outcome: str | None = None
    end_date: date | None = None
    amendments: list[UUID] = field(default_factory=list)
    safety_report_submitted_at: datetime | None = None  # closes the expedited-report clock
    # fatal whatever its grade: resolved with outcome fatal, or cited by patient.died; counts
    # as grade 5 for every rule
    fatal: bool = False
    # the grades over the AE's course, the current last: an improvement appends, a correction
    # replaces the last (empty in states saved before it was kept: the course is the grade)
    course: list[int] = field(default_factory=list)

    @property
    def worst(self) -> int:
        """The worst grade over the AE's course (5 once it was fatal): what rules count."""
        return 5 if self.fatal else max(self.course, default=self.grade)


@dataclass
class TrialState:
    position: int = 0
    patients: dict[str, PatientState] = field(default_factory=dict)
    aes: dict[UUID, AeState] = field(default_factory=dict)


PATIENT_JSON = TypeAdapter(PatientState)
AE_JSON = TypeAdapter(AeState)


def _utc(moment: datetime) -> datetime:
    # Events keep the site's offset in memory and are stored as UTC; the state holds UTC so it
    # is the same whether it was folded from a live event or from its stored payload.
    return moment.astimezone(UTC)


def _attribution(given: AttributionByModality) -> dict[str, str]:
    # str() of a StrEnum member is its value, and much cheaper than .value or model_dump()
    return {
        "radiotherapy": str(given.radiotherapy),
        "chemotherapy": str(given.chemotherapy),
        "immunotherapy": str(given.immunotherapy),
    }


_SOCS: dict[str, str] = {}  # the SOC of each CTCAE term seen, from the dictionary


def _soc(term: str) -> str:
    """The term's system organ class ("" for a term the dictionary does not know)."""
    soc = _SOCS.get(term)
    if soc is None:
        found = ctcae_dictionary().lookup(term)
        if found is None:
            return ""
        soc = _SOCS[term] = found.soc
    return soc


def _patient(state: TrialState, event: EventBase) -> PatientState:
    patient = state.patients.get(event.patient_id)
    if patient is None:  # the store never lets this happen; a foreign log might
        patient = PatientState(event.patient_id, event.trial_id, event.site_id, None)
        state.patients[event.patient_id] = patient
    return patient


def apply(state: TrialState, event: EventBase, position: int) -> tuple[str | None, UUID | None]:
    """Fold ``event`` (stored at ``position``) into ``state``.

    Returns the keys it changed (patient id, AE id) so callers persist only those.
    """
    state.position = position
    kind = type(event)
    if kind is AdverseEventReported:
        report = cast(AdverseEventReported, event)  # `type(x) is` does not narrow
        # (this runs for half the events of a replay: str() for the enums' values, as in
        # _attribution, and no call for the UTC time)
        state.aes[report.event_id] = AeState(
            ae_id=report.event_id,
            patient_id=report.patient_id,
            site_id=report.site_id,
            ctcae_term=report.ctcae_term,
            soc=_soc(report.ctcae_term),
            grade=report.grade,
            onset_date=report.onset_date,
            attribution=_attribution(report.attribution),
            seriousness=sorted(map(str, report.seriousness)),
            expectedness=str(report.expectedness),
            immune_related=report.immune_related,
            reported_at=report.recorded_at.astimezone(UTC),  # as _utc
            course=[report.grade],
        )
        return None, report.event_id
    if kind in AE_AMENDMENTS:
        return None, _amend(state, cast(AeAmendment, event))
    if kind is DsmbDecision or kind is ClockTicked or kind is AlertTriaged:  # not a patient's
        return None, None
    if kind is PatientEnrolled:
        state.patients[event.patient_id] = PatientState(
            event.patient_id, event.trial_id, event.site_id, _utc(event.occurred_at)
        )
        return event.patient_id, None
    patient = _patient(state, event)
    if kind is TreatmentAdministered:
        modality = cast(TreatmentAdministered, event).treatment.modality
        known = patient.exposure.get(modality)
        given = _utc(event.occurred_at)
        if known is None:
            patient.exposure[modality] = Exposure(given, given)
        else:
            known.first = min(known.first, given)
            known.last = max(known.last, given)
            known.administrations += 1
    elif kind in (PatientWithdrawn, PatientDied, PatientLostToFollowUp):
        patient.status = cast(PatientStatus, event.event_type.removeprefix("patient."))
        patient.status_at = _utc(event.occurred_at)
        cited = getattr(event, "related_ae_id", None)
        fatal_ae = state.aes.get(cited) if cited is not None else None
        if fatal_ae is not None and fatal_ae.patient_id == patient.patient_id:
            fatal_ae.fatal = True
            return patient.patient_id, fatal_ae.ae_id
    elif kind is ChildPughAssessed:
        score = cast(ChildPughAssessed, event).score
        patient.child_pugh_history.append((score, _utc(event.occurred_at)))
    elif kind is LabResulted:
        lab = cast(LabResulted, event)
        if lab.uln:
            ratio = lab.value / lab.uln
            patient.lab_history.append((lab.test.value, ratio, _utc(lab.occurred_at)))
    return patient.patient_id, None


AeAmendment = (
    AdverseEventUpdated | AdverseEventResolved | AdverseEventRetracted | SafetyReportSubmitted
)


def _amend(state: TrialState, event: AeAmendment) -> UUID | None:
    ae = state.aes.get(event.ae_id)
    if ae is None:
        return None
    ae.amendments.append(event.event_id)
    if isinstance(event, SafetyReportSubmitted):
        if ae.safety_report_submitted_at is None:
            ae.safety_report_submitted_at = _utc(event.occurred_at)
    elif isinstance(event, AdverseEventRetracted):
        ae.status = "retracted"
    elif isinstance(event, AdverseEventResolved):
        ae.status, ae.outcome, ae.end_date = "resolved", event.outcome.value, event.end_date
        ae.fatal = ae.fatal or ae.outcome == "fatal"
    else:
        if event.grade is not None:
            course = ae.course or [ae.grade]
            if event.grade_change in (GradeChange.WORSENED, GradeChange.IMPROVED):
                course.append(event.grade)
            else:  # a correction (also an update that does not say)
                course[-1] = event.grade
            ae.grade, ae.course = event.grade, course
        if event.attribution is not None:
            ae.attribution = _attribution(event.attribution)
        if event.seriousness is not None:
            ae.seriousness = sorted(s.value for s in event.seriousness)
        if event.expectedness is not None:
            ae.expectedness = event.expectedness.value
        if event.immune_related is not None:
            ae.immune_related = event.immune_related
    return ae.ae_id
