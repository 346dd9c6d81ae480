"""The envelope every event shares, and the small closed vocabularies events use.

Every event is a frozen pydantic model with ``extra="forbid"``: an unknown field is an error,
never silently dropped. Each carries a stable wire name (``event_type``) and a
``schema_version``; neither ever names a Python class.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""Trial, site and patient ids: 1-64 characters, letters, digits, '.', '_' or '-'."""

LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
"""Text on one line: no control characters (NUL, escape, line breaks, ...)."""
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
"""Free text: no control characters other than tab, line feed and carriage return."""

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
ShortText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, strip_whitespace=True, pattern=LINE_PATTERN),
]
LongText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2000, strip_whitespace=True, pattern=TEXT_PATTERN),
]


def _utc_text(value: datetime) -> str:
    # the naive UTC time's text and a "Z": the same text as replacing "+00:00" in the aware
    # time's, a third cheaper (every event's two times are written on every append)
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def _expressible_in_utc(value: datetime) -> datetime:
    """Every time is kept in UTC: one whose UTC equivalent falls outside years 1-9999 (e.g.
    9999-12-31T23:00:00-14:00) cannot be stored."""
    if 1 < value.year < 9999:  # UTC offsets stay within a day: only the edge years overflow
        return value
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "this time falls outside the calendar (years 1-9999) when converted to UTC"
        ) from None
    return value


_Member = TypeVar("_Member", bound=StrEnum)


def _sorted_values(members: frozenset[StrEnum]) -> list[str]:
    return sorted(m.value for m in members)


SortedSet = Annotated[frozenset[_Member], PlainSerializer(_sorted_values, return_type=list[str])]
"""A set of enum members that serialises as a sorted list, so the wire form is canonical."""

UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(_expressible_in_utc),
    PlainSerializer(_utc_text, return_type=str, when_used="json"),
]
"""A timezone-aware time (naive times are rejected). Any UTC offset is accepted on input and
kept in memory (so ``.date()`` is the site's local date); the wire form is always UTC ('Z')."""


class Modality(StrEnum):
    """The treatment modalities of the trial; attribution is given per modality."""

    RADIOTHERAPY = "radiotherapy"
    CHEMOTHERAPY = "chemotherapy"
    IMMUNOTHERAPY = "immunotherapy"


class Attribution(StrEnum):
    """The 5-point causality scale, weakest first (order matters: see ``ATTRIBUTION_RANK``)."""

    UNRELATED = "unrelated"
    UNLIKELY = "unlikely"
    POSSIBLE = "possible"
    PROBABLE = "probable"
    DEFINITE = "definite"


# keyed by text: a member (a StrEnum) and its value, as the projection keeps it, find one entry
ATTRIBUTION_RANK: dict[str, int] = {a.value: i for i, a in enumerate(Attribution)}


class EventBase(BaseModel):
    """Fields common to every event: identity, stream, provenance and time."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    event_type: str = Field(description="Stable wire name of the event type, e.g. ae.reported")
    schema_version: int = Field(description="Version of this event type's schema")
    event_id: UUID = Field(description="Idempotency key: resending the same event_id is a no-op")
    trial_id: Identifier
    site_id: Identifier
    patient_id: Identifier = Field(description="Pseudonymous study id; never a name or MRN")
    reporter: ShortText = Field(description="Who recorded the event (user id or role)")
    occurred_at: UtcDatetime = Field(description="When it happened (clinical time)")
    recorded_at: UtcDatetime = Field(description="When the site recorded it")
