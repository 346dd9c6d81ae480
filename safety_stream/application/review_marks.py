"""Per-reader "new or changed since my last review" marks on AEs and alerts.

A reader marks items reviewed at the log position the page they looked at was read at; an item
whose last change in the log is after that shows as changed, one they never marked as new
(:func:`safety_stream.review.marks.review_status`). Readers only: a site has no marks and may
not set any. The marks live in the :class:`~safety_stream.review.marks.ReviewMarks` port.

For listings (the AE listing, the alerts panel):

    marks = runtime.marks.review_marks(principal)          # (kind, item id) -> position
    status = status_of(marks, "ae", ae_id, first, last)    # "new", "changed" or None

where ``first`` and ``last`` are the item's first and last log positions (for an AE, its
``AeDetail.history[0].position`` and ``history[-1].position``; for an alert, its
``caused_by`` and its latest triage step).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from safety_stream.auth import Principal
from safety_stream.review.marks import (
    MarkKind,
    ReviewMark,
    ReviewMarks,
    ReviewStatus,
    review_status,
)
from safety_stream.store.base import EventStore

SITES_HAVE_NO_MARKS = "review marks are for safety officers and the DSMB"


class MarksForbidden(PermissionError):
    """A site credential tried to set review marks."""


def status_of(
    marks: Mapping[tuple[str, str], int], kind: MarkKind, item_id: str, first: int, last: int
) -> ReviewStatus | None:
    """``new``, ``changed`` or None (reviewed) for one item, from a reader's marks."""
    return review_status(marks.get((kind, item_id)), first, last)


class ReviewMarksService:
    """Readers' marks over the marks port; positions are checked against the log's head."""

    def __init__(self, marks: ReviewMarks, store: EventStore) -> None:
        self._marks = marks
        self._store = store

    def review_marks(
        self, principal: Principal, kind: MarkKind | None = None
    ) -> Mapping[tuple[str, str], int]:
        """``(kind, item id) -> position`` of the reader's marks (empty for a site)."""
        if principal.sees_site is not None:
            return {}
        return self._marks.marks(principal.name, kind)

    def rows(
        self,
        principal: Principal,
        kind: MarkKind | None = None,
        after: tuple[str, str] | None = None,
        limit: int | None = None,
    ) -> list[ReviewMark]:
        """The reader's marks with when each was set (none for a site), by kind and item id
        (``review.marks.mark_order``), after the cursor ``after``, at most ``limit``."""
        if principal.sees_site is not None:
            return []
        return self._marks.mark_rows(principal.name, kind, after, limit)

    def mark(
        self, principal: Principal, kind: MarkKind, item_ids: Iterable[str], position: int
    ) -> int:
        """Mark items reviewed at ``position`` (at most the log's head); returns how many
        marks moved. MarksForbidden for a site; ValueError for a bad kind, id or position."""
        if principal.sees_site is not None:
            raise MarksForbidden(SITES_HAVE_NO_MARKS)
        head = self._store.head()
        if position > head:
            raise ValueError(f"position {position} is beyond the log's head ({head})")
        return self._marks.mark(principal.name, kind, item_ids, position, self._store.now())
