"""Every rejection a site can meet, with the exact message it sees (path, message, allowed)."""

from __future__ import annotations

import io
import json
import uuid
from datetime import date
from typing import Any
from uuid import UUID

import pytest
from conftest import EXAMPLES, example

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.validation.problems import Problem
from safety_stream.validation.records import read_ndjson
from safety_stream.validation.references import AeFacts
from safety_stream.validation.timeline import PatientFacts
from safety_stream.validation.validator import RecordResult, Validator


class InMemoryReferences:
    """A ReferenceSource over plain dicts: what the event store answers on ingest."""

    def __init__(self) -> None:
        self.aes: dict[UUID, AeFacts] = {}
        self.patients: dict[str, PatientFacts] = {}

    def ae_facts(self, ae_id: UUID) -> AeFacts | None:
        return self.aes.get(ae_id)

    def patient_facts(self, patient_id: str) -> PatientFacts | None:
        return self.patients.get(patient_id)


def validate(
    *events: dict[str, Any], outside: InMemoryReferences | None = None
) -> list[RecordResult]:
    lines = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    validator = Validator(ctcae_dictionary(), outside)
    return list(validator.validate(read_ndjson(io.BytesIO(lines))))


def only_problem(result: RecordResult) -> tuple[str, str, str | None]:
    assert len(result.problems) == 1, result.problems
    problem = result.problems[0]
    return problem.path, problem.message, problem.allowed


def ae(**changes: Any) -> dict[str, Any]:
    event = example("ae.reported")
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


NAUSEA = {"ctcae_term": "Nausea", "meddra_code": 10028813, "verbatim_term": ...}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            ae(ctcae_term="Nausia"),
            (
                "ctcae_term",
                "'Nausia' is not a CTCAE v5.0 term; did you mean 'Nausea'?",
                "one of the 837 CTCAE v5.0 terms, spelt exactly",
            ),
        ),
        (
            ae(ctcae_term="Hepatitis autoimmune"),
            (
                "ctcae_term",
                "'Hepatitis autoimmune' is not a CTCAE v5.0 term",
                "one of the 837 CTCAE v5.0 terms, spelt exactly",
            ),
        ),
        (
            ae(meddra_code=10003481),
            (
                "meddra_code",
                "10003481 is not the MedDRA LLT code of 'Alanine aminotransferase increased' "
                "(it is the code of 'Aspartate aminotransferase increased')",
                "10001551",
            ),
        ),
        (
            ae(grade=4, **NAUSEA),
            ("grade", "grade 4 is not defined for 'Nausea' in CTCAE v5.0", "grades 1, 2, 3"),
        ),
        (
            ae(grade=5, seriousness=["death"]),
            (
                "grade",
                "grade 5 is not defined for 'Alanine aminotransferase increased' in CTCAE v5.0",
                "grades 1, 2, 3, 4",
            ),
        ),
        (
            ae(ctcae_term="Febrile neutropenia", meddra_code=10016288, grade=2),
            (
                "grade",
                "grade 2 is not defined for 'Febrile neutropenia' in CTCAE v5.0",
                "grades 3, 4, 5",
            ),
        ),
        (
            ae(ctcae_term="Death NOS", meddra_code=10011914, grade=4),
            ("grade", "grade 4 is not defined for 'Death NOS' in CTCAE v5.0", "grade 5"),
        ),
        (
            ae(onset_date="2026-02-22", occurred_at="2026-02-21T01:00:00Z"),
            (
                "onset_date",
                "onset 2026-02-22 is after the report was recorded (2026-02-21)",
                "a date on or before the date in recorded_at",
            ),
        ),
        (
            ae(
                ctcae_term="Hepatobiliary disorders - Other, specify",
                meddra_code=10019805,
                verbatim_term=...,
            ),
            (
                "verbatim_term",
                "'Hepatobiliary disorders - Other, specify' requires the verbatim term",
                "the investigator's description of the event (1-200 characters)",
            ),
        ),
        (
            ae(grade=4, seriousness=["death", "hospitalisation"]),
            ("grade", "seriousness 'death' requires grade 5, not grade 4", "grade 5"),
        ),
        (
            ae(occurred_at="2026-02-20T00:00:00"),
            (
                "occurred_at",
                "Input should have timezone info",
                "an ISO 8601 time with a UTC offset, e.g. 2026-03-01T08:00:00Z",
            ),
        ),
        (
            ae(patient_name="Jane Doe"),
            (
                "patient_name",
                "Unknown field; events must not carry fields outside their schema",
                "event_type, schema_version, event_id, trial_id, site_id, patient_id, reporter, "
                "occurred_at, recorded_at, ctcae_version, ctcae_term, meddra_code, grade, "
                "onset_date, seriousness, expectedness, immune_related, attribution, "
                "action_taken, verbatim_term",
            ),
        ),
        (
            ae(ctcae_version="4.03"),
            ("ctcae_version", "'4.03' is not an allowed value", "'5.0'"),
        ),
        (
            ae(event_type="ae.reportd"),
            (
                "event_type",
                "unknown event type 'ae.reportd'; did you mean 'ae.reported'?",
                "'patient.enrolled', 'patient.withdrawn', 'patient.died', "
                "'patient.lost_to_follow_up', 'treatment.administered', 'ae.reported', "
                "'ae.updated', 'ae.resolved', 'ae.retracted', 'ae.safety_report_submitted', "
                "'lab.resulted', 'child_pugh.assessed'",
            ),
        ),
    ],
    ids=lambda value: value[0] if isinstance(value, tuple) else None,
)
def test_single_event_rejections(event: dict[str, Any], expected: tuple[str, str, str]) -> None:
    [result] = validate(event)
    assert result.event is None
    assert only_problem(result) == expected


