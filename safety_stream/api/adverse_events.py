"""Drill-down: the AE listing with filters, one AE with its whole history, a patient's profile.

What a caller sees is decided by the application's reads: a site sees its own patients and
AEs only, gets 404 for another site's ids (never a confirmation that they exist) and never a
log position (``changed_since`` takes a time from a site, not a position).
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from safety_stream.api.dependencies import ERRORS, PlanDep, ReadsDep, runtime
from safety_stream.api.paging import LARGEST, CalendarDate, Limit
from safety_stream.api.schemas import AeOut, ErrorBody
from safety_stream.api.security import Caller
from safety_stream.application.drilldown import (
    AeListingRow,
    PatientProfileRead,
    ae_history,
    ae_listing,
    patient_profile,
)
from safety_stream.application.listing_query import FilterError, ListingQuery
from safety_stream.application.review import ReviewReads
from safety_stream.events import Attribution, Modality

router = APIRouter()


def _review(request: Request) -> ReviewReads:
    return runtime(request).review


ReviewDep = Annotated[ReviewReads, Depends(_review)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "none that this caller may see"}
}


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True)


class AeListingOut(AeOut):
    """An AE as ``AeOut`` renders it, with where it stands in the listing and its history."""

    number: int = Field(description="its place among the AEs you see, first reported first")
    patient_id: str
    site_id: str
    reported_at: datetime
    meddra_code: int
    verbatim_term: str | None
    action_taken: str
    first_stored_at: datetime
    last_changed_at: datetime
    last_changed_position: int | None = Field(description="readers only; null for a site")
    amendments: int

    @classmethod
    def of_row(cls, row: AeListingRow) -> AeListingOut:
        return cls.model_validate(row.fields())


class AeListingResponse(_Body):
    position: int | None = Field(description="the log position read at (readers only)")
    chain_head: str | None = Field(description="the chain hash at that position (readers only)")
    matching: int = Field(description="how many AEs match the filters, on every page")
    next_after: int | None = Field(
        description="pass as `after` for the next page; null on the last page"
    )
    adverse_events: list[AeListingOut]


class AeVersionOut(_Body):
    position: int | None
    event_type: str
    event_id: str
    reporter: str
    recorded_at: datetime
    stored_at: datetime
    changes: dict[str, Any]
    reason: str | None


class AeHistoryResponse(_Body):
    adverse_event: AeListingOut
    versions: list[AeVersionOut] = Field(description="the report, then every amendment")


class PatientProfileResponse(_Body):
    patient_id: str
    site_id: str
    status: str
    enrolled_at: datetime | None
    consent_date: date | None
    planned_modalities: list[str]
    administrations: list[dict[str, Any]]
    labs: list[dict[str, Any]] = Field(description="with times_uln: the value / ULN")
    child_pugh: list[dict[str, Any]]
    exit: dict[str, Any] | None
    death: dict[str, Any] | None
    last_data_on: date | None
    adverse_events: list[AeListingOut]

    @classmethod
    def of(cls, profile: PatientProfileRead) -> PatientProfileResponse:
        labs = [_record(lab) | {"times_uln": lab.times_uln} for lab in profile.labs]
        return cls(
            patient_id=profile.patient_id,
            site_id=profile.site_id,
            status=profile.status,
            enrolled_at=profile.enrolled_at,
            consent_date=profile.consent_date,
            planned_modalities=list(profile.planned_modalities),
            administrations=[_record(a) for a in profile.administrations],
            labs=labs,
            child_pugh=[_record(c) for c in profile.child_pugh],
            exit=None if profile.exit is None else _record(profile.exit),
            death=None if profile.death is None else _record(profile.death),
            last_data_on=profile.last_data_on,
            adverse_events=[AeListingOut.of_row(r) for r in profile.aes],
        )


def _record(record: Any) -> dict[str, Any]:
    """A frozen detail record as JSON-ready fields, without its log position (trial-wide)."""
    fields = dataclasses.asdict(record)
    fields.pop("position", None)
    return {k: str(v) if isinstance(v, UUID) else v for k, v in fields.items()}


def _invalid(error: FilterError) -> HTTPException:
    """A 422 shaped as FastAPI's own: which query parameter, and what is allowed."""
    detail = [{"loc": ["query", error.parameter], "msg": error.message, "type": "value_error"}]
    return HTTPException(422, detail)


