"""Patient stream events: enrolment and the ways a patient leaves follow-up."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field

from safety_stream.events.base import EventBase, LongText, Modality, SortedSet


class PatientEnrolled(EventBase):
    """The patient signed consent and was registered; ``occurred_at`` is the registration."""

    event_type: Literal["patient.enrolled"]
    schema_version: Literal[1]
    consent_date: date
    planned_modalities: SortedSet[Modality] = Field(
        min_length=1, description="Modalities the patient is planned to receive"
    )


class WithdrawalReason(StrEnum):
    CONSENT_WITHDRAWN = "consent_withdrawn"
    INVESTIGATOR_DECISION = "investigator_decision"
    ADVERSE_EVENT = "adverse_event"
    PROGRESSION = "progression"
    OTHER = "other"


class PatientWithdrawn(EventBase):
    """The patient stopped study treatment and follow-up."""

    event_type: Literal["patient.withdrawn"]
    schema_version: Literal[1]
    reason: WithdrawalReason
    details: LongText | None = None


class PatientDied(EventBase):
    """Death of the patient, from any cause; ``related_ae_id`` cites the fatal AE if any."""

    event_type: Literal["patient.died"]
    schema_version: Literal[1]
    death_date: date
    primary_cause: LongText
    related_ae_id: UUID | None = Field(
        default=None, description="event_id of the ae.reported whose outcome was fatal"
    )


class PatientLostToFollowUp(EventBase):
    """The site can no longer reach the patient."""

    event_type: Literal["patient.lost_to_follow_up"]
    schema_version: Literal[1]
    last_contact_date: date
