"""A reader's "reviewed up to here" marks on AEs and alerts (readers only; a site gets 403).

GET  /v1/review-marks   the caller's marks (optionally of one kind), by kind and item id, in
                        pages: ``after`` is the ``next_after`` of the page before
POST /v1/review-marks   mark AEs or alerts reviewed at the log position the caller read them at
                        (required: a default of the log's head would also mark what arrived
                        after the caller's read, which then never shows as new)

The board shows them as "new" / "changed" next to each alert and listed AE; an item is changed
when its last log position is after the caller's mark (``safety_stream.review.marks``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from safety_stream.api.dependencies import RuntimeDep
from safety_stream.api.monitoring import READERS_ONLY, reader_only
from safety_stream.api.paging import Limit
from safety_stream.api.schemas import ErrorBody
from safety_stream.api.security import Caller
from safety_stream.review.marks import ITEM_ID_LIMIT, MarkKind

MARKS_PER_POST = 1000


class ReviewMarkOut(BaseModel):
    kind: MarkKind
    item_id: str = Field(description="The AE id or the alert id (derived_id)")
    position: int = Field(description="The log position the item was reviewed at")
    marked_at: datetime


class ReviewMarksOut(BaseModel):
    reader: str
    marks: list[ReviewMarkOut]
    next_after: str | None = Field(description="pass as `after` for the next page; null: last")


class ReviewMarksIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: MarkKind
    item_ids: list[Annotated[str, Field(min_length=1, max_length=ITEM_ID_LIMIT)]] = Field(
        min_length=1, max_length=MARKS_PER_POST
    )
    position: int = Field(
        ge=0,
        strict=True,
        description="The log position the items were read at (a listing's `position`); "
        "required, at most the log's head",
    )


class ReviewMarked(BaseModel):
    marked: int = Field(description="How many marks moved (a mark never moves back)")
    position: int


router = APIRouter()


@router.get("/v1/review-marks", response_model=ReviewMarksOut, responses=READERS_ONLY)
def review_marks(
    caller: Caller,
    runtime: RuntimeDep,
    kind: Annotated[MarkKind | None, Query()] = None,
    after: Annotated[str, Query(max_length=100, description="the last kind:item_id received")] = "",
    limit: Limit = 1000,
) -> ReviewMarksOut:
    """The caller's marks: each AE or alert they marked reviewed, and at which log position,
    ordered by kind and item id; page on with ``after`` set to ``next_after``."""
    reader_only(caller)
    cursor = _cursor(after)
    rows = runtime.marks.rows(caller, kind, cursor, limit + 1)  # one page (and one to tell)
    fields = ("kind", "item_id", "position", "marked_at")
    page = rows[:limit]
    return ReviewMarksOut(
        reader=caller.name,
        marks=[ReviewMarkOut(**{f: getattr(r, f) for f in fields}) for r in page],
        next_after=f"{page[-1].kind}:{page[-1].item_id}" if len(rows) > limit else None,
    )


def _cursor(after: str) -> tuple[str, str] | None:
    """``kind:item_id`` as the (kind, item id) the store pages after (an item id may hold
    ``:``, a kind never does); empty: from the first."""
    if not after:
        return None
    kind, _, item_id = after.partition(":")
    return (kind, item_id)


@router.post(
    "/v1/review-marks",
    response_model=ReviewMarked,
    responses={
        **READERS_ONLY,
        400: {"model": ErrorBody, "description": "a position beyond the log's head"},
    },
)
async def mark_reviewed(body: ReviewMarksIn, caller: Caller, runtime: RuntimeDep) -> ReviewMarked:
    """Mark AEs or alerts reviewed by the caller at ``position``, the log position of the
    page they read (a mark never moves back)."""
    reader_only(caller)
    position = body.position
    try:
        moved = await run_in_threadpool(
            runtime.marks.mark, caller, body.kind, body.item_ids, position
        )
    except ValueError as error:
        raise HTTPException(400, str(error)) from None
    return ReviewMarked(marked=moved, position=position)
