"""Readers' "reviewed up to here" marks: the port, its records and the pure rule.

A reader marks an AE or an alert reviewed at a log position (the position the page they
looked at was read at). An item whose last change in the log is after the reader's mark is
shown as changed; one the reader never marked, or marked before it existed, as new. Marks are
a reader's own bookkeeping, not trial data: they are kept in a small table (one row per
reader and item, only ever moved forward), not as events in the log, which a mark per click
would flood.

Implementations: ``safety_stream.store.marks_memory`` and ``safety_stream.store.marks_sql``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

MarkKind = Literal["ae", "alert"]
MARK_KINDS: tuple[MarkKind, ...] = ("ae", "alert")
ReviewStatus = Literal["new", "changed"]
ITEM_ID_LIMIT = 64  # an AE id or an alert id (UUIDs as text)
READER_LIMIT = 64  # a credential's name


@dataclass(frozen=True, slots=True)
class ReviewMark:
    """``reader`` reviewed item ``item_id`` of ``kind`` as it stood at log ``position``."""

    reader: str
    kind: MarkKind
    item_id: str
    position: int
    marked_at: datetime


def mark_order(mark: ReviewMark) -> tuple[str, str]:
    """The order marks are listed and paged in: by kind, then item id, comparing code points
    (Python's ``str`` order; SQL compares bytes of UTF-8 text in the same order: SQLite's
    BINARY, PostgreSQL's "C" collation). The paging cursor is this key of the last mark."""
    return (mark.kind, mark.item_id)


def review_status(mark: int | None, first: int, last: int) -> ReviewStatus | None:
    """What a reader sees next to an item whose first and last log positions are ``first``
    and ``last``, given their mark's position (None: never marked): ``new`` when they have not
    seen it at all, ``changed`` when it changed after they marked it, else None (reviewed)."""
    if mark is None or mark < first:
        return "new"
    return "changed" if last > mark else None


def check_mark(reader: str, kind: str, item_ids: Iterable[str], position: int) -> list[str]:
    """The item ids to mark, checked (ValueError says which value and what is allowed)."""
    if not reader or len(reader) > READER_LIMIT:
        raise ValueError(f"reader: a credential name of 1 to {READER_LIMIT} characters")
    if kind not in MARK_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(MARK_KINDS)}")
    if position < 0:
        raise ValueError(f"position {position} is not a log position (0 or more)")
    ids = list(dict.fromkeys(item_ids))
    bad = [i for i in ids if not i or len(i) > ITEM_ID_LIMIT]
    if bad:
        raise ValueError(f"item id {bad[0][:80]!r}: 1 to {ITEM_ID_LIMIT} characters")
    return ids


class ReviewMarks(Protocol):
    """Where readers' marks are kept."""

    def mark(
        self, reader: str, kind: MarkKind, item_ids: Iterable[str], position: int, at: datetime
    ) -> int:
        """Mark the items reviewed at ``position``; a mark already further on stays where it
        is (a stale page never moves a mark back). Returns how many marks moved."""
        ...

    def marks(self, reader: str, kind: MarkKind | None = None) -> Mapping[tuple[str, str], int]:
        """``(kind, item_id) -> position`` of every mark of ``reader`` (of one kind)."""
        ...

    def mark_rows(
        self,
        reader: str,
        kind: MarkKind | None = None,
        after: tuple[str, str] | None = None,
        limit: int | None = None,
    ) -> list[ReviewMark]:
        """The marks of ``reader`` (of one kind) with when each was set, ordered by
        :func:`mark_order` (kind, then item id, by code point: never a database collation),
        only those after the cursor ``after`` (the last ``(kind, item_id)`` received), at most
        ``limit`` of them (None: all)."""
        ...
