"""The HTTP API of the embedded runtime (FastAPI; OpenAPI docs at /docs), versioned under /v1.

Submissions are in ``submissions`` (POST /v1/events), rules and derived events in
``monitoring``, alerts, decisions, the board, /healthz and /metrics in their own modules; this
one assembles them and serves the site-scoped reads of the trial's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from safety_stream import __version__
from safety_stream.api.alerts import add_alert_routes
from safety_stream.api.as_of import AsOf, PastStates, parse_as_of
from safety_stream.api.body_timeout import BodyDeadline, BodyTimeout
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
    RejectionOut,
    ToxicityResponse,
)
from safety_stream.api.security import Caller
from safety_stream.api.submissions import STORAGE_FULL, add_submission_routes
from safety_stream.auth import Principal
from safety_stream.board import add_board_routes
from safety_stream.events import Modality
from safety_stream.projections.state import TrialState
from safety_stream.projections.toxicity import toxicity_tables
from safety_stream.runtime import Runtime
from safety_stream.store.engine import is_storage_full

LISTED_RAW_BYTES = 4096
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or unknown bearer token"},
    403: {"model": IngestResponse | ErrorBody, "description": "not allowed for this credential"},
}


def create_app(runtime: Runtime) -> FastAPI:
    """The API over one runtime (the composition root builds the runtime)."""
    app = FastAPI(
        title="safety-stream",
        version=__version__,
        description="Adverse-event ingest and live safety monitoring for clinical trials.",
    )

    app.state.runtime = runtime
    app.add_middleware(BodyDeadline, seconds=runtime.settings.body_timeout_seconds)

    @app.exception_handler(BodyTimeout)
    async def body_timeout(request: Request, error: BodyTimeout) -> Response:
        return JSONResponse({"detail": str(error)}, 408, headers={"Connection": "close"})

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

    past = PastStates(runtime.store)
    add_submission_routes(app, runtime, ERRORS)

    @contextmanager
    def state_for(as_of: str | None, caller: Principal) -> Iterator[tuple[TrialState, datetime]]:
        """The live state under the projector's lock, or a past one (folded without it)."""
        if as_of is not None:
            moment = parse_as_of(as_of)
            yield past.state(caller.name, moment), moment
            return
        with runtime.projector.lock:
            runtime.projector.catch_up()
            yield runtime.projector.state, datetime.now(UTC)

    @app.get("/v1/toxicity", response_model=ToxicityResponse, responses=ERRORS)
    def toxicity(caller: Caller, as_of: AsOf = None) -> ToxicityResponse:
        """Per-modality toxicity tables: patients by worst related grade, by term, SOC, site."""
        with state_for(as_of, caller) as (state, moment):
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
        with state_for(as_of, caller) as (state, moment):
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
        """The dead-letter store, newest first (a site sees only its own submissions); each
        shows the first 4 KiB of what was received."""
        return [
            RejectionOut.of(r, shown=LISTED_RAW_BYTES)
            for r in runtime.store.rejections(site_id=caller.sees_site, limit=limit)
        ]

    @app.get(
        "/v1/rejections/{rejection_id}",
        response_model=RejectionOut,
        responses={**ERRORS, 404: {"model": ErrorBody, "description": "no such dead letter"}},
    )
    def rejection(
        caller: Caller, rejection_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
    ) -> RejectionOut:
        """One dead letter with all of its raw bytes that are kept (the first 64 KiB)."""
        found = runtime.store.rejections(site_id=caller.sees_site, limit=1, after=rejection_id - 1)
        if not found or found[0].id != rejection_id:
            raise HTTPException(404, "no such dead letter")  # nor another site's
        return RejectionOut.of(found[0])

    add_monitoring_routes(app, runtime)
    add_alert_routes(app, runtime)
    add_decision_routes(app, runtime)
    add_board_routes(app, runtime)

    add_operations_routes(app, runtime)

    return app
