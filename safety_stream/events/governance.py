"""Governance events: the DSMB's decisions on crossed stopping rules and raised sentinels,
and the server's clock ticks.

A decision is an event in the same tamper-evident log as the data it answers. It belongs to no
patient: it lives in the trial's ``DSMB`` stream (``site_id`` and ``patient_id`` are both
``DSMB``), and is recorded by a reader credential with the ``dsmb`` or ``safety_officer`` role,
never by a site. A tick records that time passed on the server when something fell due (a
follow-up window ended, a report deadline passed) with no new data: it lives in the
``SERVER``/``CLOCK`` stream and only the server appends it, so replays see time pass exactly
as the live system did. A triage step (``alert.triaged``) records what a safety officer or
DSMB member did with an alert (review started, escalated to the DSMB, closed with a
disposition, reopened): it lives in the trial's ``DSMB``/``TRIAGE`` stream and, like a
decision, is recorded by a reader credential only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field, model_validator

from safety_stream.events.base import EventBase, LongText, Modality, ShortText, UtcDatetime

DSMB_STREAM = "DSMB"
SERVER_SITE, CLOCK_STREAM = "SERVER", "CLOCK"
TRIAGE_STREAM = "TRIAGE"


class DecisionOutcome(StrEnum):
    CONTINUE_UNCHANGED = "continue_unchanged"
    CONTINUE_WITH_MODIFICATION = "continue_with_modification"
    PAUSE_ENROLMENT = "pause_enrolment"
    RESUME_ENROLMENT = "resume_enrolment"
    STOP_MODALITY = "stop_modality"
    TERMINATE = "terminate"


class DsmbDecision(EventBase):
    """What the DSMB decided about crossed rules or raised sentinels (``answers``: rule ids).

    ``pause_enrolment`` makes the server refuse new enrolments until a later decision says
    ``resume_enrolment``; every decision releases the latch of the rules it answers.
    """

    event_type: Literal["dsmb.decision"]
    schema_version: Literal[1]
    site_id: Literal["DSMB"]
    patient_id: Literal["DSMB"]
    answers: list[ShortText] = Field(min_length=1, description="Rule ids the decision answers")
    outcome: DecisionOutcome
    modality: Modality | None = Field(default=None, description="With stop_modality: which")
    rationale: LongText
    decided_by: ShortText = Field(description="The credential that recorded the decision")

    @model_validator(mode="after")
    def _modality_with_stop(self) -> DsmbDecision:
        if (self.outcome == DecisionOutcome.STOP_MODALITY) != (self.modality is not None):
            raise ValueError("modality is given with outcome stop_modality, and only then")
        return self


class ClockTicked(EventBase):
    """Time passed on the server to ``recorded_at``: ``due_at`` is the timer that fell due."""

    event_type: Literal["clock.ticked"]
    schema_version: Literal[1]
    site_id: Literal["SERVER"]
    patient_id: Literal["CLOCK"]
    due_at: UtcDatetime = Field(description="The earliest timer that had fallen due")


class TriageState(StrEnum):
    """Where an alert is in its review: every alert starts ``new``."""

    NEW = "new"
    UNDER_REVIEW = "under_review"
    ESCALATED_TO_DSMB = "escalated_to_dsmb"
    CLOSED = "closed"


class Disposition(StrEnum):
    """Why an alert was closed (a fixed list, so closures can be counted)."""

    NO_ACTION_NEEDED = "no_action_needed"
    ADDRESSED_BY_DSMB_DECISION = "addressed_by_dsmb_decision"
    DATA_ERROR_CORRECTED = "data_error_corrected"
    DUPLICATE = "duplicate"
    OTHER = "other"


class AlertTriaged(EventBase):
    """One step of an alert's triage: from ``from_state`` to ``to_state`` (the rules of which
    steps are allowed are in :mod:`safety_stream.alerts.triage`), with who took it and why.

    ``alert_id`` is the alert's ``derived_id``; a closing step names its ``disposition``.
    """

    event_type: Literal["alert.triaged"]
    schema_version: Literal[1]
    site_id: Literal["DSMB"]
    patient_id: Literal["TRIAGE"]
    alert_id: UUID = Field(description="The alert (its derived_id) this step is about")
    from_state: TriageState
    to_state: TriageState
    disposition: Disposition | None = Field(default=None, description="With to_state closed")
    note: LongText | None = None
    triaged_by: ShortText = Field(description="The reader credential that took the step")

    @model_validator(mode="after")
    def _disposition_when_closed(self) -> AlertTriaged:
        if (self.to_state == TriageState.CLOSED) != (self.disposition is not None):
            raise ValueError("disposition is given with to_state closed, and only then")
        return self
