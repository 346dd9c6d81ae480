"""The site-scoped reads of the trial's state: toxicity, exposure, a patient's AEs, and the
dead letters. What a caller sees is decided by the application's reads (a site: its own)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from safety_stream.api.as_of import AsOf, PastStates, parse_as_of
from safety_stream.api.dependencies import ERRORS, PastStatesDep, ReadsDep
from safety_stream.api.paging import LARGEST, Limit
from safety_stream.api.schemas import (
    AeOut,
    ErrorBody,
    ExposureResponse,
    ExposureRow,
    PatientHistoryResponse,
    RejectionOut,
    ToxicityResponse,
)
from safety_stream.api.security import Caller
from safety_stream.application.read_models import DeadLetterRead
from safety_stream.application.reads import Reads, ReadSnapshot
from safety_stream.auth import Principal
from safety_stream.events import Modality

LISTED_RAW_BYTES = 4096

router = APIRouter()


def _read(reads: Reads, past: PastStates, as_of: str | None, caller: Principal) -> ReadSnapshot:
    """The live snapshot, or a past state (folded without the projector's lock)."""
    if as_of is None:
        return reads.snapshot(caller)
    moment = parse_as_of(as_of)
    return reads.past(caller, past.state(caller.name, moment), moment)


@router.get("/v1/toxicity", response_model=ToxicityResponse, responses=ERRORS)
def toxicity(
    caller: Caller, reads: ReadsDep, past: PastStatesDep, as_of: AsOf = None
) -> ToxicityResponse:
    """Per-modality toxicity tables: patients by worst related grade, by term, SOC, site."""
    read = _read(reads, past, as_of, caller)
    return ToxicityResponse(
        as_of=read.taken_at,
        position=read.position,
        related_at_least=read.plan.related_means_at_least.value,
        plan_version=read.plan.version,
        modalities=read.toxicity(),
    )


@router.get("/v1/exposure", response_model=ExposureResponse, responses=ERRORS)
def exposure(
    caller: Caller, reads: ReadsDep, past: PastStatesDep, as_of: AsOf = None
) -> ExposureResponse:
    """Enrolled patients and their first/last exposure to each modality."""
    read = _read(reads, past, as_of, caller)
    patients = list(read.patients.values())
    return ExposureResponse(
        as_of=read.taken_at,
        position=read.position,
        enrolled=len(patients),
        exposed={m.value: sum(m.value in p.exposure for p in patients) for m in Modality},
        patients=[
            ExposureRow(
                patient_id=p.patient_id,
                site_id=p.site_id,
                status=p.status,
                enrolled_at=p.enrolled_at,
                first_exposure={m: e.first for m, e in p.exposure.items()},
                last_exposure={m: e.last for m, e in p.exposure.items()},
            )
            for p in sorted(patients, key=lambda p: p.patient_id)
        ],
    )


@router.get(
    "/v1/patients/{patient_id}/adverse-events",
    response_model=PatientHistoryResponse,
    responses={**ERRORS, 404: {"model": ErrorBody, "description": "no such patient"}},
)
def patient_history(patient_id: str, caller: Caller, reads: ReadsDep) -> PatientHistoryResponse:
    """One patient's AEs: their current versions, and every AE event in log order."""
    history = reads.patient_history(caller, patient_id)
    if history is None:
        raise HTTPException(404, "no such patient")  # never confirm another site's ids
    return PatientHistoryResponse(
        patient_id=patient_id,
        site_id=history.patient.site_id,
        adverse_events=[AeOut.of(a) for a in history.adverse_events()],
        events=list(history.events),
    )


@router.get("/v1/rejections", response_model=list[RejectionOut], responses=ERRORS)
def rejections(
    caller: Caller,
    reads: ReadsDep,
    limit: Limit = 100,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=LARGEST,
            description="the cursor: only the dead letters with a larger id, oldest first "
            "(0: from the first; to page on, the last id received); without it the newest "
            "come first",
        ),
    ] = None,
) -> list[RejectionOut]:
    """The dead-letter store, newest first, or with ``after`` oldest first from the one
    after that id (a site sees only its own submissions); each shows the first 4 KiB of what
    was received."""
    found = reads.rejections(caller, limit, after)
    return [RejectionOut.of(DeadLetterRead.of(r), shown=LISTED_RAW_BYTES) for r in found]


@router.get(
    "/v1/rejections/{rejection_id}",
    response_model=RejectionOut,
    responses={**ERRORS, 404: {"model": ErrorBody, "description": "no such dead letter"}},
)
def rejection(
    caller: Caller, reads: ReadsDep, rejection_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> RejectionOut:
    """One dead letter with all of its raw bytes that are kept (the first 64 KiB)."""
    found = reads.rejection(caller, rejection_id)
    if found is None:
        raise HTTPException(404, "no such dead letter")  # nor another site's
    return RejectionOut.of(DeadLetterRead.of(found))