def test_all_problems_of_a_record_are_reported_not_just_the_first() -> None:
    [result] = validate(ae(meddra_code=10028813, grade=5, seriousness=[], verbatim_term=...))
    assert [p.path for p in result.problems] == ["meddra_code", "grade", "seriousness"]


def test_grade_5_needs_the_death_criterion() -> None:
    event = ae(ctcae_term="Death NOS", meddra_code=10011914, grade=5, seriousness=[])
    assert only_problem(validate(event)[0]) == (
        "seriousness",
        "grade 5 (death) requires the seriousness criterion 'death'",
        "seriousness including 'death'",
    )


def _amendment(kind: str, ae_id: str, **fields: Any) -> dict[str, Any]:
    event = example(kind)
    event.update(ae_id=ae_id, event_id=str(uuid.uuid4()), **fields)
    return event


def test_end_before_onset_is_rejected_against_the_report_in_the_same_file() -> None:
    report = example("ae.reported")  # onset 2026-02-20
    resolution = _amendment("ae.resolved", report["event_id"], end_date="2026-02-19")
    first, second = validate(report, resolution)
    assert first.valid
    assert only_problem(second) == (
        "end_date",
        "end 2026-02-19 is before the AE's onset 2026-02-20",
        "a date on or after 2026-02-20",
    )


def test_amending_an_ae_that_does_not_exist_is_rejected_on_ingest() -> None:
    outside = InMemoryReferences()
    outside.patients["SPK-0101"] = PatientFacts("CN-SH-01")
    missing = "7d4c2f4e-0000-4000-8000-000000000000"
    [result] = validate(_amendment("ae.updated", missing), outside=outside)
    assert only_problem(result) == (
        "ae_id",
        f"no AE with id {missing} has been reported",
        "the event_id of an earlier ae.reported for this patient",
    )


def test_in_a_file_alone_an_unknown_ae_is_left_for_ingest_not_rejected() -> None:
    [result] = validate(_amendment("ae.updated", "7d4c2f4e-0000-4000-8000-000000000000"))
    assert result.valid
    assert result.unresolved == ["patient_id", "ae_id"]


