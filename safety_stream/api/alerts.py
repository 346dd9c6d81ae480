"""Alert endpoints: the alerts with their delivery state, and acknowledging one (readers)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, Field

from safety_stream.alerts.dispatcher import utc_now
from safety_stream.alerts.outbox import AlertView, UnknownAlert
from safety_stream.api.dependencies import OutboxDep
from safety_stream.api.monitoring import READERS_ONLY, reader_only
from safety_stream.api.paging import After, Limit
from safety_stream.api.schemas import ErrorBody
from safety_stream.api.security import Caller
from safety_stream.events.derived import DerivedEvent


class DeliveryOut(BaseModel):
    channel: str
    reason: str
    state: str
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None


class AlertOut(BaseModel):
    number: int
    alert: DerivedEvent
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    escalated_at: datetime | None
    deliveries: list[DeliveryOut]

    @classmethod
    def of(cls, view: AlertView) -> AlertOut:
        return cls(
            number=view.number,
            alert=view.alert,
            raised_at=view.raised_at,
            acknowledged_at=view.acknowledged_at,
            acknowledged_by=view.acknowledged_by,
            escalated_at=view.escalated_at,
            deliveries=[DeliveryOut(**vars(d)) for d in view.deliveries],
        )


class Acknowledgement(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


router = APIRouter()


@router.get("/v1/alerts", response_model=list[AlertOut], responses=READERS_ONLY)
def alerts(
    caller: Caller,
    outbox: OutboxDep,
    unacknowledged: bool = False,
    after: After = 0,
    limit: Limit = 100,
) -> list[AlertOut]:
    """Alerts in the order raised, with each channel's delivery state; page on with
    ``after`` set to the last ``number`` received."""
    reader_only(caller)
    views = outbox.alerts(unacknowledged=unacknowledged, after=after, limit=limit)
    return [AlertOut.of(v) for v in views]


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
    body: Annotated[Acknowledgement | None, Body()] = None,
) -> AlertOut:
    """Record that a person has seen the alert (stops its escalation); the first one stands."""
    reader_only(caller)
    note = body.note if body else None
    try:
        view = outbox.acknowledge(alert_id, caller.name, note, utc_now())
    except UnknownAlert:
        raise HTTPException(404, f"no alert {alert_id}") from None
    return AlertOut.of(view)
