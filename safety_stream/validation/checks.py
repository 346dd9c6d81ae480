"""Domain checks on one well-formed event: CTCAE v5.0 coding, grades, dates, consistency.

Pure functions of the event and the CTCAE dictionary. Checks that need other events (does the
amended AE exist, does the patient belong to the site) live in ``references``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from safety_stream.ctcae import CtcaeDictionary, CtcaeTerm
from safety_stream.events import (
    AdverseEventReported,
    AdverseEventResolved,
    AdverseEventUpdated,
    ChildPughAssessed,
    EventBase,
    LabResulted,
    PatientDied,
    PatientLostToFollowUp,
    Seriousness,
    TreatmentAdministered,
    child_pugh_class,
)
from safety_stream.events.labs import TESTS_NEEDING_ULN
from safety_stream.events.treatment import RadiotherapyFraction
from safety_stream.validation.codes import ProblemCode
from safety_stream.validation.problems import Problem

ONSET_TOLERANCE = timedelta(days=1)
"""onset_date is a local calendar date, occurred_at a UTC instant: they may differ by a day."""


def grades_text(term: CtcaeTerm) -> str:
    """'grade 5' or 'grades 1, 2, 3'."""
    grades = sorted(term.grades)
    listed = ", ".join(str(g) for g in grades)
    return f"grade {listed}" if len(grades) == 1 else f"grades {listed}"


def utc_text(value: datetime) -> str:
    """A time as its UTC wire form, e.g. 2026-03-01T08:00:00Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def grade_problem(term: CtcaeTerm, grade: int, version: str) -> Problem | None:
    """A problem if CTCAE does not define ``grade`` for ``term``."""
    if grade in term.grades:
        return None
    return Problem(
        path="grade",
        message=f"grade {grade} is not defined for '{term.term}' in CTCAE v{version}",
        code=ProblemCode.CTCAE_GRADE_NOT_ALLOWED,
        allowed=grades_text(term),
    )


DEFAULT_CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of the server's clock a site's clock may run before its times are refused."""


def future_problems(event: EventBase, received_at: datetime, latest: datetime) -> list[Problem]:
    """Times of ``event`` after the server received it (beyond the clock-skew tolerance): a
    site cannot report what has not happened yet, nor move the trial's clock ahead."""
    problems = []
    for path in ("occurred_at", "recorded_at"):
        moment: datetime = getattr(event, path)
        if moment > latest:
            problems.append(
                Problem(
                    path=path,
                    message=f"{path} {_stamp(moment)} is in the future: the server received "
                    f"this at {_stamp(received_at)} (tolerance {_minutes(latest - received_at)})",
                    code=ProblemCode.TIME_IN_THE_FUTURE,
                    allowed=f"a time on or before {_stamp(latest)}; check the site's clock and "
                    "the date's year and month",
                )
            )
    return problems


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:g} min"


def _future_date(path: str, value: date, recorded: date, what: str) -> Problem | None:
    if value <= recorded:
        return None
    return Problem(
        path=path,
        message=f"{what} {value.isoformat()} is after the report was recorded ({recorded})",
        code=ProblemCode.TIME_AFTER_RECORDED,
        allowed="a date on or before the date in recorded_at",
    )


def _check_reported(event: AdverseEventReported, ctcae: CtcaeDictionary) -> list[Problem]:
    term = ctcae.terms.get(event.ctcae_term)
    if (  # the common case, checked without building anything
        term is not None
        and event.meddra_code == term.meddra_code
        and event.grade in term.grades
        and (event.verbatim_term is not None or not term.needs_verbatim)
        and event.onset_date <= event.recorded_at.date()
        and abs(event.onset_date - event.occurred_at.date()) <= ONSET_TOLERANCE
        and (event.grade == 5) == (Seriousness.DEATH in event.seriousness)
    ):
        return []
    return _reported_problems(event, term, ctcae)


def _reported_problems(
    event: AdverseEventReported, term: CtcaeTerm | None, ctcae: CtcaeDictionary
) -> list[Problem]:
    problems: list[Problem] = []
    if term is None:
        suggestions = ctcae.suggest(event.ctcae_term)
        hint = " or ".join(f"'{s}'" for s in suggestions)
        problems.append(
            Problem(
                path="ctcae_term",
                message=f"'{event.ctcae_term}' is not a CTCAE v{ctcae.version} term"
                + (f"; did you mean {hint}?" if hint else ""),
                code=ProblemCode.CTCAE_UNKNOWN_TERM,
                allowed=f"one of the {len(ctcae)} CTCAE v{ctcae.version} terms, spelt exactly",
            )
        )
    else:
        if event.meddra_code != term.meddra_code:
            owner = ctcae.by_code(event.meddra_code)
            problems.append(
                Problem(
                    path="meddra_code",
                    message=f"{event.meddra_code} is not the MedDRA LLT code of '{term.term}'"
                    + (f" (it is the code of '{owner.term}')" if owner else ""),
                    code=ProblemCode.CTCAE_CODE_MISMATCH,
                    allowed=str(term.meddra_code),
                )
            )
        bad_grade = grade_problem(term, event.grade, ctcae.version)
        if bad_grade:
            problems.append(bad_grade)
        if term.needs_verbatim and event.verbatim_term is None:
            problems.append(
                Problem(
                    path="verbatim_term",
                    message=f"'{term.term}' requires the verbatim term",
                    code=ProblemCode.CTCAE_VERBATIM_REQUIRED,
                    allowed="the investigator's description of the event (1-200 characters)",
                )
            )
    recorded = event.recorded_at.date()
    future = _future_date("onset_date", event.onset_date, recorded, "onset")
    if future:
        problems.append(future)
    if abs(event.onset_date - event.occurred_at.date()) > ONSET_TOLERANCE:
        problems.append(
            Problem(
                path="onset_date",
                message=f"onset_date {event.onset_date} does not match occurred_at "
                f"({event.occurred_at.date()} UTC)",
                code=ProblemCode.TIME_ONSET_MISMATCH,
                allowed="the date of occurred_at, give or take one day for the time zone",
            )
        )
    problems.extend(death_consistency(event.grade, Seriousness.DEATH in event.seriousness))
    return problems


