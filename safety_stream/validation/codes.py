"""The stable machine-readable names of what can be wrong with a record (``Problem.code``).

Every problem the validator and ingest report carries one of these, or ``schema.<type>`` for a
structural error pydantic found (its error type, e.g. ``schema.missing``, ``schema.enum``):
that family is open, it follows pydantic. The codes are part of the wire contract: each is
listed, with what it means, in schemas/README.md ("Problem codes"), and a test keeps the list
and this enum equal. A ``StrEnum`` member is its value, so what is sent and stored is the same
text as before the enum.
"""

from __future__ import annotations

from enum import StrEnum

SCHEMA_PREFIX = "schema."


def schema_code(error_type: str) -> str:
    """The code of a structural (pydantic) error: ``schema.<pydantic error type>``."""
    return f"{SCHEMA_PREFIX}{error_type}"


class ProblemCode(StrEnum):
    # the credential may not write this
    AUTH_DECISION_NOT_ALLOWED = "auth.decision_not_allowed"
    AUTH_SITE_MISMATCH = "auth.site_mismatch"
    AUTH_TICK_NOT_ALLOWED = "auth.tick_not_allowed"
    AUTH_TRIAGE_NOT_ALLOWED = "auth.triage_not_allowed"
    # the input itself: size, encoding, JSON syntax
    INPUT_DOCUMENT_TOO_LARGE = "input.document_too_large"
    INPUT_ENCODING = "input.encoding"
    INPUT_JSON_INVALID = "input.json_invalid"
    INPUT_JSON_TOO_DEEP = "input.json_too_deep"
    INPUT_JSON_TRUNCATED = "input.json_truncated"
    INPUT_NUMBER_TOO_LONG = "input.number_too_long"
    INPUT_RECORD_TOO_LARGE = "input.record_too_large"
    # EDC CSV exports
    CSV_DATE_FORMAT = "csv.date_format"
    CSV_MALFORMED = "csv.malformed"
    CSV_MISSING_COLUMNS = "csv.missing_columns"
    CSV_RAGGED_ROW = "csv.ragged_row"
    CSV_REPORT_REJECTED = "csv.report_rejected"
    CSV_ROW_REJECTED = "csv.row_rejected"
    CSV_SERIOUS_WITHOUT_CRITERION = "csv.serious_without_criterion"
    CSV_VOCABULARY = "csv.vocabulary"
    CSV_YES_NO = "csv.yes_no"
    # CTCAE v5.0 terms, codes and grades
    CTCAE_CODE_MISMATCH = "ctcae.code_mismatch"
    CTCAE_GRADE_NOT_ALLOWED = "ctcae.grade_not_allowed"
    CTCAE_UNKNOWN_TERM = "ctcae.unknown_term"
    CTCAE_VERBATIM_REQUIRED = "ctcae.verbatim_required"
    # one record's fields against each other
    CHILD_PUGH_CLASS_MISMATCH = "child_pugh.class_mismatch"
    LAB_LIMITS_INVERTED = "lab.limits_inverted"
    LAB_ULN_REQUIRED = "lab.uln_required"
    TREATMENT_FRACTION_BEYOND_PLAN = "treatment.fraction_beyond_plan"
    UPDATE_EMPTY = "update.empty"
    # times and dates
    TIME_AFTER_DEATH = "time.after_death"
    TIME_AFTER_RECORDED = "time.after_recorded"
    TIME_BEFORE_CONSENT = "time.before_consent"
    TIME_END_BEFORE_ONSET = "time.end_before_onset"
    TIME_IN_THE_FUTURE = "time.in_the_future"
    TIME_ONSET_MISMATCH = "time.onset_mismatch"
    # the record against the patient's or the AE's history
    CONSISTENCY_DEATH_CITES_NONFATAL_AE = "consistency.death_cites_nonfatal_ae"
    CONSISTENCY_DEATH_WITHOUT_GRADE5 = "consistency.death_without_grade5"
    CONSISTENCY_FATAL_OUTCOME_BELOW_GRADE5 = "consistency.fatal_outcome_below_grade5"
    CONSISTENCY_GRADE5_WITHOUT_DEATH = "consistency.grade5_without_death"
    CONSISTENCY_GRADE_CHANGE = "consistency.grade_change"
    CONSISTENCY_SECOND_FATAL_AE = "consistency.second_fatal_ae"
    # references to patients, AEs and event ids
    REFERENCE_AE_OF_OTHER_PATIENT = "reference.ae_of_other_patient"
    REFERENCE_AE_RETRACTED = "reference.ae_retracted"
    REFERENCE_ALREADY_DIED = "reference.already_died"
    REFERENCE_ALREADY_ENROLLED = "reference.already_enrolled"
    REFERENCE_EVENT_ID_CONFLICT = "reference.event_id_conflict"
    REFERENCE_OTHER_TRIAL = "reference.other_trial"
    REFERENCE_PATIENT_NOT_ENROLLED = "reference.patient_not_enrolled"
    REFERENCE_PATIENT_OF_OTHER_SITE = "reference.patient_of_other_site"
    REFERENCE_UNKNOWN_AE = "reference.unknown_ae"
    # the store and the trial's governance
    STORE_EVENT_ID_CONFLICT = "store.event_id_conflict"
    GOVERNANCE_ENROLMENT_PAUSED = "governance.enrolment_paused"
