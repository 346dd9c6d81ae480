"""Monitoring endpoints: every rule's state, and the derived events (for readers, not sites)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel

from safety_stream.api.schemas import ErrorBody
from safety_stream.api.security import Caller
from safety_stream.auth import Principal
from safety_stream.events.derived import DerivedEvent
from safety_stream.monitoring.status import RuleStatus, rule_statuses
from safety_stream.runtime import Runtime

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
    if caller.role == "site":
        raise HTTPException(403, "sites see only their own data, not trial-wide rules")


def add_monitoring_routes(app: FastAPI, runtime: Runtime) -> None:

    @app.get("/v1/rules", response_model=RulesResponse, responses=READERS_ONLY)
    def rules(caller: Caller) -> RulesResponse:
        """Every rule of the plan: counted patients, the boundary at n, state, report clocks."""
        reader_only(caller)
        with runtime.projector.lock:
            runtime.projector.catch_up()
            return RulesResponse(
                plan_version=runtime.plan.version,
                position=runtime.projector.state.position,
                clock=runtime.monitor.clock.isoformat(),
                rules=rule_statuses(runtime.monitor),
            )

    @app.get("/v1/derived-events", response_model=list[DerivedOut], responses=READERS_ONLY)
    def derived_events(
        caller: Caller,
        rule_id: Annotated[
            str | None, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
        ] = None,
        after: Annotated[
            int, Query(ge=0, le=2**63 - 1, description="only those stored after this number")
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[DerivedOut]:
        """What the monitor concluded, in the order stored (boundaries, sentinels, clocks)."""
        reader_only(caller)
        found = runtime.derived.derived_events(rule_id, after)[:limit]
        return [DerivedOut(number=d.number, event=d.event) for d in found]
