"""A patient's timeline: what cannot be true given their consent and their death.

Checked on ingest against the write-side index of every patient (``PatientFacts``): an AE or a
treatment dated before the patient's consent; anything clinical dated after their death other
than follow-ups of AEs already reported; a second fatal (grade 5) AE for one patient; a death
citing an AE that is not grade 5; an AE resolved as fatal below grade 5. Labs and Child-Pugh
assessments may predate consent (screening and baseline values).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import NamedTuple, cast
from uuid import UUID

from safety_stream.events import (
    AdverseEventReported,
    AdverseEventResolved,
    AdverseEventUpdated,
    ChildPughAssessed,
    EventBase,
    LabResulted,
    PatientDied,
    PatientEnrolled,
    PatientLostToFollowUp,
    PatientWithdrawn,
    TreatmentAdministered,
)
from safety_stream.validation.codes import ProblemCode
from safety_stream.validation.problems import Problem


class AeFacts(NamedTuple):
    """What amendments are checked against: whose AE it is, its term, onset and state."""

    patient_id: str
    site_id: str
    ctcae_term: str
    onset_date: date
    grade: int
    fatal: bool  # seriousness includes 'death'
    retracted: bool = False


class PatientFacts(NamedTuple):
    """What a patient's later events are checked against."""

    site_id: str
    consent_date: date | None = None  # None: enrolled before consent dates were indexed
    death_date: date | None = None
    fatal_ae_id: UUID | None = None  # the AE last reported or updated at grade 5


FindAe = Callable[[UUID], AeFacts | None]


def facts_of_enrolment(event: PatientEnrolled) -> PatientFacts:
    return PatientFacts(event.site_id, event.consent_date)


def patient_facts_after(event: EventBase, current: PatientFacts | None) -> PatientFacts | None:
    """The patient's facts once ``event`` is accepted (None: it changes none of them)."""
    kind = type(event)
    if kind is PatientEnrolled:
        return facts_of_enrolment(cast(PatientEnrolled, event))
    if current is None:
        return None
    if kind is PatientDied:
        return current._replace(death_date=cast(PatientDied, event).death_date)
    if kind is AdverseEventReported and cast(AdverseEventReported, event).grade == 5:
        return current._replace(fatal_ae_id=event.event_id)
    if kind is AdverseEventUpdated and cast(AdverseEventUpdated, event).grade == 5:
        return current._replace(fatal_ae_id=cast(AdverseEventUpdated, event).ae_id)
    return None


def _clinical_date(event: EventBase) -> date | None:
    """The date an event says something happened to the patient (None: not checked)."""
    kind = type(event)
    if kind is AdverseEventReported:
        return cast(AdverseEventReported, event).onset_date
    if kind is PatientDied:
        return cast(PatientDied, event).death_date
    if kind is PatientLostToFollowUp:
        return cast(PatientLostToFollowUp, event).last_contact_date
    if kind in (TreatmentAdministered, LabResulted, ChildPughAssessed, PatientWithdrawn):
        return event.occurred_at.date()
    return None  # enrolment (checked on its own), and amendments of an AE already reported


_ON_STUDY_ONLY = (AdverseEventReported, TreatmentAdministered)  # not before consent


def timeline_problems(event: EventBase, facts: PatientFacts, find_ae: FindAe) -> list[Problem]:
    """Problems of ``event`` against its patient's consent, death and fatal AE."""
    day = _clinical_date(event)
    kind = type(event)
    problems: list[Problem] = []
    if day is not None:
        path = _DATE_PATH.get(kind, "occurred_at")
        if facts.consent_date is not None and kind in _ON_STUDY_ONLY and day < facts.consent_date:
            problems.append(
                Problem(
                    path=path,
                    message=f"{day} is before the patient's consent ({facts.consent_date})",
                    code=ProblemCode.TIME_BEFORE_CONSENT,
                    allowed=f"a date on or after {facts.consent_date} (what happened before "
                    "consent is medical history, not an event on study)",
                )
            )
        if facts.death_date is not None and kind is PatientDied:
            problems.append(
                Problem(
                    path="death_date",
                    message=f"the patient's death on {facts.death_date} is already recorded",
                    code=ProblemCode.REFERENCE_ALREADY_DIED,
                    allowed="one patient.died per patient (correct the first one's details "
                    "with the data manager)",
                )
            )
        elif facts.death_date is not None and day > facts.death_date:
            problems.append(
                Problem(
                    path=path,
                    message=f"{day} is after the patient's death on {facts.death_date}",
                    code=ProblemCode.TIME_AFTER_DEATH,
                    allowed=f"a date on or before {facts.death_date}; after a death only "
                    "follow-ups of AEs already reported (update, resolve, retract, report)",
                )
            )
    new_fatal = (
        event.event_id
        if kind is AdverseEventReported and cast(AdverseEventReported, event).grade == 5
        else cast(AdverseEventUpdated, event).ae_id
        if kind is AdverseEventUpdated and cast(AdverseEventUpdated, event).grade == 5
        else None
    )
    if new_fatal is not None and facts.fatal_ae_id not in (None, new_fatal):
        earlier = find_ae(facts.fatal_ae_id)
        if earlier is not None and earlier.grade == 5 and not earlier.retracted:
            problems.append(
                Problem(
                    path="grade",
                    message=f"the patient already has a fatal (grade 5) AE, "
                    f"{facts.fatal_ae_id} ({earlier.ctcae_term})",
                    code=ProblemCode.CONSISTENCY_SECOND_FATAL_AE,
                    allowed="one grade 5 AE per patient: grade this one 4 or lower, or correct "
                    "or retract the earlier one first",
                )
            )
    if kind is PatientDied:
        problems += _cited_fatal_ae(cast(PatientDied, event), find_ae)
    return problems


_DATE_PATH = {
    AdverseEventReported: "onset_date",
    PatientDied: "death_date",
    PatientLostToFollowUp: "last_contact_date",
}


def _cited_fatal_ae(event: PatientDied, find_ae: FindAe) -> list[Problem]:
    if event.related_ae_id is None:
        return []
    cited = find_ae(event.related_ae_id)
    if cited is None or cited.patient_id != event.patient_id:
        return [
            Problem(
                path="related_ae_id",
                message=f"no AE {event.related_ae_id} has been reported for this patient",
                code=ProblemCode.REFERENCE_UNKNOWN_AE,
                allowed="the event_id of this patient's fatal AE, or no related_ae_id",
            )
        ]
    if cited.grade != 5 or cited.retracted:
        return [
            Problem(
                path="related_ae_id",
                message=f"the cited AE ({cited.ctcae_term}) is grade {cited.grade}, not fatal",
                code=ProblemCode.CONSISTENCY_DEATH_CITES_NONFATAL_AE,
                allowed="first send ae.updated with grade 5 and seriousness 'death' for that "
                "AE, or leave related_ae_id out if the death was not caused by it",
            )
        ]
    return []


def fatal_outcome_problem(event: AdverseEventResolved, facts: AeFacts) -> Problem | None:
    """An AE resolved as fatal must be grade 5 (CTCAE: grade 5 is death related to the AE)."""
    if event.outcome.value != "fatal" or facts.grade == 5:
        return None
    return Problem(
        path="outcome",
        message=f"outcome 'fatal' on a grade {facts.grade} AE ({facts.ctcae_term})",
        code=ProblemCode.CONSISTENCY_FATAL_OUTCOME_BELOW_GRADE5,
        allowed="first send ae.updated with grade 5 and seriousness 'death', then resolve "
        "it as fatal; or correct the outcome",
    )
