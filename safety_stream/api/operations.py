"""Routes for operators and their tools: ``/healthz`` and ``/metrics``.

``/healthz`` answers anyone (load balancers, compose health checks) with the status and what
is wrong, never the log position: that moves whenever any site posts. A reader credential
(safety officer, DSMB, admin) also gets the positions. ``/metrics`` carries every site's counts
and the rules' states, so it takes the metrics token (Prometheus's ``credentials_file``) or a
reader credential; a site's token is refused as on ``/v1``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from safety_stream.access import READER_ROLES, metrics_refusal
from safety_stream.api.dependencies import HealthDep, ReadsDep, RuntimeDep
from safety_stream.api.schemas import HealthResponse
from safety_stream.api.security import MaybeCaller, bearer

router = APIRouter()


@router.get(
    "/healthz",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "cannot do its job now"}},
    # a token is optional here (FastAPI adds the bearer scheme): anyone gets the status,
    # readers the positions too
    openapi_extra={"security": [{}]},
)
def health(caller: MaybeCaller, reads: ReadsDep, health: HealthDep) -> JSONResponse:
    """ok, degraded (working, but something needs an operator) or unhealthy (503)."""
    failures = health.failures()
    pipeline = reads.operational()
    if pipeline.save_failure is not None:
        failures.append(f"projection: {pipeline.save_failure} (stored events wait to be monitored)")
    quarantined = pipeline.quarantined
    problems = list(failures)
    if quarantined:
        problems.append(f"{quarantined} stored events could not be monitored (quarantined)")
    status = "unhealthy" if failures else "degraded" if problems else "ok"
    body = HealthResponse(status=status, problems=problems)
    if caller is not None and caller.role in READER_ROLES:
        body = body.model_copy(
            update={
                "position": reads.log_head(),
                "projection_position": pipeline.projected,
                "quarantined": quarantined,
            }
        )
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), 503 if failures else 200)


def metrics_reader(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    refused = metrics_refusal(runtime, credentials.credentials if credentials else None)
    if refused is not None:
        status, message = refused
        raise HTTPException(status, message, {"WWW-Authenticate": "Bearer"})


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    dependencies=[Depends(metrics_reader)],
    responses={401: {"description": "no metrics token"}, 403: {"description": "a site"}},
)
def metrics(runtime: RuntimeDep) -> PlainTextResponse:
    return PlainTextResponse(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)
