"""The HTTP API of the embedded runtime (FastAPI; OpenAPI docs at /docs), versioned under /v1.

POST /v1/events takes one JSON event, a JSON array, NDJSON (``application/x-ndjson``) or an
EDC CSV export (``text/csv``). It answers only after the transaction holding the submission
(stored events and dead letters alike) has committed. Status: 201 when something new was stored,
200 when everything was a duplicate, 422 when any record was invalid, 403 when any record
belongs to another site, 409 when any reused an event id with another payload; the body lists
every record's outcome either way.
"""

from __future__ import annotations

import io
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from safety_stream import __version__
from safety_stream.api.alerts import add_alert_routes
from safety_stream.api.decisions import add_decision_routes
from safety_stream.api.monitoring import add_monitoring_routes
from safety_stream.api.operations import add_operations_routes
from safety_stream.api.schemas import (
    AeOut,
    ErrorBody,
    ExposureResponse,
    ExposureRow,
    IngestResponse,
    PatientHistoryResponse,
    QueuedItem,
    QueuedResponse,
    RejectionOut,
    ToxicityResponse,
)
from safety_stream.api.security import Caller
from safety_stream.auth import Principal
from safety_stream.board import add_board_routes
from safety_stream.events import Modality
from safety_stream.governance import pause_reason
from safety_stream.ingest import IngestReport, ingest
from safety_stream.projections.projector import state_as_of
from safety_stream.projections.state import TrialState
from safety_stream.projections.toxicity import toxicity_tables
from safety_stream.runtime import Runtime
from safety_stream.store.engine import is_storage_full
from safety_stream.validation.edc_csv import read_edc_csv
from safety_stream.validation.records import (
    InputFormat,
    known_encoding,
    read_json_document,
    read_ndjson,
)

log = logging.getLogger(__name__)
STORAGE_FULL = "storage_full"

CONTENT_TYPES = {
    "application/json": InputFormat.JSON,
    "application/x-ndjson": InputFormat.NDJSON,
    "application/ndjson": InputFormat.NDJSON,
    "text/csv": InputFormat.CSV,
}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or unknown bearer token"},
    403: {"model": IngestResponse | ErrorBody, "description": "not allowed for this credential"},
}


def _status(report: IngestReport) -> int:
    statuses = {o.status for o in report.outcomes}
    for status, code in (("rejected", 422), ("forbidden", 403), ("conflict", 409)):
        if status in statuses:
            return code
    return 201 if "stored" in statuses else 200


AsOf = Annotated[
    str | None,
    Query(
        description="Answer as the system stood at this time (ISO 8601 with offset)",
        json_schema_extra={"format": "date-time"},
    ),
]


def parse_as_of(text: str) -> datetime:
    """An ISO 8601 time with a UTC offset; anything else is a 422 that says so."""
    try:
        moment: datetime | None = datetime.fromisoformat(text)
        if moment is not None and moment.tzinfo is not None:
            moment = moment.astimezone(UTC)  # past the calendar's end in UTC: refused
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise RequestValidationError(
            [
                {
                    "type": "datetime_parsing",
                    "loc": ("query", "as_of"),
                    "msg": "as_of must be an ISO 8601 time with a UTC offset, "
                    "e.g. 2026-03-01T00:00:00Z",
                    "input": text,
                }
            ]
        )
    return moment


