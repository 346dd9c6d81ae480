"""Checks between records: amendments cite an existing AE, patients belong to their site.

References resolve first against the records already accepted from the same input, then
against an outside ``ReferenceSource`` (the event store, on ingest). Without an outside source
(``safety-stream validate`` on a file) a reference that cannot be resolved in the file is not
an error: it is reported as unresolved and checked again on ingest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Protocol
from uuid import UUID

from safety_stream.ctcae import CtcaeDictionary
from safety_stream.events import (
    AdverseEventReported,
    AdverseEventResolved,
    AdverseEventRetracted,
    AdverseEventUpdated,
    EventBase,
    PatientEnrolled,
    Seriousness,
)
from safety_stream.validation.checks import death_consistency, grade_problem
from safety_stream.validation.problems import Problem


@dataclass(frozen=True, slots=True)
class AeFacts:
    """What amendments are checked against: whose AE it is, its term, onset and state."""

    patient_id: str
    site_id: str
    ctcae_version: str
    ctcae_term: str
    onset_date: date
    grade: int
    seriousness: frozenset[Seriousness]
    retracted: bool = False


class ReferenceSource(Protocol):
    """Facts about events accepted before this input (implemented by the event store)."""

    def ae_facts(self, ae_id: UUID) -> AeFacts | None: ...

    def patient_site(self, patient_id: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ReferenceResult:
    problems: list[Problem]
    unresolved: list[str]
    duplicate_of: str | None = None


class ReferenceChecker:
    """Tracks the accepted records of one input and checks each new record against them."""

    def __init__(self, ctcae: CtcaeDictionary, outside: ReferenceSource | None = None) -> None:
        self._ctcae = ctcae
        self._outside = outside
        self._aes: dict[UUID, AeFacts] = {}
        self._patients: dict[str, str] = {}
        self._seen: dict[UUID, tuple[int, str]] = {}

    def check(self, event: EventBase, location: str) -> ReferenceResult:
        """Problems with the references of ``event``; does not record it (see ``admit``)."""
        seen = self._seen.get(event.event_id)
        if seen is not None:
            if seen[0] == hash(event):
                return ReferenceResult([], [], duplicate_of=seen[1])
            return ReferenceResult(
                [
                    Problem(
                        path="event_id",
                        message=f"event_id is already used by {seen[1]} for a different event",
                        code="reference.event_id_conflict",
                        allowed="a new UUID for a new event, or the identical event to resend it",
                    )
                ],
                [],
            )
        problems: list[Problem] = []
        unresolved: list[str] = []
        self._check_patient(event, problems, unresolved)
        if isinstance(event, AdverseEventUpdated | AdverseEventResolved | AdverseEventRetracted):
            self._check_amendment(event, problems, unresolved)
        return ReferenceResult(problems, unresolved)

    def admit(self, event: EventBase, location: str) -> None:
        """Record an accepted event so later records may refer to it."""
        self._seen[event.event_id] = (hash(event), location)
        if isinstance(event, PatientEnrolled):
            self._patients[event.patient_id] = event.site_id
        elif isinstance(event, AdverseEventReported):
            self._aes[event.event_id] = AeFacts(
                patient_id=event.patient_id,
                site_id=event.site_id,
                ctcae_version=event.ctcae_version,
                ctcae_term=event.ctcae_term,
                onset_date=event.onset_date,
                grade=event.grade,
                seriousness=event.seriousness,
            )
        elif isinstance(event, AdverseEventUpdated | AdverseEventRetracted):
            facts = self._find_ae(event.ae_id)
            if facts is not None:
                if isinstance(event, AdverseEventRetracted):
                    self._aes[event.ae_id] = replace(facts, retracted=True)
                else:
                    self._aes[event.ae_id] = replace(
                        facts,
                        grade=event.grade if event.grade is not None else facts.grade,
                        seriousness=event.seriousness
                        if event.seriousness is not None
                        else facts.seriousness,
                    )

    def _find_ae(self, ae_id: UUID) -> AeFacts | None:
        facts = self._aes.get(ae_id)
        if facts is None and self._outside is not None:
            facts = self._outside.ae_facts(ae_id)
        return facts

    def _check_patient(
        self, event: EventBase, problems: list[Problem], unresolved: list[str]
    ) -> None:
        site = self._patients.get(event.patient_id)
        if site is None and self._outside is not None:
            site = self._outside.patient_site(event.patient_id)
        if isinstance(event, PatientEnrolled):
            if site is not None:
                problems.append(
                    Problem(
                        path="patient_id",
                        message="this patient is already enrolled",
                        code="reference.already_enrolled",
                        allowed="a patient id not yet enrolled in the trial",
                    )
                )
            return
        if site is None:
            if self._outside is None:
                unresolved.append("patient_id")
            else:
                problems.append(
                    Problem(
                        path="patient_id",
                        message="this patient has not been enrolled",
                        code="reference.patient_not_enrolled",
                        allowed="a patient with an earlier patient.enrolled event",
                    )
                )
        elif site != event.site_id:
            problems.append(
                Problem(
                    path="site_id",
                    message=f"this patient is enrolled at another site, not at {event.site_id}",
                    code="reference.patient_of_other_site",
                    allowed="the site that enrolled the patient",
                )
            )

    def _check_amendment(
        self,
        event: AdverseEventUpdated | AdverseEventResolved | AdverseEventRetracted,
        problems: list[Problem],
        unresolved: list[str],
    ) -> None:
        facts = self._find_ae(event.ae_id)
        if facts is None:
            if self._outside is None:
                unresolved.append("ae_id")
                return
            problems.append(
                Problem(
                    path="ae_id",
                    message=f"no AE with id {event.ae_id} has been reported",
                    code="reference.unknown_ae",
                    allowed="the event_id of an earlier ae.reported for this patient",
                )
            )
            return
        if facts.patient_id != event.patient_id or facts.site_id != event.site_id:
            problems.append(
                Problem(
                    path="ae_id",
                    message=f"AE {event.ae_id} was reported for a different patient",
                    code="reference.ae_of_other_patient",
                    allowed="the event_id of an AE of this patient",
                )
            )
            return
        if facts.retracted:
            problems.append(
                Problem(
                    path="ae_id",
                    message=f"AE {event.ae_id} was retracted and cannot be amended",
                    code="reference.ae_retracted",
                    allowed="an AE that has not been retracted (report a new AE instead)",
                )
            )
            return
        if isinstance(event, AdverseEventUpdated):
            term = self._ctcae.lookup(facts.ctcae_term)
            if event.grade is not None and term is not None:
                bad = grade_problem(term, event.grade, self._ctcae.version)
                if bad:
                    problems.append(bad)
            if (event.grade is None) != (event.seriousness is None):
                # one of the pair changed: check it against the AE's current other half
                problems.extend(
                    death_consistency(
                        event.grade if event.grade is not None else facts.grade,
                        event.seriousness if event.seriousness is not None else facts.seriousness,
                    )
                )
        if isinstance(event, AdverseEventResolved) and event.end_date < facts.onset_date:
            problems.append(
                Problem(
                    path="end_date",
                    message=f"end {event.end_date} is before the AE's onset {facts.onset_date}",
                    code="time.end_before_onset",
                    allowed=f"a date on or after {facts.onset_date}",
                )
            )
