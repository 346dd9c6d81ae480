"""Recording DSMB decisions: one path for the API, the board and the command line.

A decision answers rules of the plan by id (a counting rule that crossed, a sentinel that was
raised); it is appended to the log like any event (validated, hash-chained, ``verify``-able)
and the monitor releases the latch of the rules it answers. Enrolment pauses while the latest
enrolment decision is ``pause_enrolment``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from safety_stream.ctcae import CtcaeDictionary
from safety_stream.events import (
    DSMB_STREAM,
    DecisionOutcome,
    DsmbDecision,
    Modality,
    decode_json,
    encode_json,
)
from safety_stream.ingest import IngestReport, ingest
from safety_stream.monitoring.monitor import Monitor
from safety_stream.plan import MonitoringPlan
from safety_stream.store.base import EventStore
from safety_stream.validation.records import InputFormat, RawRecord

DECIDING_ROLES = frozenset({"dsmb", "safety_officer"})


class DecisionError(ValueError):
    """The decision cannot be recorded as given (unknown rule, missing modality, ...)."""


def build_decision(
    plan: MonitoringPlan,
    answers: Sequence[str],
    outcome: str,
    rationale: str,
    decided_by: str,
    now: datetime,
    modality: str | None = None,
) -> DsmbDecision:
    """The decision event, checked against the plan's rule ids."""
    known = [rule.id for rule in plan.rules]
    unknown = [rule_id for rule_id in answers if rule_id not in known]
    if not answers or unknown:
        raise DecisionError(
            f"unknown rule id(s): {', '.join(unknown)} (the plan's rules: {', '.join(known)})"
            if unknown
            else "name at least one rule the decision answers"
        )
    outcomes = [o.value for o in DecisionOutcome]
    if outcome not in outcomes:
        raise DecisionError(f"outcome {outcome!r} is not one of {', '.join(outcomes)}")
    if (outcome == DecisionOutcome.STOP_MODALITY) != (modality is not None):
        raise DecisionError("give --modality with stop_modality (and only then)")
    if modality is not None and modality not in [m.value for m in Modality]:
        raise DecisionError(f"modality {modality!r} is not one of the trial's modalities")
    if not rationale.strip():
        raise DecisionError("give the rationale the DSMB minuted")
    stamp = now.isoformat()
    return DsmbDecision.model_validate(
        {
            "event_type": "dsmb.decision",
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "trial_id": plan.trial.id,
            "site_id": DSMB_STREAM,
            "patient_id": DSMB_STREAM,
            "reporter": decided_by,
            "occurred_at": stamp,
            "recorded_at": stamp,
            "answers": list(dict.fromkeys(answers)),
            "outcome": outcome,
            "modality": modality,
            "rationale": rationale,
            "decided_by": decided_by,
        }
    )


def record_decision(
    store: EventStore, ctcae: CtcaeDictionary, decision: DsmbDecision, source: str
) -> IngestReport:
    """Append the decision through ingest (validation, dead letters, the hash chain)."""
    record = RawRecord("decision", encode_json(decision).encode())
    return ingest(store, [record], InputFormat.NDJSON, ctcae, source, None, may_decide=True)


def pause_reason(monitor: Monitor) -> str | None:
    """Why enrolment is paused (the decision that paused it), or None."""
    decision = monitor.enrolment_paused_by
    return None if decision is None else _describe(decision)


def pause_in_log(store: EventStore, trial_id: str) -> str | None:
    """The same, read from the trial's DSMB stream in the log (for a process whose monitor
    may lag, such as a distributed ingest worker)."""
    latest = None
    for stored in store.stream(trial_id, DSMB_STREAM):
        decision = decode_json(stored.payload)
        if isinstance(decision, DsmbDecision) and decision.outcome in ENROLMENT_OUTCOMES:
            latest = decision
    if latest is None or latest.outcome != DecisionOutcome.PAUSE_ENROLMENT:
        return None
    return _describe(latest)


ENROLMENT_OUTCOMES = (DecisionOutcome.PAUSE_ENROLMENT, DecisionOutcome.RESUME_ENROLMENT)


def _describe(decision: DsmbDecision) -> str:
    when = decision.occurred_at.date().isoformat()
    return (
        f"the DSMB decision {decision.event_id} of {when} ({decision.decided_by}): "
        f"{decision.rationale}"
    )