def create_app(runtime: Runtime) -> FastAPI:
    """The API over one runtime (the composition root builds the runtime)."""
    app = FastAPI(
        title="safety-stream",
        version=__version__,
        description="Adverse-event ingest and live safety monitoring for clinical trials.",
    )

    app.state.runtime = runtime

    @app.exception_handler(Exception)
    async def failure(request: Request, error: Exception) -> Response:
        """A full disk is the operator's to fix and the client's to wait out (503, retry);
        anything else is a bare 500 (the traceback goes to the log, not to the client)."""
        if is_storage_full(error):
            runtime.health.failed(STORAGE_FULL, "the database's disk is full: writes fail")
            return JSONResponse(
                {"detail": "the event store's disk is full: nothing of this request was "
                 "stored; send it again later"},
                503, headers={"Retry-After": "60"},
            )  # fmt: skip
        return JSONResponse({"detail": "internal server error"}, 500)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        """As FastAPI answers, except that a 405 lists every method of the path in Allow
        (Starlette names only the first route's, e.g. GET when POST is routed separately)."""
        if error.status_code == 405:
            allowed = {
                method
                for route in app.routes
                if isinstance(route, APIRoute) and route.path_regex.match(request.url.path)
                for method in route.methods or ()
            }
            return JSONResponse(
                {"detail": error.detail}, 405, headers={"Allow": ", ".join(sorted(allowed))}
            )
        return await http_exception_handler(request, error)

    def state_for(as_of: str | None) -> tuple[TrialState, datetime]:
        if as_of is None:
            runtime.projector.catch_up()
            return runtime.projector.state, datetime.now(UTC)
        moment = parse_as_of(as_of)
        return state_as_of(runtime.store, moment), moment

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
            413: {"model": ErrorBody, "description": "body larger than the limit"},
            415: {"model": ErrorBody, "description": "unsupported content type"},
            422: {"model": IngestResponse, "description": "invalid records (kept as dead letters)"},
            **ERRORS,
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
        started = time.perf_counter()
        report = await run_in_threadpool(
            _ingest, runtime, bytes(body), input_format, caller, encoding
        )
        runtime.health.recovered(STORAGE_FULL)
        runtime.metrics.append_seconds.observe(time.perf_counter() - started)
        runtime.metrics.count_report(report)
        try:
            await run_in_threadpool(runtime.projector.follow, report.appended)
        except Exception:  # stored and durable: acknowledged; projected when saving works again
            log.exception("the projection could not be saved; the events are stored")
        runtime.metrics.ingest_to_projection_seconds.observe(time.perf_counter() - started)
        return JSONResponse(IngestResponse.of(report).model_dump(mode="json"), _status(report))

    @app.get("/v1/toxicity", response_model=ToxicityResponse, responses=ERRORS)
    def toxicity(caller: Caller, as_of: AsOf = None) -> ToxicityResponse:
        """Per-modality toxicity tables: patients by worst related grade, by term, SOC, site."""
        with runtime.projector.lock:
            state, moment = state_for(as_of)
            tables = toxicity_tables(
                state,
                moment,
                runtime.plan.related_means_at_least,
                runtime.plan.windows,
                caller.sees_site,
            )
            return ToxicityResponse(
                as_of=moment,
                position=None if caller.sees_site else state.position,
                related_at_least=runtime.plan.related_means_at_least.value,
                plan_version=runtime.plan.version,
                modalities=tables,
            )

    @app.get("/v1/exposure", response_model=ExposureResponse, responses=ERRORS)
    def exposure(caller: Caller, as_of: AsOf = None) -> ExposureResponse:
        """Enrolled patients and their first/last exposure to each modality."""
        with runtime.projector.lock:
            state, moment = state_for(as_of)
            patients = [
                p
                for p in state.patients.values()
                if caller.sees_site is None or p.site_id == caller.sees_site
            ]
            return ExposureResponse(
                as_of=moment,
                position=None if caller.sees_site else state.position,
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

    @app.get(
        "/v1/patients/{patient_id}/adverse-events",
        response_model=PatientHistoryResponse,
        responses={**ERRORS, 404: {"model": ErrorBody, "description": "no such patient"}},
    )
    def patient_history(patient_id: str, caller: Caller) -> PatientHistoryResponse:
        """One patient's AEs: their current versions, and every AE event in log order."""
        with runtime.projector.lock:
            runtime.projector.catch_up()
            patient = runtime.projector.state.patients.get(patient_id)
            if patient is None or caller.sees_site not in (None, patient.site_id):
                raise HTTPException(404, "no such patient")  # never confirm another site's ids
            aes = [a for a in runtime.projector.state.aes.values() if a.patient_id == patient_id]
        stream = runtime.store.stream(patient.trial_id, patient_id)
        return PatientHistoryResponse(
            patient_id=patient_id,
            site_id=patient.site_id,
            adverse_events=[
                AeOut(
                    ae_id=str(a.ae_id),
                    ctcae_term=a.ctcae_term,
                    soc=a.soc,
                    grade=a.grade,
                    worst_grade=a.worst,
                    onset_date=a.onset_date,
                    status=a.status,
                    outcome=a.outcome,
                    end_date=a.end_date,
                    attribution=a.attribution,
                    seriousness=a.seriousness,
                    expectedness=a.expectedness,
                    immune_related=a.immune_related,
                )
                for a in aes
            ],
            events=[
                {"position": s.position, "stored_at": s.stored_at.isoformat(), "event": s.payload}
                for s in stream
                if s.event_type.startswith("ae.")
            ],
        )

    @app.get("/v1/rejections", response_model=list[RejectionOut], responses=ERRORS)
    def rejections(
        caller: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[RejectionOut]:
        """The dead-letter store, newest first (a site sees only its own submissions)."""
        return [
            RejectionOut.of(r)
            for r in runtime.store.rejections(site_id=caller.sees_site, limit=limit)
        ]

    add_monitoring_routes(app, runtime)
    add_alert_routes(app, runtime)
    add_decision_routes(app, runtime)
    add_board_routes(app, runtime)

    add_operations_routes(app, runtime)

    return app


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
    stream = io.BytesIO(body)
    reader = read_ndjson if input_format is InputFormat.NDJSON else read_json_document
    records = list(reader(stream))
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


def _ingest(
    runtime: Runtime,
    body: bytes,
    input_format: InputFormat,
    caller: Principal,
    encoding: str | None = None,
) -> IngestReport:
    stream = io.BytesIO(body)
    if input_format is InputFormat.NDJSON:
        records = read_ndjson(stream)
    elif input_format is InputFormat.JSON:
        records = read_json_document(stream)
    else:
        records = read_edc_csv(stream, encoding)
    return ingest(
        runtime.store,
        records,
        input_format,
        runtime.ctcae,
        source=f"http:{caller.name}",
        site_id=caller.site_id if caller.role == "site" else None,
        clock_skew=timedelta(seconds=runtime.settings.clock_skew_seconds),
        enrolment_paused=pause_reason(runtime.monitor),
        trial_id=runtime.plan.trial.id,
    )
