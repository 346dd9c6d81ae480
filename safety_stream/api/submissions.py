"""POST /v1/events: one JSON event, a JSON array, NDJSON (``application/x-ndjson``) or an EDC CSV
export (``text/csv``).

It answers only after the records are committed (stored events and dead letters alike).
Status: 201 when something new was stored, 200 when everything was a duplicate, 422 when any
record was invalid, 403 when any record belongs to another site, 409 when any reused an event
id with another payload; the body lists every record's outcome either way. Work per request is
bounded: ``max_body_bytes``, ``max_records``, and commits of ``PART`` records at a time.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from safety_stream.api.dependencies import ERRORS, SettingsDep, SubmitterDep
from safety_stream.api.schemas import ErrorBody, IngestResponse, QueuedItem, QueuedResponse
from safety_stream.api.security import Caller
from safety_stream.application.submissions import (
    PART,
    STORAGE_FULL,
    Queued,
    SubmissionRefused,
)
from safety_stream.ingest import IngestReport
from safety_stream.validation.records import InputFormat, known_encoding

__all__ = ["PART", "STORAGE_FULL", "router"]

CONTENT_TYPES = {
    "application/json": InputFormat.JSON,
    "application/x-ndjson": InputFormat.NDJSON,
    "application/ndjson": InputFormat.NDJSON,
    "text/csv": InputFormat.CSV,
}

router = APIRouter()


def _status(report: IngestReport) -> int:
    statuses = {o.status for o in report.outcomes}
    for status, code in (("rejected", 422), ("forbidden", 403), ("conflict", 409)):
        if status in statuses:
            return code
    return 201 if "stored" in statuses else 200


@router.post(
    "/v1/events",
    status_code=201,
    response_model=IngestResponse,
    responses={
        200: {"model": IngestResponse, "description": "every record was a duplicate"},
        202: {
            "model": QueuedResponse,
            "description": "distributed mode: on the submissions topic, to be processed",
        },
        409: {"model": IngestResponse, "description": "an event id was reused"},
        400: {"model": ErrorBody, "description": "empty body"},
        413: {"model": ErrorBody, "description": "body or record count over the limit"},
        415: {"model": ErrorBody, "description": "unsupported content type"},
        422: {"model": IngestResponse, "description": "invalid records (kept as dead letters)"},
        **ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}},
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def post_events(
    request: Request, caller: Caller, submitter: SubmitterDep, settings: SettingsDep
) -> JSONResponse:
    if not caller.can_write:
        raise HTTPException(403, f"role {caller.role} cannot write events")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    input_format = CONTENT_TYPES.get(content_type)
    if input_format is None:
        raise HTTPException(415, "use application/json, application/x-ndjson or text/csv")
    encoding = None
    if input_format is InputFormat.CSV:
        encoding = _charset(request.headers.get("content-type", ""))
    limit = settings.max_body_bytes
    if int(request.headers.get("content-length") or 0) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
    if not body.strip():
        raise HTTPException(400, "the body is empty: send at least one event")
    try:
        submitted = await run_in_threadpool(
            submitter.submit, bytes(body), input_format, caller, encoding
        )
    except SubmissionRefused as refused:
        raise HTTPException(refused.status, str(refused)) from refused.__cause__
    if isinstance(submitted, Queued):
        response = QueuedResponse(
            queued=len(submitted.receipts),
            topic=submitted.topic,
            results=[QueuedItem(location=r.location, partition=r.partition, offset=r.offset)
                     for r in submitted.receipts],
        )  # fmt: skip
        return JSONResponse(response.model_dump(mode="json"), 202)
    return JSONResponse(IngestResponse.of(submitted).model_dump(mode="json"), _status(submitted))


def _charset(content_type: str) -> str | None:
    """The ``charset`` parameter of a Content-Type (CSV only; JSON is UTF-8 by definition);
    an encoding Python does not know is answered 415 before anything is read."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"'):
            try:
                return known_encoding(value.strip().strip('"'))
            except ValueError as error:
                raise HTTPException(415, f"Content-Type charset: {error}") from None
    return None
