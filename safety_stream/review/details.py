"""What a safety review needs beyond the projection: every administration, lab value, Child-Pugh
score, exit and death of each patient, and every version of each AE with who changed it, when.

The projection (``projections.state``) holds the *current* picture the monitor counts; the
review also needs the history behind it (an AE's amendments, a patient's doses and labs). Both
are folded from the same stored events: :func:`fold_details` is pure (no I/O, no clock), and
folding the same events in the same order always gives the same details.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, cast
from uuid import UUID

from safety_stream.events import (
    AdverseEventReported,
    AdverseEventResolved,
    AdverseEventRetracted,
    AdverseEventUpdated,
    AlertTriaged,
    ChildPughAssessed,
    ClockTicked,
    DsmbDecision,
    EventBase,
    LabResulted,
    PatientDied,
    PatientEnrolled,
    PatientLostToFollowUp,
    PatientWithdrawn,
    SafetyReportSubmitted,
    TreatmentAdministered,
)


@dataclass(frozen=True, slots=True)
class Administration:
    """One dose of one modality. Only the fields of its modality are set."""

    modality: str
    given_at: datetime  # UTC
    position: int
    # radiotherapy (SBRT fraction k of n)
    fraction: int | None = None
    fractions_planned: int | None = None
    dose_gy: float | None = None
    target: str | None = None
    # chemotherapy (a day of a cycle)
    regimen: str | None = None
    day: int | None = None
    dose_reduced: bool = False
    # chemotherapy and immunotherapy
    cycle: int | None = None
    # immunotherapy
    agent: str | None = None
    dose_mg: float | None = None


@dataclass(frozen=True, slots=True)
class LabValue:
    """One lab result as the site sent it, with its local normal range."""

    test: str
    value: float
    unit: str
    uln: float | None
    lln: float | None
    collected_at: datetime  # UTC
    position: int

    @property
    def times_uln(self) -> float | None:
        """The value as a multiple of the upper limit of normal (None without a ULN)."""
        return self.value / self.uln if self.uln else None


@dataclass(frozen=True, slots=True)
class ChildPughScore:
    score: int
    child_pugh_class: str
    ascites: str | None
    assessed_at: datetime  # UTC
    position: int


@dataclass(frozen=True, slots=True)
class Exit:
    """How a patient left the study: withdrawn, died or lost to follow-up (the latest wins)."""

    kind: str  # withdrawn | died | lost_to_follow_up
    on: date  # the date of death, of the last contact, or of the withdrawal
    position: int
    reason: str | None = None  # withdrawal reason
    details: str | None = None  # withdrawal details, or the primary cause of death
    related_ae_id: UUID | None = None  # the fatal AE a death cites


@dataclass(frozen=True, slots=True)
class AeVersion:
    """One event in an AE's history: the report or an amendment, who recorded it and when."""

    position: int
    event_type: str
    event_id: UUID
    reporter: str
    recorded_at: datetime  # when the site recorded it (UTC)
    stored_at: datetime  # when the server stored it
    changes: dict[str, Any]  # the fields it set (JSON-ready values)
    reason: str | None = None
    occurred_at: datetime | None = None  # when it happened (UTC): dates a change of course


@dataclass
class PatientDetail:
    patient_id: str
    site_id: str
    consent_date: date | None = None
    planned_modalities: list[str] = field(default_factory=list)
    administrations: list[Administration] = field(default_factory=list)
    labs: list[LabValue] = field(default_factory=list)
    child_pugh: list[ChildPughScore] = field(default_factory=list)
    exit: Exit | None = None
    death: Exit | None = None  # kept apart: a later withdrawal record does not hide a death
    last_data_on: date | None = None  # the latest clinical date of any of its events
    last_stored_at: datetime | None = None
    changed_at_position: int = 0  # the last log position that touched it


@dataclass
class AeDetail:
    ae_id: UUID
    patient_id: str
    site_id: str
    meddra_code: int
    verbatim_term: str | None
    action_taken: str
    first_stored_at: datetime
    history: list[AeVersion] = field(default_factory=list)

    @property
    def changed_at_position(self) -> int:
        return self.history[-1].position


@dataclass
class ReviewDetails:
    """Every patient's and AE's detail, at one log position."""

    position: int = 0
    patients: dict[str, PatientDetail] = field(default_factory=dict)
    aes: dict[UUID, AeDetail] = field(default_factory=dict)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(str(v) for v in value)
    if isinstance(value, (date, UUID)):
        return str(value)
    return value.value if hasattr(value, "value") else value


_AMENDED_FIELDS = {
    AdverseEventUpdated: (
        "grade", "grade_change", "attribution", "seriousness", "expectedness", "immune_related",
    ),
    AdverseEventResolved: ("outcome", "end_date"),
    AdverseEventRetracted: (),
    SafetyReportSubmitted: ("report_reference",),
}  # fmt: skip
_REPORTED_FIELDS = (
    "ctcae_term", "meddra_code", "grade", "onset_date", "seriousness", "expectedness",
    "immune_related", "attribution", "action_taken", "verbatim_term",
)  # fmt: skip


