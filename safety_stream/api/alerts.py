"""Alert endpoints (readers only): the alerts with their delivery and triage state, most
severe first; acknowledging one; and triaging one (new -> under review -> escalated to the
DSMB -> closed with a disposition; each step an ``alert.triaged`` event in the log)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, Field

from safety_stream.alerts.dispatcher import utc_now
from safety_stream.alerts.outbox import AlertView, UnknownAlert
from safety_stream.alerts.triage import AlertTriage, StepNotAllowed, TriageError
from safety_stream.api.dependencies import OutboxDep, RuntimeDep
from safety_stream.api.monitoring import READERS_ONLY, reader_only
from safety_stream.api.paging import After, Limit
from safety_stream.api.schemas import ErrorBody
from safety_stream.api.security import Caller
from safety_stream.application.triage import TriageForbidden
from safety_stream.events import Disposition, TriageState
from safety_stream.events.base import TEXT_PATTERN
from safety_stream.events.derived import DerivedEvent


class DeliveryOut(BaseModel):
    channel: str
    reason: str
    state: str
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None


class TriageStepOut(BaseModel):
    position: int = Field(description="The log position of the step's alert.triaged event")
    event_id: uuid.UUID
    from_state: TriageState
    to_state: TriageState
    disposition: Disposition | None
    note: str | None
    by: str = Field(description="The reader credential that took the step")
    at: datetime


class TriageOut(BaseModel):
    state: TriageState
    disposition: Disposition | None = Field(description="Why it was closed (closed only)")
    allowed: list[TriageState] = Field(description="The states it may go to next")
    steps: list[TriageStepOut] = Field(description="Every step taken, oldest first")

    @classmethod
    def of(cls, triage: AlertTriage) -> TriageOut:
        return cls(
            state=triage.state,
            disposition=triage.disposition,
            allowed=list(triage.allowed()),
            steps=[TriageStepOut(**{f: getattr(s, f) for f in TriageStepOut.model_fields})
                   for s in triage.steps],
        )  # fmt: skip


class AlertOut(BaseModel):
    number: int
    alert: DerivedEvent
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    escalated_at: datetime | None
    deliveries: list[DeliveryOut]
    triage: TriageOut

    @classmethod
    def of(cls, view: AlertView, triage: AlertTriage | None = None) -> AlertOut:
        return cls(
            number=view.number,
            alert=view.alert,
            raised_at=view.raised_at,
            acknowledged_at=view.acknowledged_at,
            acknowledged_by=view.acknowledged_by,
            escalated_at=view.escalated_at,
            deliveries=[DeliveryOut(**vars(d)) for d in view.deliveries],
            triage=TriageOut.of(triage or AlertTriage()),
        )


class Acknowledgement(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


class TriageIn(BaseModel):
    to_state: TriageState = Field(description="The state to move the alert to")
    disposition: Disposition | None = Field(default=None, description="Closing only: why")
    note: str | None = Field(
        default=None,
        max_length=2000,
        pattern=TEXT_PATTERN,
        description="Why (required to escalate, close, reopen); printable text",
    )


class TriageRecordedOut(BaseModel):
    position: int = Field(description="The log position of the alert.triaged event")
    alert: AlertOut


router = APIRouter()


@router.get("/v1/alerts", response_model=list[AlertOut], responses=READERS_ONLY)
def alerts(
    caller: Caller,
    outbox: OutboxDep,
    runtime: RuntimeDep,
    unacknowledged: bool = False,
    order: Literal["severity", "raised"] = "severity",
    after: After = 0,
    limit: Limit = 100,
) -> list[AlertOut]:
    """Alerts with each channel's delivery state and their triage. ``order=severity``
    (default): critical, then warning, then info, the newest first within a severity;
    ``order=raised``: in the order raised. Either way, page on with ``after`` set to the last
    ``number`` received (the next page continues after that alert in the same order)."""
    reader_only(caller)
    views = outbox.alerts(
        unacknowledged=unacknowledged, after=after, limit=limit, by_severity=order == "severity"
    )
    triage = runtime.triage.states(caller)
    return [AlertOut.of(v, triage.get(v.alert.derived_id)) for v in views]


@router.post(
    "/v1/alerts/{alert_id}/acknowledge",
    response_model=AlertOut,
    responses={
        **READERS_ONLY,
        400: {"model": ErrorBody, "description": "the body is not JSON"},
        404: {"model": ErrorBody, "description": "no such alert"},
    },
)
def acknowledge(
    alert_id: uuid.UUID,
    caller: Caller,
    outbox: OutboxDep,
    runtime: RuntimeDep,
    body: Annotated[Acknowledgement | None, Body()] = None,
) -> AlertOut:
    """Record that a person has seen the alert (stops its escalation); the first one stands."""
    reader_only(caller)
    note = body.note if body else None
    try:
        view = outbox.acknowledge(alert_id, caller.name, note, utc_now())
    except UnknownAlert:
        raise HTTPException(404, f"no alert {alert_id}") from None
    return AlertOut.of(view, runtime.triage.of(caller, alert_id))


@router.post(
    "/v1/alerts/{alert_id}/triage",
    status_code=201,
    response_model=TriageRecordedOut,
    responses={
        **READERS_ONLY,
        404: {"model": ErrorBody, "description": "no such alert"},
        409: {"model": ErrorBody, "description": "the step is not allowed from the alert's state"},
        400: {"model": ErrorBody, "description": "a missing note or disposition"},
    },
)
def triage(
    alert_id: uuid.UUID, body: TriageIn, caller: Caller, outbox: OutboxDep, runtime: RuntimeDep
) -> TriageRecordedOut:
    """Move an alert to its next triage state, with the reader's name, the time and a note:
    ``new`` -> ``under_review`` -> ``escalated_to_dsmb`` or ``closed`` (with a
    ``disposition``); ``escalated_to_dsmb`` -> ``closed``; ``closed`` -> ``under_review``
    (reopened). Escalating, closing and reopening need a note. Starting a review also
    acknowledges the alert. Each step is an ``alert.triaged`` event in the log."""
    reader_only(caller)
    try:
        done = runtime.triage.step(
            caller,
            alert_id,
            body.to_state.value,
            None if body.disposition is None else body.disposition.value,
            body.note,
        )
    except TriageForbidden as refused:
        raise HTTPException(403, str(refused)) from None
    except UnknownAlert:
        raise HTTPException(404, f"no alert {alert_id}") from None
    except StepNotAllowed as refused:
        raise HTTPException(409, str(refused)) from None
    except TriageError as error:
        raise HTTPException(400, str(error)) from None
    (view,) = outbox.alerts(derived_id=alert_id, limit=1)
    return TriageRecordedOut(position=done.position, alert=AlertOut.of(view, done.triage))
