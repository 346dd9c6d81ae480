"""DSMB decisions: record one (a dsmb or safety_officer credential), list them (readers)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from safety_stream.api.dependencies import DecisionLogDep, PlanDep, ReadsDep
from safety_stream.api.monitoring import READERS_ONLY, reader_only
from safety_stream.api.paging import After, Limit
from safety_stream.api.schemas import ErrorBody
from safety_stream.api.security import Caller
from safety_stream.events import DecisionOutcome, DsmbDecision, Modality
from safety_stream.governance import DECIDING_ROLES, DecisionError, build_decision


class DecisionIn(BaseModel):
    answers: list[str] = Field(min_length=1, description="Rule ids the decision answers")
    outcome: DecisionOutcome
    rationale: str = Field(min_length=1, max_length=2000)
    modality: Modality | None = Field(default=None, description="With stop_modality")


class DecisionRecorded(BaseModel):
    position: int
    decision: DsmbDecision
    enrolment_paused: bool


router = APIRouter()


@router.get("/v1/decisions", response_model=list[DsmbDecision], responses=READERS_ONLY)
def decisions(
    caller: Caller, reads: ReadsDep, after: After = 0, limit: Limit = 100
) -> list[DsmbDecision]:
    """The DSMB decisions in log order, numbered from 1; page on with ``after`` set to how
    many were received so far."""
    reader_only(caller)
    return list(reads.monitoring(caller).decisions[after : after + limit])


@router.post(
    "/v1/decisions",
    status_code=201,
    response_model=DecisionRecorded,
    responses={
        **READERS_ONLY,
        400: {"model": ErrorBody, "description": "unknown rule, or an incomplete decision"},
    },
)
async def decide(
    body: DecisionIn, caller: Caller, plan: PlanDep, log: DecisionLogDep, reads: ReadsDep
) -> DecisionRecorded:
    """Record a DSMB decision on crossed rules or raised sentinels: it releases their latch;
    ``pause_enrolment`` refuses new enrolments (409) until ``resume_enrolment``. Written
    to the audit log directly, also in distributed mode (as ``safety-stream decide``)."""
    if caller.role not in DECIDING_ROLES:
        raise HTTPException(403, "decisions are recorded by a dsmb or safety_officer credential")
    try:
        decision = build_decision(
            plan, body.answers, body.outcome.value, body.rationale, caller.name,
            datetime.now(UTC), None if body.modality is None else body.modality.value,
        )  # fmt: skip
    except DecisionError as error:
        raise HTTPException(400, str(error)) from None
    report = await run_in_threadpool(log.record, decision, f"http:{caller.name}")
    (outcome,) = report.outcomes
    if outcome.status != "stored" or outcome.position is None:
        raise HTTPException(400, "; ".join(p.message for p in outcome.problems))
    paused = await run_in_threadpool(lambda: reads.monitoring(caller).enrolment_paused)
    return DecisionRecorded(position=outcome.position, decision=decision, enrolment_paused=paused)
