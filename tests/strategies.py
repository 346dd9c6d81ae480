"""Hypothesis strategies that build valid events of every type (used by property tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from safety_stream.events import (
    EVENT_MODELS,
    ActionTaken,
    Attribution,
    DecisionOutcome,
    Disposition,
    EventBase,
    Expectedness,
    LabTest,
    Modality,
    Outcome,
    Seriousness,
    TriageState,
    WithdrawalReason,
    wire_name,
)

identifiers = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,20}\Z")
texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=40,
)
offsets = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])
times = st.builds(
    lambda seconds, micros, tz: (
        datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micros)
    ).astimezone(tz),
    st.integers(0, 3 * 365 * 86400),
    st.integers(0, 999_999),
    offsets,
)
dates = st.dates(min_value=datetime(2024, 1, 1).date(), max_value=datetime(2028, 1, 1).date())
attribution = st.fixed_dictionaries({m.value: st.sampled_from(Attribution) for m in Modality})
seriousness = st.frozensets(st.sampled_from(Seriousness))

DELIVERIES = st.one_of(
    st.fixed_dictionaries(
        {
            "modality": st.just("radiotherapy"),
            "technique": st.just("SBRT"),
            "fraction": st.integers(1, 5),
            "fractions_planned": st.just(5),
            "dose_gy": st.floats(0.5, 30, allow_nan=False),
            "target": texts,
        }
    ),
    st.fixed_dictionaries(
        {
            "modality": st.just("chemotherapy"),
            "regimen": st.sampled_from(["FOLFOX", "FOLFIRI", "CAPOX", "5-FU/LV"]),
            "cycle": st.integers(1, 100),
            "day": st.integers(1, 42),
            "dose_reduced": st.booleans(),
        }
    ),
    st.fixed_dictionaries(
        {
            "modality": st.just("immunotherapy"),
            "agent": texts,
            "dose_mg": st.floats(1, 2000, allow_nan=False),
            "cycle": st.integers(1, 100),
        }
    ),
)

PAYLOADS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "patient.enrolled": st.fixed_dictionaries(
        {
            "consent_date": dates,
            "planned_modalities": st.frozensets(st.sampled_from(Modality), min_size=1),
        }
    ),
    "patient.withdrawn": st.fixed_dictionaries(
        {"reason": st.sampled_from(WithdrawalReason)}, optional={"details": texts}
    ),
    "patient.died": st.fixed_dictionaries(
        {"death_date": dates, "primary_cause": texts}, optional={"related_ae_id": st.uuids()}
    ),
    "patient.lost_to_follow_up": st.fixed_dictionaries({"last_contact_date": dates}),
    "treatment.administered": st.fixed_dictionaries({"treatment": DELIVERIES}),
    "ae.reported": st.fixed_dictionaries(
        {
            "ctcae_version": st.just("5.0"),
            "ctcae_term": texts,
            "meddra_code": st.integers(10_000_000, 99_999_999),
            "grade": st.integers(1, 5),
            "onset_date": dates,
            "seriousness": seriousness,
            "expectedness": st.sampled_from(Expectedness),
            "immune_related": st.booleans(),
            "attribution": attribution,
            "action_taken": st.sampled_from(ActionTaken),
        },
        optional={"verbatim_term": texts},
    ),
    "ae.updated": st.fixed_dictionaries(
        {"ae_id": st.uuids(), "reason": texts},
        optional={
            "grade": st.integers(1, 5),
            "attribution": attribution,
            "seriousness": seriousness,
            "expectedness": st.sampled_from(Expectedness),
            "immune_related": st.booleans(),
        },
    ),
    "ae.resolved": st.fixed_dictionaries(
        {"ae_id": st.uuids(), "outcome": st.sampled_from(Outcome), "end_date": dates}
    ),
    "ae.retracted": st.fixed_dictionaries({"ae_id": st.uuids(), "reason": texts}),
    "ae.safety_report_submitted": st.fixed_dictionaries(
        {"ae_id": st.uuids(), "report_reference": texts}
    ),
    "lab.resulted": st.fixed_dictionaries(
        {
            "test": st.sampled_from(LabTest),
            "value": st.floats(0, 1e5, allow_nan=False),
            "unit": st.sampled_from(["U/L", "umol/L", "g/L", "ratio"]),
        },
        optional={"uln": st.floats(0.1, 1e4), "lln": st.floats(0, 10)},
    ),
    "child_pugh.assessed": st.fixed_dictionaries(
        {"score": st.integers(5, 15), "child_pugh_class": st.sampled_from("ABC")},
        optional={"ascites": st.sampled_from(["none", "mild", "moderate_severe"])},
    ),
    "clock.ticked": st.fixed_dictionaries({"due_at": times}),
    "alert.triaged": st.one_of(
        st.fixed_dictionaries(
            {
                "alert_id": st.uuids(),
                "from_state": st.sampled_from(TriageState),
                "to_state": st.sampled_from([s for s in TriageState if s != TriageState.CLOSED]),
                "triaged_by": texts,
            },
            optional={"note": texts},
        ),
        st.fixed_dictionaries(
            {
                "alert_id": st.uuids(),
                "from_state": st.sampled_from(TriageState),
                "to_state": st.just(TriageState.CLOSED),
                "disposition": st.sampled_from(Disposition),
                "note": texts,
                "triaged_by": texts,
            }
        ),
    ),
    "dsmb.decision": st.one_of(
        st.fixed_dictionaries(
            {
                "answers": st.lists(texts, min_size=1, max_size=3),
                "outcome": st.sampled_from(
                    [o for o in DecisionOutcome if o != DecisionOutcome.STOP_MODALITY]
                ),
                "rationale": texts,
                "decided_by": texts,
            }
        ),
        st.fixed_dictionaries(
            {
                "answers": st.lists(texts, min_size=1, max_size=3),
                "outcome": st.just(DecisionOutcome.STOP_MODALITY),
                "modality": st.sampled_from(Modality),
                "rationale": texts,
                "decided_by": texts,
            }
        ),
    ),
}
assert set(PAYLOADS) == {wire_name(m) for m in EVENT_MODELS}


def events_of(kind: str) -> st.SearchStrategy[EventBase]:
    """Structurally valid events of one type (domain checks are not applied here)."""
    model = next(m for m in EVENT_MODELS if wire_name(m) == kind)
    envelope = st.fixed_dictionaries(
        {
            "event_id": st.uuids(),
            "trial_id": identifiers,
            "site_id": identifiers,
            "patient_id": identifiers,
            "reporter": texts,
            "occurred_at": times,
            "recorded_at": times,
        }
    )
    if kind == "dsmb.decision":  # a decision lives in the trial's DSMB stream
        envelope = envelope.map(lambda head: head | {"site_id": "DSMB", "patient_id": "DSMB"})
    if kind == "alert.triaged":  # a triage step in the trial's triage stream
        envelope = envelope.map(lambda head: head | {"site_id": "DSMB", "patient_id": "TRIAGE"})
    if kind == "clock.ticked":  # and a tick in the server's clock stream
        envelope = envelope.map(lambda head: head | {"site_id": "SERVER", "patient_id": "CLOCK"})
    return st.builds(
        lambda head, body: model.model_validate(
            {"event_type": kind, "schema_version": 1, **head, **body}
        ),
        envelope,
        PAYLOADS[kind],
    )
