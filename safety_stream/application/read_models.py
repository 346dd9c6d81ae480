"""One read model per concept that the API, the board and the report render.

An AE and a dead letter are each built once from what the projection or the dead-letter store
holds (:meth:`AeRead.of`, :meth:`DeadLetterRead.of`); every renderer is derived from the read
model by field name (the API's ``AeOut.of`` and ``RejectionOut.of``, the report's
``SaeRow.of``, the board's dead-letter table), never mapped again field by field. A new field
goes here and into the renderers that show it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from safety_stream.events import ATTRIBUTION_RANK, Attribution
from safety_stream.projections.state import AeState
from safety_stream.store.base import Rejection


def _fields(model: Any) -> dict[str, Any]:
    """A read model's fields by name (shallow: the values themselves)."""
    return {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}


def attributed_at_least(attribution: dict[str, str], threshold: Attribution) -> list[str]:
    """The modalities attributed at least ``threshold`` (the plan's "related"), in order."""
    rank = ATTRIBUTION_RANK[threshold]
    return [m for m, a in attribution.items() if ATTRIBUTION_RANK[Attribution(a)] >= rank]


@dataclass(frozen=True, slots=True)
class AeRead:
    """One AE's current version, as every reader sees it."""

    ae_id: str
    patient_id: str
    site_id: str
    ctcae_term: str
    soc: str
    grade: int  # the current grade
    worst_grade: int  # over the AE's course (5 if fatal): what the rules count
    onset_date: date
    status: str
    outcome: str | None
    end_date: date | None
    attribution: dict[str, str]  # modality -> attribution, in modality order
    seriousness: list[str]
    expectedness: str
    immune_related: bool
    reported_at: datetime

    @classmethod
    def of(cls, ae: AeState) -> AeRead:
        return cls(
            ae_id=str(ae.ae_id),
            patient_id=ae.patient_id,
            site_id=ae.site_id,
            ctcae_term=ae.ctcae_term,
            soc=ae.soc,
            grade=ae.grade,
            worst_grade=ae.worst,
            onset_date=ae.onset_date,
            status=ae.status,
            outcome=ae.outcome,
            end_date=ae.end_date,
            attribution=dict(ae.attribution),
            seriousness=list(ae.seriousness),
            expectedness=ae.expectedness,
            immune_related=ae.immune_related,
            reported_at=ae.reported_at,
        )

    def fields(self) -> dict[str, Any]:
        return _fields(self)

    def related_to(self, threshold: Attribution) -> list[str]:
        return attributed_at_least(self.attribution, threshold)


@dataclass(frozen=True, slots=True)
class DeadLetterRead:
    """One dead letter: what was received (the bytes kept), from where, and what was wrong."""

    id: int
    received_at: datetime
    source: str
    site_id: str | None
    location: str
    raw: bytes  # the bytes kept: at most the first 64 KiB of what was received
    raw_size: int  # bytes received
    raw_sha256: str  # of all the bytes received
    raw_truncated: bool  # raw keeps only the beginning of what was received
    problems: list[dict[str, Any]]
    received: int  # how often these bytes arrived from this site (retries)

    @classmethod
    def of(cls, rejection: Rejection) -> DeadLetterRead:
        return cls(
            id=rejection.id,
            received_at=rejection.received_at,
            source=rejection.source,
            site_id=rejection.site_id,
            location=rejection.location,
            raw=rejection.raw,
            raw_size=rejection.size,
            raw_sha256=rejection.sha256,
            raw_truncated=rejection.truncated,
            problems=rejection.problems,
            received=rejection.received,
        )

    def fields(self) -> dict[str, Any]:
        return _fields(self)

    def problem_texts(self) -> list[str]:
        """Each problem as one line: where, what, and what is allowed."""
        return [_problem_text(p) for p in self.problems]


def _problem_text(problem: dict[str, object]) -> str:
    text = f"{problem.get('path') or '(record)'}: {problem.get('message', '')}"
    allowed = problem.get("allowed")
    return f"{text} (allowed: {allowed})" if allowed else text