def _version(
    event: EventBase, position: int, stored_at: datetime, names: tuple[str, ...]
) -> AeVersion:
    changes = {n: _jsonable(getattr(event, n)) for n in names if getattr(event, n) is not None}
    return AeVersion(
        position=position,
        event_type=event.event_type,
        event_id=event.event_id,
        reporter=event.reporter,
        recorded_at=_utc(event.recorded_at),
        stored_at=stored_at,
        changes=changes,
        reason=event.reason
        if isinstance(event, (AdverseEventUpdated, AdverseEventRetracted))
        else None,
        occurred_at=_utc(event.occurred_at),
    )


def _administration(event: TreatmentAdministered, position: int) -> Administration:
    given = event.treatment
    fields: dict[str, Any] = {k: v for k, v in given.model_dump().items() if k != "technique"}
    return Administration(given_at=_utc(event.occurred_at), position=position, **fields)


def _patient(details: ReviewDetails, event: EventBase) -> PatientDetail:
    found = details.patients.get(event.patient_id)
    if found is None:
        found = details.patients[event.patient_id] = PatientDetail(event.patient_id, event.site_id)
    return found


_CLINICAL_DATE = {
    AdverseEventReported: "onset_date",
    AdverseEventResolved: "end_date",
    PatientDied: "death_date",
    PatientLostToFollowUp: "last_contact_date",
}
"""The field holding the clinical date of the events that name one (others: ``occurred_at``);
looked up by type: ``getattr`` of an absent field of a pydantic model raises and catches an
AttributeError, the larger part of this fold's time when it was probed for every event."""


def _clinical_day(event: EventBase) -> date:
    name = _CLINICAL_DATE.get(type(event))
    day: date = getattr(event, name) if name is not None else event.occurred_at.date()
    return day


def fold_details(
    details: ReviewDetails, event: EventBase, position: int, stored_at: datetime
) -> None:
    """Fold one stored event into ``details`` (trial-level events change nothing but the
    position)."""
    details.position = position
    kind = type(event)
    if kind is AdverseEventReported:
        report = cast(AdverseEventReported, event)
        details.aes[report.event_id] = AeDetail(
            ae_id=report.event_id,
            patient_id=report.patient_id,
            site_id=report.site_id,
            meddra_code=report.meddra_code,
            verbatim_term=report.verbatim_term,
            action_taken=str(report.action_taken),
            first_stored_at=stored_at,
            history=[_version(report, position, stored_at, _REPORTED_FIELDS)],
        )
    elif kind in _AMENDED_FIELDS:
        ae = details.aes.get(cast(AdverseEventUpdated, event).ae_id)
        if ae is None:  # the store never lets an amendment cite an unknown AE
            return
        ae.history.append(_version(event, position, stored_at, _AMENDED_FIELDS[kind]))
    if kind is DsmbDecision or kind is ClockTicked or kind is AlertTriaged:  # the trial's
        return
    patient = _patient(details, event)
    patient.changed_at_position, patient.last_stored_at = position, stored_at
    day = _clinical_day(event)
    if kind is not AdverseEventRetracted and kind is not SafetyReportSubmitted:
        patient.last_data_on = max(patient.last_data_on or day, day)
    _fold_patient(patient, event, position)


def _fold_patient(patient: PatientDetail, event: EventBase, position: int) -> None:
    if isinstance(event, PatientEnrolled):
        patient.consent_date = event.consent_date
        patient.planned_modalities = sorted(str(m) for m in event.planned_modalities)
    elif isinstance(event, TreatmentAdministered):
        patient.administrations.append(_administration(event, position))
    elif isinstance(event, LabResulted):
        patient.labs.append(
            LabValue(
                str(event.test), event.value, event.unit, event.uln, event.lln,
                _utc(event.occurred_at), position,
            )
        )  # fmt: skip
    elif isinstance(event, ChildPughAssessed):
        patient.child_pugh.append(
            ChildPughScore(
                event.score, str(event.child_pugh_class), event.ascites,
                _utc(event.occurred_at), position,
            )
        )  # fmt: skip
    elif isinstance(event, PatientDied):
        patient.exit = patient.death = Exit(
            "died", event.death_date, position, None, event.primary_cause, event.related_ae_id
        )
    elif isinstance(event, PatientWithdrawn):
        patient.exit = Exit(
            "withdrawn", event.occurred_at.date(), position, str(event.reason), event.details
        )
    elif isinstance(event, PatientLostToFollowUp):
        patient.exit = Exit("lost_to_follow_up", event.last_contact_date, position)
