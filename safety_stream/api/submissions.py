"""POST /v1/events: one JSON event, a JSON array, NDJSON (``application/x-ndjson``) or an EDC CSV
export (``text/csv``).

It answers only after the records are committed (stored events and dead letters alike).
Status: 201 when something new was stored, 200 when everything was a duplicate, 422 when any
record was invalid, 403 when any record belongs to another site, 409 when any reused an event
id with another payload; the body lists every record's outcome either way. Work per request is
bounded: ``max_body_bytes``, ``max_records``, and commits of ``PART`` records at a time.
"""

from __future__ import annotations

import io
import logging
import time
from datetime import timedelta
from itertools import islice

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from safety_stream.api.schemas import ErrorBody, IngestResponse, QueuedItem, QueuedResponse
from safety_stream.api.security import Caller
from safety_stream.auth import Principal
from safety_stream.governance import pause_reason
from safety_stream.ingest import IngestReport, ingest
from safety_stream.runtime import Runtime
from safety_stream.validation.edc_csv import read_edc_csv
from safety_stream.validation.records import (
    InputFormat,
    RawRecord,
    known_encoding,
    read_json_document,
    read_ndjson,
)

log = logging.getLogger(__name__)

STORAGE_FULL = "storage_full"
PART = 1_000
"""Records per transaction: about 0.1 s of the write lock on this project's 2-core machine."""

CONTENT_TYPES = {
    "application/json": InputFormat.JSON,
    "application/x-ndjson": InputFormat.NDJSON,
    "application/ndjson": InputFormat.NDJSON,
    "text/csv": InputFormat.CSV,
}


def _status(report: IngestReport) -> int:
    statuses = {o.status for o in report.outcomes}
    for status, code in (("rejected", 422), ("forbidden", 403), ("conflict", 409)):
        if status in statuses:
            return code
    return 201 if "stored" in statuses else 200


def add_submission_routes(
    app: FastAPI, runtime: Runtime, errors: dict[int | str, dict[str, object]]
) -> None:
    """POST /v1/events; ``errors``: the responses every route of the API documents."""

    @app.post(
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
            **errors,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}
                    },
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        },
    )
    async def post_events(request: Request, caller: Caller) -> JSONResponse:
        if not caller.can_write:
            raise HTTPException(403, f"role {caller.role} cannot write events")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        input_format = CONTENT_TYPES.get(content_type)
        if input_format is None:
            raise HTTPException(415, "use application/json, application/x-ndjson or text/csv")
        encoding = None
        if input_format is InputFormat.CSV:
            encoding = _charset(request.headers.get("content-type", ""))
        limit = runtime.settings.max_body_bytes
        if int(request.headers.get("content-length") or 0) > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise HTTPException(413, f"body larger than {limit} bytes")
        if not body.strip():
            raise HTTPException(400, "the body is empty: send at least one event")
        if runtime.producer is not None:
            return await _produce(runtime, bytes(body), input_format, caller)
        report = await run_in_threadpool(
            _ingest, runtime, bytes(body), input_format, caller, encoding
        )
        runtime.health.recovered(STORAGE_FULL)
        return JSONResponse(IngestResponse.of(report).model_dump(mode="json"), _status(report))


async def _produce(
    runtime: Runtime, body: bytes, input_format: InputFormat, caller: Principal
) -> JSONResponse:
    """Distributed mode: put each record on the submissions topic; answer once the broker
    has acknowledged all of them (503 if it could not: nothing is acknowledged, resend)."""
    producer = runtime.producer
    assert producer is not None
    if input_format is InputFormat.CSV:
        raise HTTPException(
            415, "in distributed mode send JSON or NDJSON; CSV exports go to the embedded runtime"
        )
    records = _read(body, input_format, None, runtime.settings.max_records)
    try:
        receipts = await run_in_threadpool(
            producer.send,
            records,
            f"http:{caller.name}",
            caller.site_id if caller.role == "site" else None,
        )
    except Exception as error:  # the broker did not acknowledge: the site must resend
        raise HTTPException(503, f"the event log is unavailable, resend: {error}") from error
    response = QueuedResponse(
        queued=len(receipts),
        topic=producer.topic,
        results=[QueuedItem(location=r.location, partition=r.partition, offset=r.offset)
                 for r in receipts],
    )  # fmt: skip
    return JSONResponse(response.model_dump(mode="json"), 202)


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


def _read(
    body: bytes, input_format: InputFormat, encoding: str | None, most: int
) -> list[RawRecord]:
    """The records of ``body``; 413 as soon as there are more than ``most`` (the rest is
    never read)."""
    stream = io.BytesIO(body)
    if input_format is InputFormat.NDJSON:
        reader = read_ndjson(stream)
    elif input_format is InputFormat.JSON:
        reader = read_json_document(stream)
    else:
        reader = read_edc_csv(stream, encoding)
    records = list(islice(reader, most + 1))
    if len(records) > most:
        raise HTTPException(
            413, f"more than {most} records in one request: send them in several requests"
        )
    return records


def _ingest(
    runtime: Runtime,
    body: bytes,
    input_format: InputFormat,
    caller: Principal,
    encoding: str | None = None,
) -> IngestReport:
    """Store the submission in parts of ``PART`` records, each committed and projected before
    the next: another site's POST waits for one part at most, never for the whole batch. A
    retry of a submission cut short stores the rest (the stored parts answer "duplicate")."""
    records = _read(body, input_format, encoding, runtime.settings.max_records)
    reports = []
    for start in range(0, len(records), PART):
        started = time.perf_counter()
        report = ingest(
            runtime.store,
            records[start : start + PART],
            input_format,
            runtime.ctcae,
            source=f"http:{caller.name}",
            site_id=caller.site_id if caller.role == "site" else None,
            clock_skew=timedelta(seconds=runtime.settings.clock_skew_seconds),
            enrolment_paused=pause_reason(runtime.monitor),
            trial_id=runtime.plan.trial.id,
        )
        runtime.metrics.append_seconds.observe(time.perf_counter() - started)
        runtime.metrics.count_report(report)
        try:
            runtime.projector.follow(report.appended)
        except Exception:  # stored and durable: acknowledged; projected when saving works
            log.exception("the projection could not be saved; the events are stored")
        runtime.metrics.ingest_to_projection_seconds.observe(time.perf_counter() - started)
        reports.append(report)
    return IngestReport.merged(reports)