def _filters(
    site: Annotated[str | None, Query(max_length=100, description="only this site's")] = None,
    patient: Annotated[str | None, Query(max_length=100, description="only this patient's")] = None,
    modality: Annotated[
        Modality | None,
        Query(
            description="attributed to this modality (at least `attribution`; without it, "
            "the plan's 'related')"
        ),
    ] = None,
    attribution: Annotated[
        Attribution | None,
        Query(description="attributed at least this strongly (to `modality`, else to any)"),
    ] = None,
    grade: Annotated[int | None, Query(ge=1, le=5, description="current grade at least")] = None,
    worst_grade: Annotated[
        int | None, Query(ge=1, le=5, description="worst grade over the course at least")
    ] = None,
    soc: Annotated[str | None, Query(max_length=200, description="CTCAE SOC (any case)")] = None,
    term: Annotated[str | None, Query(max_length=200, description="CTCAE term (any case)")] = None,
    serious: Annotated[bool | None, Query(description="any seriousness criterion")] = None,
    irae: Annotated[bool | None, Query(description="immune-related")] = None,
    status: Annotated[
        Literal["open", "resolved", "retracted"] | None,
        Query(description="without it: open and resolved (retracted only when asked for)"),
    ] = None,
    onset_from: Annotated[CalendarDate | None, Query(description="onset on or after")] = None,
    onset_to: Annotated[CalendarDate | None, Query(description="onset on or before")] = None,
    changed_since: Annotated[
        str | None,
        Query(
            max_length=40,
            description="last changed after this log position (readers) or ISO 8601 time",
        ),
    ] = None,
    rule: Annotated[
        str | None,
        Query(max_length=200, description="the AEs a rule counted or a sentinel was raised by"),
    ] = None,
    treatment_emergent: Annotated[
        bool | None,
        Query(
            description="onset on or after the patient's first dose of any study treatment "
            "(true), or before it / never dosed (false), as the DMC tables count"
        ),
    ] = None,
    patient_worst_grade: Annotated[
        int | None,
        Query(
            ge=1,
            le=5,
            description="of the AEs matching the other filters, those of worst grade n of the "
            "patients whose worst among them is n (a DMC table's grade-n column)",
        ),
    ] = None,
) -> ListingQuery:
    return ListingQuery(
        site, patient, modality, attribution, grade, worst_grade, soc, term, serious, irae,
        status, onset_from, onset_to, changed_since, rule, treatment_emergent, patient_worst_grade,
    )  # fmt: skip


FiltersDep = Annotated[ListingQuery, Depends(_filters)]


@router.get(
    "/v1/adverse-events",
    response_model=AeListingResponse,
    responses={**ERRORS, 422: {"description": "a filter's value is not allowed (which, why)"}},
)
def adverse_events(
    caller: Caller,
    review: ReviewDep,
    reads: ReadsDep,
    plan: PlanDep,
    filters: FiltersDep,
    limit: Limit = 100,
    after: Annotated[
        int, Query(ge=0, le=LARGEST, description="the cursor: the last `number` received")
    ] = 0,
) -> AeListingResponse:
    """The AEs the caller may see that match every filter given, first reported first."""
    try:
        chosen = filters.to_filter(plan, caller, reads)
    except FilterError as error:
        raise _invalid(error) from None
    found = ae_listing(review, caller, chosen, after, limit)
    return AeListingResponse(
        position=found.position,
        chain_head=found.chain_head,
        matching=found.matching,
        next_after=found.rows[-1].number if found.more else None,
        adverse_events=[AeListingOut.of_row(r) for r in found.rows],
    )


@router.get(
    "/v1/adverse-events/{ae_id}",
    response_model=AeHistoryResponse,
    responses={**ERRORS, **NOT_FOUND},
)
def adverse_event(ae_id: UUID, caller: Caller, review: ReviewDep) -> AeHistoryResponse:
    """One AE's current version and every version of it: who, when, what changed, why."""
    found = ae_history(review, caller, ae_id)
    if found is None:
        raise HTTPException(404, "no such adverse event")  # nor another site's
    return AeHistoryResponse(
        adverse_event=AeListingOut.of_row(found.row),
        versions=[AeVersionOut.model_validate(dataclasses.asdict(v)) for v in found.versions],
    )


@router.get(
    "/v1/patients/{patient_id}/profile",
    response_model=PatientProfileResponse,
    responses={**ERRORS, **NOT_FOUND},
)
def profile(patient_id: str, caller: Caller, review: ReviewDep) -> PatientProfileResponse:
    """Enrolment, every administration, AEs, labs against ULN, Child-Pugh, exit and death."""
    found = patient_profile(review, caller, patient_id)
    if found is None:
        raise HTTPException(404, "no such patient")  # never confirm another site's ids
    return PatientProfileResponse.of(found)