def death_consistency(grade: int | None, fatal: bool | None) -> list[Problem]:
    """CTCAE grade 5 is death related to the AE; ICH E2A 'death' must go with it both ways.

    ``fatal`` says whether the seriousness criteria include 'death' (None: not known here).
    """
    if grade is None or fatal is None:
        return []
    if grade == 5 and not fatal:
        return [
            Problem(
                path="seriousness",
                message="grade 5 (death) requires the seriousness criterion 'death'",
                code=ProblemCode.CONSISTENCY_GRADE5_WITHOUT_DEATH,
                allowed="seriousness including 'death'",
            )
        ]
    if fatal and grade != 5:
        return [
            Problem(
                path="grade",
                message=f"seriousness 'death' requires grade 5, not grade {grade}",
                code=ProblemCode.CONSISTENCY_DEATH_WITHOUT_GRADE5,
                allowed="grade 5",
            )
        ]
    return []


def _check_updated(event: AdverseEventUpdated, ctcae: CtcaeDictionary) -> list[Problem]:
    changes = (
        event.grade,
        event.attribution,
        event.seriousness,
        event.expectedness,
        event.immune_related,
    )
    if all(c is None for c in changes):
        return [
            Problem(
                path="",
                message="an update must change something",
                code=ProblemCode.UPDATE_EMPTY,
                allowed="at least one of grade, attribution, seriousness, expectedness, "
                "immune_related",
            )
        ]
    fatal = None if event.seriousness is None else Seriousness.DEATH in event.seriousness
    return death_consistency(event.grade, fatal)


def _check_resolved(event: AdverseEventResolved, ctcae: CtcaeDictionary) -> list[Problem]:
    problem = _future_date("end_date", event.end_date, event.recorded_at.date(), "end")
    return [problem] if problem else []


def _check_treatment(event: TreatmentAdministered, ctcae: CtcaeDictionary) -> list[Problem]:
    delivery = event.treatment
    if type(delivery) is RadiotherapyFraction and delivery.fraction > delivery.fractions_planned:
        return [
            Problem(
                path="treatment.fraction",
                message=f"fraction {delivery.fraction} is beyond the "
                f"{delivery.fractions_planned} planned fractions",
                code=ProblemCode.TREATMENT_FRACTION_BEYOND_PLAN,
                allowed=f"1 to {delivery.fractions_planned}",
            )
        ]
    return []


def _check_lab(event: LabResulted, ctcae: CtcaeDictionary) -> list[Problem]:
    if event.uln is None and event.test in TESTS_NEEDING_ULN:
        return [
            Problem(
                path="uln",
                message=f"the upper limit of normal is required for {event.test.value}",
                code=ProblemCode.LAB_ULN_REQUIRED,
                allowed="the lab's ULN in the same unit as value (> 0)",
            )
        ]
    if event.uln is not None and event.lln is not None and event.lln >= event.uln:
        return [
            Problem(
                path="lln",
                message=f"lower limit {event.lln} is not below the upper limit {event.uln}",
                code=ProblemCode.LAB_LIMITS_INVERTED,
                allowed=f"a value below {event.uln}",
            )
        ]
    return []


def _check_child_pugh(event: ChildPughAssessed, ctcae: CtcaeDictionary) -> list[Problem]:
    expected = child_pugh_class(event.score)
    if event.child_pugh_class is expected:
        return []
    return [
        Problem(
            path="child_pugh_class",
            message=f"class {event.child_pugh_class.value} does not match score {event.score}",
            code=ProblemCode.CHILD_PUGH_CLASS_MISMATCH,
            allowed=f"{expected.value} (Child-Pugh A = 5-6, B = 7-9, C = 10-15)",
        )
    ]


def _check_died(event: PatientDied, ctcae: CtcaeDictionary) -> list[Problem]:
    problem = _future_date("death_date", event.death_date, event.recorded_at.date(), "death")
    return [problem] if problem else []


def _check_lost(event: PatientLostToFollowUp, ctcae: CtcaeDictionary) -> list[Problem]:
    problem = _future_date(
        "last_contact_date", event.last_contact_date, event.recorded_at.date(), "last contact"
    )
    return [problem] if problem else []


_CHECKS: dict[type[EventBase], Callable[[Any, CtcaeDictionary], list[Problem]]] = {
    AdverseEventReported: _check_reported,
    AdverseEventUpdated: _check_updated,
    AdverseEventResolved: _check_resolved,
    TreatmentAdministered: _check_treatment,
    LabResulted: _check_lab,
    ChildPughAssessed: _check_child_pugh,
    PatientDied: _check_died,
    PatientLostToFollowUp: _check_lost,
}


def check_event(event: EventBase, ctcae: CtcaeDictionary) -> list[Problem]:
    """Every domain problem of one event on its own (empty when it is valid)."""
    check = _CHECKS.get(type(event))
    problems = check(event, ctcae) if check is not None else []
    if event.occurred_at > event.recorded_at:
        problems.insert(
            0,
            Problem(
                path="occurred_at",
                message=f"occurred_at {utc_text(event.occurred_at)} is after recorded_at "
                f"{utc_text(event.recorded_at)}",
                code=ProblemCode.TIME_AFTER_RECORDED,
                allowed="a time on or before recorded_at",
            ),
        )
    return problems
