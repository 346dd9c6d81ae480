"""Checks between records: amendments cite an existing AE, patients belong to their site.

References resolve first against the records already accepted from the same input, then
against an outside ``ReferenceSource`` (the event store, on ingest). Without an outside source
(``safety-stream validate`` on a file) a reference that cannot be resolved in the file is not
an error: it is reported as unresolved and checked again on ingest.

What is remembered per accepted record is kept to atomic values (ints, strings, bytes, dates)
so the garbage collector does not have to walk it: this check runs once per ingested event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast
from uuid import UUID

from pydantic import ValidationError

from safety_stream.ctcae import CtcaeDictionary
from safety_stream.events import (
    AE_AMENDMENTS,
    AdverseEventReported,
    AdverseEventResolved,
    AdverseEventRetracted,
    AdverseEventUpdated,
    AlertTriaged,
    ClockTicked,
    DsmbDecision,
    EventBase,
    GradeChange,
    PatientEnrolled,
    SafetyReportSubmitted,
    Seriousness,
    decode_json,
)
from safety_stream.validation.checks import death_consistency, grade_problem
from safety_stream.validation.codes import ProblemCode
from safety_stream.validation.problems import Problem
from safety_stream.validation.timeline import (
    AeFacts as AeFacts,  # re-exported: the store's backends import it from here
)
from safety_stream.validation.timeline import (
    PatientFacts,
    facts_of_enrolment,
    fatal_outcome_problem,
    patient_facts_after,
    timeline_problems,
)

_AMENDMENTS = frozenset(AE_AMENDMENTS)
_NO_PATIENT = (DsmbDecision, ClockTicked, AlertTriaged)  # the trial's records, no patient's
# Event classes are final, so exact type tests are safe here; they matter because pydantic's
# metaclass makes isinstance() cost ~10x more, and this code runs for every event.


class ReferenceSource(Protocol):
    """Facts about events accepted before this input (implemented by the event store)."""

    def ae_facts(self, ae_id: UUID) -> AeFacts | None: ...

    def patient_facts(self, patient_id: str) -> PatientFacts | None: ...


@dataclass(frozen=True, slots=True)
class ReferenceResult:
    problems: list[Problem]
    unresolved: list[str]
    duplicate_of: str | None = None


CLEAN = ReferenceResult([], [])


NOT_ENROLLED = Problem(
    path="patient_id",
    message="this patient has not been enrolled",
    code=ProblemCode.REFERENCE_PATIENT_NOT_ENROLLED,
    allowed="a patient with an earlier patient.enrolled event",
)


class ReferenceChecker:
    """Tracks the accepted records of one input and checks each new record against them."""

    def __init__(
        self,
        ctcae: CtcaeDictionary,
        outside: ReferenceSource | None = None,
        *,
        one_site: bool = False,
    ) -> None:
        """``one_site``: the caller writes for one site only; another site's patients and AEs
        are answered exactly as ids that do not exist, so answers never reveal them."""
        self._ctcae = ctcae
        self._outside = outside
        self._one_site = one_site
        # keyed by UUID.int: hashing an int is native, UUID.__hash__ is Python code
        self._aes: dict[int, AeFacts] = {}
        self._patients: dict[str, PatientFacts] = {}
        self._seen_raw: dict[int, bytes] = {}
        self._seen_at: dict[int, str] = {}

    def check(self, event: EventBase, location: str, raw: bytes, *, admit: bool) -> ReferenceResult:
        """Problems with the references of ``event``.

        With ``admit`` (the event passed every other check), a clean event is remembered so
        later records may refer to it; a rejected event is never remembered.
        """
        key = event.event_id.int
        if key in self._seen_raw:
            return self._resend(event, raw, key)
        kind = type(event)
        known = self._patients.get(event.patient_id)
        if (  # the common case: a known patient of this site, nothing else to resolve
            kind not in _AMENDMENTS
            and kind is not PatientEnrolled
            and known is not None
            and known.site_id == event.site_id
        ):
            timeline = timeline_problems(event, known, self._find_ae)
            if timeline:
                return ReferenceResult(timeline, [])
            if admit:  # inlined, not a helper call: this path runs for most events
                self._seen_raw[key] = raw
                self._seen_at[key] = location
                self._remember(event)
            return CLEAN
        problems: list[Problem] = []
        unresolved: list[str] = []
        if kind not in _NO_PATIENT:  # decisions, ticks and triage steps belong to no patient
            self._check_patient(event, problems, unresolved)
        if type(event) in _AMENDMENTS:
            # `type(x) in` does not narrow; _AMENDMENTS holds exactly the AE amendment classes
            self._check_amendment(event, problems, unresolved)  # type: ignore[arg-type]
        if admit and not problems:
            self._seen_raw[key] = raw
            self._seen_at[key] = location
            self._remember(event)
        if problems or unresolved:
            return ReferenceResult(problems, unresolved)
        return CLEAN

    def forget(self, event: EventBase) -> None:
        """Undo the admission of ``event`` (its CSV row was rejected after all): later records
        must not see it. Only reports and amendments of this input are ever forgotten."""
        key = event.event_id.int
        self._seen_raw.pop(key, None)
        self._seen_at.pop(key, None)
        if type(event) is AdverseEventReported:
            self._aes.pop(key, None)

    def _resend(self, event: EventBase, raw: bytes, key: int) -> ReferenceResult:
        """Same id again: a duplicate if the payload is the same event, else a conflict."""
        location, first_raw = self._seen_at[key], self._seen_raw[key]
        if raw == first_raw or _same_event(first_raw, event):
            return ReferenceResult([], [], duplicate_of=location)
        return ReferenceResult(
            [
                Problem(
                    path="event_id",
                    message=f"event_id is already used by {location} for a different event",
                    code=ProblemCode.REFERENCE_EVENT_ID_CONFLICT,
                    allowed="a new UUID for a new event, or the identical event to resend it",
                )
            ],
            [],
        )

    def _remember(self, event: EventBase) -> None:
        kind = type(event)
        if kind is AdverseEventReported:  # the most frequent event: no detour
            self._aes[event.event_id.int] = facts_of_report(cast(AdverseEventReported, event))
            return
        if kind is PatientEnrolled:
            self._patients[event.patient_id] = facts_of_enrolment(cast(PatientEnrolled, event))
            return
        change = ae_facts_after(event, self._find_ae)
        if change is not None:
            self._aes[change[0].int] = change[1]
        patient = patient_facts_after(event, self._patient_facts(event.patient_id))
        if patient is not None:
            self._patients[event.patient_id] = patient

    def _patient_facts(self, patient_id: str) -> PatientFacts | None:
        facts = self._patients.get(patient_id)
        if facts is None and self._outside is not None:
            facts = self._outside.patient_facts(patient_id)
            if facts is not None:
                self._patients[patient_id] = facts
        return facts

    def _find_ae(self, ae_id: UUID) -> AeFacts | None:
        facts = self._aes.get(ae_id.int)
        if facts is None and self._outside is not None:
            facts = self._outside.ae_facts(ae_id)
        return facts

    def _check_patient(
        self, event: EventBase, problems: list[Problem], unresolved: list[str]
    ) -> None:
        facts = self._patient_facts(event.patient_id)
        site = None if facts is None else facts.site_id
        if type(event) is PatientEnrolled:
            if site is not None:
                problems.append(
                    Problem(
                        path="patient_id",
                        message="this patient is already enrolled",
                        code=ProblemCode.REFERENCE_ALREADY_ENROLLED,
                        allowed="a patient id not yet enrolled in the trial",
                    )
                )
        elif site is None or (self._one_site and site != event.site_id):
            if self._outside is None:
                unresolved.append("patient_id")
            else:
                problems.append(NOT_ENROLLED)
        elif site != event.site_id:
            problems.append(
                Problem(
                    path="site_id",
                    message=f"this patient is enrolled at another site, not at {event.site_id}",
                    code=ProblemCode.REFERENCE_PATIENT_OF_OTHER_SITE,
                    allowed="the site that enrolled the patient",
                )
            )
        elif facts is not None:
            problems.extend(timeline_problems(event, facts, self._find_ae))

    def _check_amendment(
        self,
        event: AdverseEventUpdated
        | AdverseEventResolved
        | AdverseEventRetracted
        | SafetyReportSubmitted,
        problems: list[Problem],
        unresolved: list[str],
    ) -> None:
        facts = self._find_ae(event.ae_id)
        if facts is not None and self._one_site and facts.site_id != event.site_id:
            facts = None  # another site's AE: as unknown as an id never reported
        if facts is None:
            if self._outside is None:
                unresolved.append("ae_id")
            else:
                problems.append(
                    Problem(
                        path="ae_id",
                        message=f"no AE with id {event.ae_id} has been reported",
                        code=ProblemCode.REFERENCE_UNKNOWN_AE,
                        allowed="the event_id of an earlier ae.reported for this patient",
                    )
                )
            return
        if facts.patient_id != event.patient_id or facts.site_id != event.site_id:
            problems.append(
                Problem(
                    path="ae_id",
                    message=f"AE {event.ae_id} was reported for a different patient",
                    code=ProblemCode.REFERENCE_AE_OF_OTHER_PATIENT,
                    allowed="the event_id of an AE of this patient",
                )
            )
        elif facts.retracted:
            problems.append(
                Problem(
                    path="ae_id",
                    message=f"AE {event.ae_id} was retracted and cannot be amended",
                    code=ProblemCode.REFERENCE_AE_RETRACTED,
                    allowed="an AE that has not been retracted (report a new AE instead)",
                )
            )
        elif type(event) is AdverseEventUpdated:
            self._check_update(event, facts, problems)
        elif type(event) is AdverseEventResolved and (fatal := fatal_outcome_problem(event, facts)):
            problems.append(fatal)
        elif type(event) is AdverseEventResolved and event.end_date < facts.onset_date:
            problems.append(
                Problem(
                    path="end_date",
                    message=f"end {event.end_date} is before the AE's onset {facts.onset_date}",
                    code=ProblemCode.TIME_END_BEFORE_ONSET,
                    allowed=f"a date on or after {facts.onset_date}",
                )
            )

    def _check_update(
        self, event: AdverseEventUpdated, facts: AeFacts, problems: list[Problem]
    ) -> None:
        term = self._ctcae.lookup(facts.ctcae_term)
        if event.grade is not None and term is not None:
            bad = grade_problem(term, event.grade, self._ctcae.version)
            if bad:
                problems.append(bad)
        change = event.grade_change
        if event.grade is not None and change in (GradeChange.WORSENED, GradeChange.IMPROVED):
            worse = change == GradeChange.WORSENED
            if (event.grade > facts.grade) != worse or event.grade == facts.grade:
                problems.append(
                    Problem(
                        path="grade",
                        message=f"grade_change '{change}' but grade {event.grade} is not "
                        f"{'above' if worse else 'below'} the AE's current grade {facts.grade}",
                        code=ProblemCode.CONSISTENCY_GRADE_CHANGE,
                        allowed=f"a grade {'above' if worse else 'below'} {facts.grade}, or "
                        "grade_change 'corrected' if the last grade was wrong",
                    )
                )
        if (event.grade is None) != (event.seriousness is None):
            # one of the pair changed: check it against the AE's current other half
            fatal = (
                facts.fatal if event.seriousness is None else Seriousness.DEATH in event.seriousness
            )
            grade = facts.grade if event.grade is None else event.grade
            problems.extend(death_consistency(grade, fatal))


def _same_event(raw: bytes, event: EventBase) -> bool:
    """Whether ``raw`` (the first payload seen under this id) decodes to ``event``."""
    try:
        return decode_json(raw) == event
    except ValidationError:
        return False


def facts_of_report(report: AdverseEventReported) -> AeFacts:
    return AeFacts(
        report.patient_id,
        report.site_id,
        report.ctcae_term,
        report.onset_date,
        report.grade,
        Seriousness.DEATH in report.seriousness,
    )


def ae_facts_after(
    event: EventBase, current: Callable[[UUID], AeFacts | None]
) -> tuple[UUID, AeFacts] | None:
    """The facts of the AE an accepted event creates or changes (None if it touches no AE).

    Shared by the in-batch index above and by the stores' reference indexes.
    """
    kind = type(event)
    if kind is AdverseEventReported:
        return event.event_id, facts_of_report(cast(AdverseEventReported, event))
    if kind is AdverseEventRetracted:
        retraction = cast(AdverseEventRetracted, event)
        facts = current(retraction.ae_id)
        return None if facts is None else (retraction.ae_id, facts._replace(retracted=True))
    if kind is AdverseEventUpdated:
        update = cast(AdverseEventUpdated, event)
        facts = current(update.ae_id)
        if facts is None:
            return None
        fatal = (
            facts.fatal if update.seriousness is None else Seriousness.DEATH in update.seriousness
        )
        grade = facts.grade if update.grade is None else update.grade
        return update.ae_id, facts._replace(grade=grade, fatal=fatal)
    return None
