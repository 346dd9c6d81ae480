"""Readers' review marks kept in this process (the memory runtime), one implementation of
:class:`~safety_stream.review.marks.ReviewMarks`: a dictionary under a lock."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime

from safety_stream.review.marks import MarkKind, ReviewMark, check_mark, mark_order


class InMemoryReviewMarks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._marks: dict[tuple[str, str, str], ReviewMark] = {}

    def mark(
        self, reader: str, kind: MarkKind, item_ids: Iterable[str], position: int, at: datetime
    ) -> int:
        ids = check_mark(reader, kind, item_ids, position)
        moved = 0
        with self._lock:
            for item_id in ids:
                key = (reader, kind, item_id)
                known = self._marks.get(key)
                if known is None or known.position < position:
                    self._marks[key] = ReviewMark(reader, kind, item_id, position, at)
                    moved += 1
        return moved

    def marks(self, reader: str, kind: MarkKind | None = None) -> Mapping[tuple[str, str], int]:
        with self._lock:
            return {
                (m.kind, m.item_id): m.position
                for (who, k, _), m in self._marks.items()
                if who == reader and kind in (None, k)
            }

    def mark_rows(
        self,
        reader: str,
        kind: MarkKind | None = None,
        after: tuple[str, str] | None = None,
        limit: int | None = None,
    ) -> list[ReviewMark]:
        with self._lock:
            rows = [
                m
                for (who, k, _), m in self._marks.items()
                if who == reader and kind in (None, k) and (after is None or mark_order(m) > after)
            ]
        rows.sort(key=mark_order)
        return rows if limit is None else rows[: max(limit, 0)]