def test_amendments_are_checked_against_the_store_on_ingest() -> None:
    outside = InMemoryReferences()
    outside.patients["SPK-0101"] = PatientFacts("CN-SH-01")
    ae_id = UUID("0b6f1c1e-2f4a-4c55-9a51-6d3e1c0a0003")
    outside.aes[ae_id] = AeFacts(
        "SPK-0101", "CN-SH-01", "Nausea", date(2026, 2, 20), grade=2, fatal=False
    )
    upgrade = _amendment("ae.updated", str(ae_id), grade=4, seriousness=None)
    assert only_problem(validate(upgrade, outside=outside)[0]) == (
        "grade",
        "grade 4 is not defined for 'Nausea' in CTCAE v5.0",
        "grades 1, 2, 3",
    )
    ok = _amendment("ae.updated", str(ae_id), grade=3, seriousness=None)
    assert validate(ok, outside=outside)[0].valid


def test_an_amendment_after_a_retraction_is_rejected() -> None:
    report = example("ae.reported")
    retraction = _amendment("ae.retracted", report["event_id"])
    update = _amendment("ae.updated", report["event_id"])
    results = validate(report, retraction, update)
    assert [r.valid for r in results] == [True, True, False]
    assert only_problem(results[2])[1] == (
        f"AE {report['event_id']} was retracted and cannot be amended"
    )


def test_an_amendment_from_another_patient_is_rejected() -> None:
    report = example("ae.reported")
    update = _amendment("ae.updated", report["event_id"], patient_id="SPK-0999")
    results = validate(report, update)
    assert only_problem(results[1])[:2] == (
        "ae_id",
        f"AE {report['event_id']} was reported for a different patient",
    )


def test_events_of_a_patient_enrolled_at_another_site_are_rejected() -> None:
    enrolled = example("patient.enrolled")
    report = ae(site_id="CN-BJ-02")
    results = validate(enrolled, report)
    assert only_problem(results[1]) == (
        "site_id",
        "this patient is enrolled at another site, not at CN-BJ-02",
        "the site that enrolled the patient",
    )


def test_on_ingest_a_patient_must_be_enrolled_first() -> None:
    [result] = validate(example("ae.reported"), outside=InMemoryReferences())
    assert only_problem(result)[:2] == ("patient_id", "this patient has not been enrolled")


def test_resending_an_event_is_a_duplicate_and_reusing_its_id_is_a_conflict() -> None:
    report = example("ae.reported")
    same_but_reformatted = json.loads(json.dumps(report, indent=1))
    changed = dict(report, grade=2)
    results = validate(report, same_but_reformatted, changed)
    assert results[1].valid and results[1].duplicate_of == "line 1"
    assert only_problem(results[2]) == (
        "event_id",
        "event_id is already used by line 1 for a different event",
        "a new UUID for a new event, or the identical event to resend it",
    )


def test_a_rejected_report_is_not_remembered_for_later_amendments() -> None:
    outside = InMemoryReferences()
    outside.patients["SPK-0101"] = PatientFacts("CN-SH-01")
    bad_report = ae(grade=5, seriousness=["death"])
    update = _amendment("ae.updated", bad_report["event_id"])
    results = validate(bad_report, update, outside=outside)
    assert [r.valid for r in results] == [False, False]
    assert results[1].problems[0].code == "reference.unknown_ae"


def test_every_invalid_example_gives_its_recorded_problems() -> None:
    expected = json.loads((EXAMPLES / "expected-problems.json").read_text())
    files = sorted((EXAMPLES / "invalid").glob("*.json"))
    assert {f.name for f in files} == set(expected)
    for path in files:
        [result] = validate(json.loads(path.read_text()))
        got = [
            {"path": p.path, "code": p.code, "message": p.message, "allowed": p.allowed}
            for p in result.problems
        ]
        assert got == expected[path.name], path.name


def test_problem_text_reads_as_field_reason_and_allowed() -> None:
    problem = Problem("grade", "grade 4 is not defined for 'Nausea'", "x", "grades 1, 2, 3")
    assert str(problem) == "grade: grade 4 is not defined for 'Nausea' (allowed: grades 1, 2, 3)"
    assert str(Problem("", "an update must change something", "x")) == (
        "(record): an update must change something"
    )
