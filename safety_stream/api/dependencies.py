"""The API's typed dependencies: the application services a route works with, and the
responses every authenticated route documents.

Routes take ``reads: ReadsDep``, ``submitter: SubmitterDep`` ... instead of a runtime captured
when the route was registered; ``create_app`` puts the runtime on ``app.state``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from safety_stream.alerts.outbox import Outbox
from safety_stream.api.as_of import PastStates
from safety_stream.api.schemas import ErrorBody, IngestResponse
from safety_stream.application.decisions import DecisionLog
from safety_stream.application.reads import Reads
from safety_stream.application.submissions import Submitter
from safety_stream.auth import Credentials
from safety_stream.health import Health
from safety_stream.plan import MonitoringPlan
from safety_stream.projections.documents import DerivedSource
from safety_stream.runtime import Runtime
from safety_stream.settings import Settings

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or unknown bearer token"},
    403: {"model": IngestResponse | ErrorBody, "description": "not allowed for this credential"},
}


def runtime(request: Request) -> Runtime:
    found: Runtime = request.app.state.runtime
    return found


def _reads(request: Request) -> Reads:
    return runtime(request).reads


def _submitter(request: Request) -> Submitter:
    return runtime(request).submitter


def _settings(request: Request) -> Settings:
    return runtime(request).settings


def _plan(request: Request) -> MonitoringPlan:
    return runtime(request).plan


def _outbox(request: Request) -> Outbox:
    return runtime(request).outbox


def _derived(request: Request) -> DerivedSource:
    return runtime(request).derived


def _credentials(request: Request) -> Credentials:
    return runtime(request).credentials


def _health(request: Request) -> Health:
    return runtime(request).health


def _past(request: Request) -> PastStates:
    found: PastStates = request.app.state.past_states
    return found


def _decision_log(request: Request) -> DecisionLog:
    found = runtime(request)
    return DecisionLog(found.store, found.ctcae, found.projector)


RuntimeDep = Annotated[Runtime, Depends(runtime)]
"""The composition root itself: only for what takes it whole (the /metrics token check and
registry)."""
ReadsDep = Annotated[Reads, Depends(_reads)]
SubmitterDep = Annotated[Submitter, Depends(_submitter)]
SettingsDep = Annotated[Settings, Depends(_settings)]
PlanDep = Annotated[MonitoringPlan, Depends(_plan)]
OutboxDep = Annotated[Outbox, Depends(_outbox)]
DerivedDep = Annotated[DerivedSource, Depends(_derived)]
CredentialsDep = Annotated[Credentials, Depends(_credentials)]
HealthDep = Annotated[Health, Depends(_health)]
PastStatesDep = Annotated[PastStates, Depends(_past)]
DecisionLogDep = Annotated[DecisionLog, Depends(_decision_log)]
