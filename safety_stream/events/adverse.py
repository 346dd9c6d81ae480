"""Adverse-event events: a report, and the amendments that cite it.

An AE is identified by the ``event_id`` of its ``ae.reported`` event; updates, resolutions and
retractions cite it as ``ae_id``. Nothing is overwritten: the current state of an AE is the
report folded with its amendments, in log order.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from safety_stream.events.base import (
    LINE_PATTERN,
    Attribution,
    EventBase,
    LongText,
    Modality,
    ShortText,
    SortedSet,
)


class Seriousness(StrEnum):
    """ICH E2A seriousness criteria (an AE with none of them is non-serious)."""

    DEATH = "death"
    LIFE_THREATENING = "life_threatening"
    HOSPITALISATION = "hospitalisation"
    DISABILITY = "disability"
    CONGENITAL_ANOMALY = "congenital_anomaly"
    MEDICALLY_IMPORTANT = "medically_important"


class Expectedness(StrEnum):
    """Against the reference safety information (investigator's brochure / label)."""

    EXPECTED = "expected"
    UNEXPECTED = "unexpected"


class ActionTaken(StrEnum):
    """Action taken with study treatment (CDISC AEACN vocabulary, lower-cased)."""

    DOSE_NOT_CHANGED = "dose_not_changed"
    DOSE_REDUCED = "dose_reduced"
    DRUG_INTERRUPTED = "drug_interrupted"
    DRUG_WITHDRAWN = "drug_withdrawn"
    NOT_APPLICABLE = "not_applicable"
    UNKNOWN = "unknown"


class Outcome(StrEnum):
    """Outcome at resolution (CDISC AEOUT vocabulary for a closed AE)."""

    RECOVERED = "recovered"
    RECOVERED_WITH_SEQUELAE = "recovered_with_sequelae"
    FATAL = "fatal"


class AttributionByModality(BaseModel):
    """Causality to each modality on the 5-point scale; every modality must be assessed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    radiotherapy: Attribution
    chemotherapy: Attribution
    immunotherapy: Attribution

    def to(self, modality: Modality) -> Attribution:
        """The attribution to one modality."""
        return Attribution(getattr(self, modality.value))


class AdverseEventReported(EventBase):
    """A new AE, graded with CTCAE; ``occurred_at`` is the onset time."""

    event_type: Literal["ae.reported"]
    schema_version: Literal[1]
    ctcae_version: Literal["5.0"]
    ctcae_term: str = Field(min_length=1, max_length=200, pattern=LINE_PATTERN)
    meddra_code: int = Field(ge=10000000, le=99999999, description="MedDRA LLT code (8 digits)")
    grade: int = Field(ge=1, le=5, description="CTCAE grade 1-5")
    onset_date: date
    seriousness: SortedSet[Seriousness] = Field(
        description="ICH E2A criteria met; empty when the AE is not serious"
    )
    expectedness: Expectedness
    immune_related: bool
    attribution: AttributionByModality
    action_taken: ActionTaken
    verbatim_term: ShortText | None = Field(
        default=None, description="The investigator's own words; required for 'Other, specify'"
    )


class GradeChange(StrEnum):
    """Why an update changes an AE's grade: its course (the AE got worse or better: the worst
    grade so far stays), or a correction (the last recorded grade was wrong)."""

    WORSENED = "worsened"
    IMPROVED = "improved"
    CORRECTED = "corrected"


class AdverseEventUpdated(EventBase):
    """A change of grade, attribution, seriousness or expectedness of a reported AE.

    With a new ``grade``, ``grade_change`` says whether the AE worsened or improved (its worst
    grade is kept apart from its current grade) or the last grade was corrected. An update
    without ``grade_change`` (as sent before it existed) is a correction.
    """

    event_type: Literal["ae.updated"]
    schema_version: Literal[1]
    ae_id: UUID = Field(description="event_id of the ae.reported this amends")
    grade: int | None = Field(default=None, ge=1, le=5)
    grade_change: GradeChange | None = Field(
        default=None, description="With grade: worsened, improved or corrected"
    )
    attribution: AttributionByModality | None = None
    seriousness: SortedSet[Seriousness] | None = None
    expectedness: Expectedness | None = None
    immune_related: bool | None = None
    reason: LongText = Field(description="Why the AE was amended")

    @model_validator(mode="after")
    def _change_needs_a_grade(self) -> AdverseEventUpdated:
        if self.grade_change is not None and self.grade is None:
            raise ValueError("grade_change needs the new grade")
        return self

    @model_serializer(mode="wrap")
    def _canonical(self, handler: SerializerFunctionWrapHandler) -> Any:
        # updates sent before grade_change existed keep their canonical bytes (and hashes):
        # an absent change is left out rather than written as null
        data = handler(self)
        if isinstance(data, dict) and data.get("grade_change") is None:
            data.pop("grade_change", None)
        return data


class AdverseEventResolved(EventBase):
    """The AE ended; ``end_date`` is when it resolved (or the date of death if fatal)."""

    event_type: Literal["ae.resolved"]
    schema_version: Literal[1]
    ae_id: UUID
    outcome: Outcome
    end_date: date


class AdverseEventRetracted(EventBase):
    """The AE was entered in error; it no longer counts anywhere, but stays in the log."""

    event_type: Literal["ae.retracted"]
    schema_version: Literal[1]
    ae_id: UUID
    reason: LongText


class SafetyReportSubmitted(EventBase):
    """An expedited safety report on this AE (e.g. an IND safety report, 21 CFR 312.32) was
    submitted; ``occurred_at`` is when. It closes the AE's reporting clock."""

    event_type: Literal["ae.safety_report_submitted"]
    schema_version: Literal[1]
    ae_id: UUID
    report_reference: ShortText = Field(description="The sponsor's number for the report")


AE_AMENDMENTS = (
    AdverseEventUpdated,
    AdverseEventResolved,
    AdverseEventRetracted,
    SafetyReportSubmitted,
)
