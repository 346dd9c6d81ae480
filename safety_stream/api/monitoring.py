"""Monitoring endpoints: every rule's state, and the derived events (for readers, not sites)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from safety_stream.api.dependencies import DerivedDep, PlanDep, ReadsDep
from safety_stream.api.paging import After, Limit
from safety_stream.api.schemas import ErrorBody
from safety_stream.api.security import Caller
from safety_stream.application.reads import sees_trial_wide
from safety_stream.auth import Principal
from safety_stream.events.derived import DerivedEvent
from safety_stream.monitoring.status import RuleStatus

READERS_ONLY: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or unknown bearer token"},
    403: {"model": ErrorBody, "description": "sites see only their own data, not trial-wide rules"},
}


class RulesResponse(BaseModel):
    plan_version: str
    position: int
    clock: str  # the monitoring clock: the latest recorded_at the log has reached
    rules: list[RuleStatus]


class DerivedOut(BaseModel):
    number: int
    event: DerivedEvent


def reader_only(caller: Principal) -> None:
    if not sees_trial_wide(caller):
        raise HTTPException(403, "sites see only their own data, not trial-wide rules")


router = APIRouter()


@router.get("/v1/rules", response_model=RulesResponse, responses=READERS_ONLY)
def rules(caller: Caller, reads: ReadsDep, plan: PlanDep) -> RulesResponse:
    """Every rule of the plan: counted patients, the boundary at n, state, report clocks."""
    reader_only(caller)
    view = reads.monitoring(caller)
    assert view.position is not None and view.clock is not None  # a reader's view
    return RulesResponse(
        plan_version=plan.version,
        position=view.position,
        clock=view.clock.isoformat(),
        rules=list(view.rules),
    )


@router.get("/v1/derived-events", response_model=list[DerivedOut], responses=READERS_ONLY)
def derived_events(
    caller: Caller,
    derived: DerivedDep,
    rule_id: Annotated[
        str | None, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    ] = None,
    after: After = 0,
    limit: Limit = 100,
) -> list[DerivedOut]:
    """What the monitor concluded, in the order stored (boundaries, sentinels, clocks); page
    on with ``after`` set to the last ``number`` received."""
    reader_only(caller)
    found = derived.derived_events(rule_id, after, limit)
    return [DerivedOut(number=d.number, event=d.event) for d in found]
