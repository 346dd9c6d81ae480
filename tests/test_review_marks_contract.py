"""The review marks port's contract, held by every implementation: in memory, SQLite,
PostgreSQL (when SAFETY_STREAM_TEST_PG_URL is set; under CI it must be): marks per reader and
item, moved only forward, kept apart per reader and kind, refused when malformed, and (SQL)
kept across a reopening of the store, listed in pages by kind and item id in code-point order
whatever the database's collation (PostgreSQL: also on a database with a linguistic ICU
collation, where "a" sorts before "B"). Plus the pure rule that turns a mark into new/changed."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import PG_URL_VARIABLE, require_server
from sqlalchemy import create_engine, text

from safety_stream.review.marks import ReviewMark, ReviewMarks, review_status
from safety_stream.store.marks_memory import InMemoryReviewMarks
from safety_stream.store.marks_sql import SqlReviewMarks
from safety_stream.store.opening import open_store
from safety_stream.store.sql import SqlEventStore

T0 = datetime(2026, 11, 30, 9, 0, 0, 125000, tzinfo=UTC)
BACKENDS = ["memory", "sqlite", "postgres", "postgres_icu"]
AE1, AE2, AL1 = "0c1d8a5e-4f1b-4b0e-9d61-2f7e3a9b1c01", "ae-two", "alert-one"

Factory = Callable[[], ReviewMarks]


@pytest.fixture
def postgres_icu_url() -> Iterator[str]:
    """A fresh PostgreSQL database whose default collation is linguistic (ICU, en-US), where
    text sorts unlike Python's code-point order ("a" < "B", "_" and "-" ignored at first)."""
    admin_url = require_server("PostgreSQL", PG_URL_VARIABLE)
    admin = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    name = f"t_icu_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.execute(
            text(
                f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' "
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            )
        )
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def make_marks(request: pytest.FixtureRequest) -> Iterator[Factory]:
    """A factory: each call opens the same backing store again (SQL: a new engine)."""
    stores: list[SqlEventStore] = []
    memory = InMemoryReviewMarks()

    def make() -> ReviewMarks:
        if request.param == "memory":
            return memory
        url = request.getfixturevalue(f"{request.param}_url")
        stores.append(open_store(url, create=True))
        return SqlReviewMarks(stores[-1].engine)

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def marks(make_marks: Factory) -> ReviewMarks:
    return make_marks()


def test_a_mark_is_kept_per_reader_kind_and_item(marks: ReviewMarks) -> None:
    assert marks.marks("ann") == {} and marks.mark_rows("ann") == []
    assert marks.mark("ann", "ae", [AE1, AE2], 10, T0) == 2
    assert marks.mark("ann", "alert", [AL1], 12, T0) == 1
    assert marks.mark("bob", "ae", [AE1], 4, T0) == 1
    assert marks.marks("ann") == {("ae", AE1): 10, ("ae", AE2): 10, ("alert", AL1): 12}
    assert marks.marks("ann", "alert") == {("alert", AL1): 12}
    assert marks.marks("bob") == {("ae", AE1): 4}
    assert marks.mark_rows("bob") == [ReviewMark("bob", "ae", AE1, 4, T0)]


def test_a_mark_only_moves_forward(marks: ReviewMarks) -> None:
    later = T0 + timedelta(minutes=5)
    marks.mark("ann", "ae", [AE1], 10, T0)
    assert marks.mark("ann", "ae", [AE1, AE2], 7, later) == 1  # a stale page: only AE2 moves
    assert marks.marks("ann") == {("ae", AE1): 10, ("ae", AE2): 7}
    assert marks.mark("ann", "ae", [AE1], 10, later) == 0  # the same position: unchanged
    assert marks.mark("ann", "ae", [AE1], 15, later) == 1
    rows = {r.item_id: r for r in marks.mark_rows("ann")}
    assert (rows[AE1].position, rows[AE1].marked_at) == (15, later)
    assert (rows[AE2].position, rows[AE2].marked_at) == (7, later)
    assert marks.mark("ann", "ae", [AE2, AE2], 9, later) == 1  # an id twice counts once


