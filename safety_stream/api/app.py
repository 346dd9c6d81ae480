"""The HTTP API of the embedded runtime (FastAPI; OpenAPI docs at /docs), versioned under /v1.

Each group of routes is an ``APIRouter`` module whose routes take the caller and the
application's services as typed dependencies (``api.dependencies``): submissions (POST
/v1/events), the site-scoped reads of the trial's state (``reads``), rules and derived events
(``monitoring``), alerts, decisions, and /healthz and /metrics (``operations``); the board
has its own routes. This module assembles them over one runtime.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from safety_stream import __version__
from safety_stream.api import alerts, decisions, monitoring, operations, reads, submissions
from safety_stream.api.adverse_events import router as adverse_events_router
from safety_stream.api.as_of import PastStates
from safety_stream.api.body_timeout import BodyDeadline, BodyTimeout
from safety_stream.api.exports import router as exports_router
from safety_stream.api.review_marks import router as review_marks_router
from safety_stream.api.tables import router as tables_router
from safety_stream.application.submissions import STORAGE_FULL
from safety_stream.board import add_board_routes
from safety_stream.runtime import Runtime
from safety_stream.store.engine import is_storage_full


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

    app.state.past_states = PastStates(runtime.store)
    app.include_router(submissions.router)
    app.include_router(reads.router)
    app.include_router(adverse_events_router)
    app.include_router(tables_router)
    app.include_router(exports_router)
    app.include_router(monitoring.router)
    app.include_router(alerts.router)
    app.include_router(review_marks_router)
    app.include_router(decisions.router)
    add_board_routes(app, runtime)
    app.include_router(operations.router)

    return app
