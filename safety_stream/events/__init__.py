"""The event contract: every event type, its wire name and version, and the tagged union.

``Event`` is the union discriminated on ``event_type``. ``EVENT_TYPES`` maps each wire name
to its model; ``decode_json`` / ``decode_object`` parse wire data into typed events.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from safety_stream.events.adverse import (
    AE_AMENDMENTS,
    ActionTaken,
    AdverseEventReported,
    AdverseEventResolved,
    AdverseEventRetracted,
    AdverseEventUpdated,
    AttributionByModality,
    Expectedness,
    GradeChange,
    Outcome,
    SafetyReportSubmitted,
    Seriousness,
)
from safety_stream.events.base import ATTRIBUTION_RANK, Attribution, EventBase, Modality
from safety_stream.events.governance import (
    CLOCK_STREAM,
    DSMB_STREAM,
    SERVER_SITE,
    TRIAGE_STREAM,
    AlertTriaged,
    ClockTicked,
    DecisionOutcome,
    Disposition,
    DsmbDecision,
    TriageState,
)
from safety_stream.events.labs import (
    ChildPughAssessed,
    ChildPughClass,
    LabResulted,
    LabTest,
    child_pugh_class,
)
from safety_stream.events.patient import (
    PatientDied,
    PatientEnrolled,
    PatientLostToFollowUp,
    PatientWithdrawn,
    WithdrawalReason,
)
from safety_stream.events.treatment import (
    ChemotherapyCycle,
    ImmunotherapyDose,
    RadiotherapyFraction,
    TreatmentAdministered,
)

Event = Annotated[
    PatientEnrolled
    | PatientWithdrawn
    | PatientDied
    | PatientLostToFollowUp
    | TreatmentAdministered
    | AdverseEventReported
    | AdverseEventUpdated
    | AdverseEventResolved
    | AdverseEventRetracted
    | SafetyReportSubmitted
    | LabResulted
    | ChildPughAssessed
    | DsmbDecision
    | ClockTicked
    | AlertTriaged,
    Field(discriminator="event_type"),
]

EVENT_MODELS: tuple[type[EventBase], ...] = (
    PatientEnrolled,
    PatientWithdrawn,
    PatientDied,
    PatientLostToFollowUp,
    TreatmentAdministered,
    AdverseEventReported,
    AdverseEventUpdated,
    AdverseEventResolved,
    AdverseEventRetracted,
    SafetyReportSubmitted,
    LabResulted,
    ChildPughAssessed,
    DsmbDecision,
    ClockTicked,
    AlertTriaged,
)


def wire_name(model: type[EventBase]) -> str:
    """The stable ``event_type`` of a model class (its Literal tag)."""
    annotation = model.model_fields["event_type"].annotation
    # every model's tag is a Literal; pydantic types the annotation as any type at all
    return str(annotation.__args__[0])  # type: ignore[union-attr]


EVENT_TYPES: dict[str, type[EventBase]] = {wire_name(m): m for m in EVENT_MODELS}


@cache
def event_adapter() -> TypeAdapter[Event]:
    """The (cached) pydantic adapter for the tagged union."""
    return TypeAdapter(Event)


def decode_json(data: str | bytes) -> Event:
    """Parse one JSON document into a typed event (raises ``pydantic.ValidationError``)."""
    # the adapter's validator itself: TypeAdapter.validate_json only passes its defaults on,
    # and that frame was a twentieth of decoding a stored event (replay decodes every one)
    event: Event = event_adapter().validator.validate_json(data)
    return event


def decode_submitted(data: str | bytes) -> Event:
    """Parse a submitted JSON record strictly: a number, boolean or id must be sent as one
    (``"grade": "3"`` is refused, as the published JSON Schema says), never coerced."""
    return event_adapter().validate_json(data, strict=True)


def decode_object(data: Any) -> Event:
    """Validate an already-parsed JSON value into a typed event."""
    return event_adapter().validate_python(data)


def encode_json(event: EventBase) -> str:
    """The canonical wire form of an event (compact JSON; sets as sorted lists)."""
    # the model's serializer itself, as model_dump_json calls it with its defaults (the same
    # text, checked on every event type): every append encodes its event
    return type(event).__pydantic_serializer__.to_json(event).decode()


__all__ = [
    "AE_AMENDMENTS",
    "ATTRIBUTION_RANK",
    "CLOCK_STREAM",
    "DSMB_STREAM",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "SERVER_SITE",
    "TRIAGE_STREAM",
    "ActionTaken",
    "AdverseEventReported",
    "AdverseEventResolved",
    "AdverseEventRetracted",
    "AdverseEventUpdated",
    "AlertTriaged",
    "Attribution",
    "AttributionByModality",
    "ChemotherapyCycle",
    "ChildPughAssessed",
    "ChildPughClass",
    "ClockTicked",
    "DecisionOutcome",
    "Disposition",
    "DsmbDecision",
    "Event",
    "EventBase",
    "Expectedness",
    "GradeChange",
    "ImmunotherapyDose",
    "LabResulted",
    "LabTest",
    "Modality",
    "Outcome",
    "PatientDied",
    "PatientEnrolled",
    "PatientLostToFollowUp",
    "PatientWithdrawn",
    "RadiotherapyFraction",
    "SafetyReportSubmitted",
    "Seriousness",
    "TreatmentAdministered",
    "TriageState",
    "WithdrawalReason",
    "child_pugh_class",
    "decode_json",
    "decode_object",
    "decode_submitted",
    "encode_json",
]
