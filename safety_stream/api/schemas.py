"""Response bodies of the HTTP API (their JSON Schemas appear in the OpenAPI document)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from safety_stream.application.read_models import AeRead, DeadLetterRead
from safety_stream.ingest import IngestReport
from safety_stream.projections.toxicity import ModalityTable


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True)


class ProblemOut(_Body):
    path: str
    message: str
    code: str
    allowed: str | None


class ItemResult(_Body):
    location: str
    status: str  # stored | duplicate | rejected | conflict | forbidden
    event_id: str | None
    event_type: str | None
    position: int | None
    problems: list[ProblemOut]


class QueuedItem(_Body):
    location: str
    partition: int
    offset: int


class QueuedResponse(_Body):
    """Distributed mode: the records are on the submissions topic (every in-sync replica has
    them); workers validate and store them, and keep the invalid ones as dead letters."""

    queued: int
    topic: str
    results: list[QueuedItem]


class IngestResponse(_Body):
    stored: int
    duplicates: int
    rejected: int
    results: list[ItemResult]

    @classmethod
    def of(cls, report: IngestReport) -> IngestResponse:
        return cls(
            stored=report.count("stored"),
            duplicates=report.count("duplicate"),
            rejected=len(report.outcomes) - report.count("stored") - report.count("duplicate"),
            results=[
                ItemResult(
                    location=o.location,
                    status=o.status,
                    event_id=o.event_id,
                    event_type=o.event_type,
                    position=o.position,
                    problems=[ProblemOut(**p.as_dict()) for p in o.problems],
                )
                for o in report.outcomes
            ],
        )


class ErrorBody(_Body):
    detail: str


class ToxicityResponse(_Body):
    as_of: datetime
    position: int | None = Field(
        description="the log position answered from (readers); null for a site, whose "
        "answers never show how much other sites posted"
    )
    related_at_least: str
    plan_version: str
    modalities: list[ModalityTable]


class ExposureRow(_Body):
    patient_id: str
    site_id: str
    status: str
    enrolled_at: datetime | None
    first_exposure: dict[str, datetime]
    last_exposure: dict[str, datetime]


class ExposureResponse(_Body):
    as_of: datetime
    position: int | None = Field(
        description="the log position answered from (readers); null for a site, whose "
        "answers never show how much other sites posted"
    )
    enrolled: int
    exposed: dict[str, int]
    patients: list[ExposureRow]


class AeOut(_Body):
    ae_id: str
    ctcae_term: str
    soc: str
    grade: int = Field(description="Current grade")
    worst_grade: int = Field(description="Worst grade over the AE's course (5 if fatal)")
    onset_date: date
    status: str
    outcome: str | None
    end_date: date | None
    attribution: dict[str, str]
    seriousness: list[str]
    expectedness: str
    immune_related: bool

    @classmethod
    def of(cls, ae: AeRead) -> AeOut:
        return cls.model_validate(ae.fields())  # by field name (patient_id, site_id ... unused)


class PatientHistoryResponse(_Body):
    patient_id: str
    site_id: str
    adverse_events: list[AeOut]
    events: list[dict[str, Any]]  # the patient's AE events in log order, as stored


class RejectionOut(_Body):
    id: int
    received_at: datetime
    source: str
    site_id: str | None
    location: str
    raw: str = Field(
        description="UTF-8 with undecodable bytes escaped; listings show the first 4 KiB, "
        "GET /v1/rejections/{id} what is kept (the first 64 KiB)"
    )
    raw_size: int = Field(description="bytes received (raw keeps at most the first 64 KiB)")
    raw_sha256: str = Field(description="SHA-256 of all the bytes received")
    raw_truncated: bool = Field(description="raw shows only the beginning of what was received")
    problems: list[dict[str, Any]]
    received: int = Field(description="how often these bytes arrived from this site (retries)")

    @classmethod
    def of(cls, letter: DeadLetterRead, shown: int | None = None) -> RejectionOut:
        """``shown``: how many bytes of raw to include (None: all that is kept)."""
        raw = letter.raw if shown is None else letter.raw[:shown]
        return cls.model_validate(
            letter.fields()
            | {
                "raw": raw.decode("utf-8", errors="backslashreplace"),
                "raw_truncated": letter.raw_truncated or len(raw) < len(letter.raw),
            }
        )


class HealthResponse(_Body):
    status: str = Field(description="ok, degraded (an operator is needed) or unhealthy")
    problems: list[str] = Field(default_factory=list)
    position: int | None = Field(default=None, description="the log's head (readers only)")
    projection_position: int | None = Field(default=None, description="readers only")
    quarantined: int | None = Field(default=None, description="readers only")
