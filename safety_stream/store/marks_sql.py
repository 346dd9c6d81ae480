"""Readers' review marks on SQL (SQLite or PostgreSQL), one implementation of
:class:`~safety_stream.review.marks.ReviewMarks`.

``review_marks`` holds one row per (reader, kind, item). Marking is one upsert per item that
moves the row only forward (``ON CONFLICT ... DO UPDATE ... WHERE position < new``), so two
tabs marking at once, or a stale page, never move a mark back. Marks are listed in pages in
code-point order of (kind, item id) whatever the database's collation (``mark_rows``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from safety_stream.review.marks import MarkKind, ReviewMark, check_mark
from safety_stream.store.engine import write_transaction
from safety_stream.store.tables import ReviewMarkRow


class SqlReviewMarks:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if postgres else sqlite.insert
        self._bytewise = "C" if postgres else "BINARY"  # byte order of UTF-8 = code points

    def mark(
        self, reader: str, kind: MarkKind, item_ids: Iterable[str], position: int, at: datetime
    ) -> int:
        ids = check_mark(reader, kind, item_ids, position)
        if not ids:
            return 0
        rows = [
            {"reader": reader, "kind": kind, "item_id": i, "position": position, "marked_at": at}
            for i in ids
        ]
        statement = self._insert(ReviewMarkRow)
        upsert = statement.on_conflict_do_update(
            index_elements=["reader", "kind", "item_id"],
            set_={
                "position": statement.excluded.position,
                "marked_at": statement.excluded.marked_at,
            },
            where=ReviewMarkRow.position < statement.excluded.position,
        )
        with write_transaction(self.engine) as connection:
            before = self._positions(connection, reader, kind, ids)
            connection.execute(upsert, rows)
        return sum(1 for i in ids if before.get(i, -1) < position)

    @staticmethod
    def _positions(
        connection: Connection, reader: str, kind: str, ids: list[str]
    ) -> dict[str, int]:
        query = select(ReviewMarkRow.item_id, ReviewMarkRow.position).where(
            ReviewMarkRow.reader == reader,
            ReviewMarkRow.kind == kind,
            ReviewMarkRow.item_id.in_(ids),
        )
        return {r.item_id: r.position for r in connection.execute(query)}

    def marks(self, reader: str, kind: MarkKind | None = None) -> Mapping[tuple[str, str], int]:
        query = select(ReviewMarkRow.kind, ReviewMarkRow.item_id, ReviewMarkRow.position).where(
            ReviewMarkRow.reader == reader
        )
        if kind is not None:
            query = query.where(ReviewMarkRow.kind == kind)
        with self.engine.connect() as connection:
            return {(r.kind, r.item_id): r.position for r in connection.execute(query)}

    def mark_rows(
        self,
        reader: str,
        kind: MarkKind | None = None,
        after: tuple[str, str] | None = None,
        limit: int | None = None,
    ) -> list[ReviewMark]:
        # Compare bytes, as Python compares code points (``mark_order``), whatever the
        # database's default collation (a linguistic one sorts "a" before "B" and would make
        # the cursor skip marks): the order and the cursor condition use the same collation.
        by_kind = ReviewMarkRow.kind.collate(self._bytewise)
        by_item = ReviewMarkRow.item_id.collate(self._bytewise)
        query = select(ReviewMarkRow).where(ReviewMarkRow.reader == reader)
        if kind is not None:
            query = query.where(ReviewMarkRow.kind == kind)
        if after is not None:
            query = query.where(
                or_(by_kind > after[0], and_(by_kind == after[0], by_item > after[1]))
            )
        query = query.order_by(by_kind, by_item)
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self.engine.connect() as connection:
            return [
                ReviewMark(r.reader, r.kind, r.item_id, r.position, r.marked_at)
                for r in connection.execute(query)
            ]