def test_malformed_marks_are_refused_with_what_is_allowed(marks: ReviewMarks) -> None:
    with pytest.raises(ValueError, match="kind 'patient' is not one of ae, alert"):
        marks.mark("ann", "patient", [AE1], 1, T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="position -1 is not a log position"):
        marks.mark("ann", "ae", [AE1], -1, T0)
    with pytest.raises(ValueError, match="1 to 64 characters"):
        marks.mark("ann", "ae", ["x" * 65], 1, T0)
    with pytest.raises(ValueError, match="reader: a credential name"):
        marks.mark("", "ae", [AE1], 1, T0)
    assert marks.mark("ann", "ae", [], 1, T0) == 0
    assert marks.marks("ann") == {}


def test_marks_survive_reopening_the_store(make_marks: Factory) -> None:
    make_marks().mark("ann", "alert", [AL1], 21, T0)
    assert make_marks().marks("ann") == {("alert", AL1): 21}


def test_two_threads_marking_at_once_leave_the_furthest_mark(marks: ReviewMarks) -> None:
    def mark(position: int) -> None:
        for _ in range(10):
            marks.mark("ann", "ae", [AE1, AE2], position, T0)

    threads = [threading.Thread(target=mark, args=(p,)) for p in (3, 8, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert marks.marks("ann") == {("ae", AE1): 8, ("ae", AE2): 8}


# ids whose code-point order differs from a linguistic collation's (upper case before lower
# case, punctuation and digits before letters, non-ASCII last)
TRICKY_IDS = ["b-2", "B-1", "a_3", "A-4", "_x", "-y", "Z", "é", "ae-two", "10", "9", "a b"]


def test_marks_are_listed_by_kind_and_item_id_in_code_point_order(marks: ReviewMarks) -> None:
    marks.mark("ann", "alert", TRICKY_IDS, 5, T0)
    marks.mark("ann", "ae", TRICKY_IDS[:5], 3, T0)
    expected = sorted([("ae", i) for i in TRICKY_IDS[:5]] + [("alert", i) for i in TRICKY_IDS])
    assert [(r.kind, r.item_id) for r in marks.mark_rows("ann")] == expected
    # page by page (two at a time), the cursor being the last (kind, item id) received: each
    # mark exactly once, in the same order; one kind alone; other readers' marks never
    marks.mark("bob", "ae", ["a_3", "zz"], 4, T0)
    walked: list[tuple[str, str]] = []
    cursor: tuple[str, str] | None = None
    while page := marks.mark_rows("ann", after=cursor, limit=2):
        assert len(page) <= 2
        walked += [(r.kind, r.item_id) for r in page]
        cursor = walked[-1]
    assert walked == expected
    alerts = marks.mark_rows("ann", "alert", after=("alert", "B-1"), limit=100)
    assert [r.item_id for r in alerts] == sorted(i for i in TRICKY_IDS if i > "B-1")
    assert [r.item_id for r in marks.mark_rows("ann", "ae", after=("ae", "b-2"))] == []
    assert [r.item_id for r in marks.mark_rows("ann", after=("ae", "b-2"), limit=1)] == ["-y"]


@pytest.mark.parametrize(
    ("mark", "first", "last", "expected"),
    [
        (None, 5, 5, "new"),  # never marked
        (4, 5, 9, "new"),  # marked before the item existed
        (5, 5, 9, "changed"),  # changed at 9 after the mark at 5
        (9, 5, 9, None),  # reviewed as it stands
        (12, 5, 9, None),
    ],
)
def test_new_or_changed_follows_the_mark(
    mark: int | None, first: int, last: int, expected: str | None
) -> None:
    assert review_status(mark, first, last) == expected
