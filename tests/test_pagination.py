"""Every list endpoint pages: ``limit`` (1 to 1000) and the cursor ``after``, documented in
OpenAPI; walking page by page gives every item exactly once, in order; and one page reads at
most ``limit`` rows from the database (the limit is in the SQL, not a slice of everything)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import example
from sqlalchemy import Engine, event
from test_api import SAMPLE, Api
from test_store_contract import new_sql_store

from safety_stream.alerts.config import AlertConfig
from safety_stream.events.derived import DerivedEvent, derive
from safety_stream.projections.documents import DerivedSource, StoredDerived
from safety_stream.projections.state import TrialState
from safety_stream.runtime import build_memory_runtime, build_runtime
from safety_stream.settings import Settings
from safety_stream.store.outbox_sql import SqlOutbox
from safety_stream.store.projection_memory import InMemoryProjectionRepository
from safety_stream.store.projection_sql import SqlProjectionRepository

AT = datetime(2026, 3, 1, tzinfo=UTC)
LIST_ENDPOINTS = ["/v1/derived-events", "/v1/alerts", "/v1/rejections", "/v1/decisions"]
QUIET = {"groups": [{"name": "nobody", "kinds": ["sentinel.raised"],
                     "channels": [{"type": "file", "path": "alerts.ndjson"}]}]}  # fmt: skip


@pytest.fixture(params=["memory", "sqlite"])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    if request.param == "memory":
        runtime = build_memory_runtime(Settings(max_body_bytes=200_000))
    else:
        url = request.getfixturevalue("sqlite_url")
        runtime = build_runtime(Settings(db=url, max_body_bytes=200_000))
    yield Api(runtime)
    runtime.close()


@pytest.fixture
def filled(api: Api) -> Api:
    """Derived events, alerts, dead letters of two sites and DSMB decisions, several of each."""
    assert api.post("admin", SAMPLE, "application/x-ndjson").status_code == 201
    death = {
        **example("ae.reported"),
        "event_id": str(uuid.uuid4()),
        "ctcae_term": "Death NOS",
        "meddra_code": 10011914,
        "grade": 5,
        "seriousness": ["death"],
        "attribution": {"radiotherapy": "unlikely", "chemotherapy": "possible",
                        "immunotherapy": "unrelated"},
    }  # fmt: skip
    assert api.post("CN-SH-01", death).status_code == 201
    for n in range(7):
        site = "CN-SH-01" if n % 3 else "CN-BJ-02"
        assert api.post(site, {"not": "an event", "n": n}).status_code == 422
    for n in range(5):
        decided = api.client.post(
            "/v1/decisions",
            json={"answers": ["treatment-related-death"], "outcome": "continue_unchanged",
                  "rationale": f"decision {n}"},
            headers={"Authorization": f"Bearer {api.tokens['officer']}"},
        )  # fmt: skip
        assert decided.status_code == 201
    api.runtime.outbox.plan(api.runtime.derived, datetime.now(UTC))
    return api


def cursor_of(path: str) -> Callable[[dict[str, Any]], int]:
    return {
        "/v1/derived-events": lambda item: int(item["number"]),
        "/v1/alerts": lambda item: int(item["number"]),
        "/v1/rejections": lambda item: int(item["id"]),
    }[path]


def walk(api: Api, who: str, path: str, limit: int, query: str = "") -> list[dict[str, Any]]:
    """Every item of ``path``, a page of ``limit`` at a time, following the cursor."""
    items: list[dict[str, Any]] = []
    after = 0
    for _ in range(1000):
        response = api.get(who, f"{path}?{query}after={after}&limit={limit}")
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page) <= limit
        if not page:
            return items
        items += page
        # decisions carry no number: the cursor is how many were received
        after = len(items) if path == "/v1/decisions" else cursor_of(path)(page[-1])
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize("limit", [1, 2, 1000])
def test_walking_page_by_page_gives_every_item_once_in_order(filled: Api, limit: int) -> None:
    for path in LIST_ENDPOINTS:
        walked = walk(filled, "officer", path, limit)
        everything = filled.get("officer", f"{path}?limit=1000").json()
        assert len(everything) >= 3, path  # several pages at limit 1 and 2
        if path == "/v1/rejections":  # without a cursor the newest come first
            everything.reverse()
        assert walked == everything, path
        if path == "/v1/alerts":  # the most severe first, the newest first within one
            rank = {"critical": 0, "warning": 1, "info": 2}
            keys = [(rank[a["alert"]["severity"]], -a["number"]) for a in walked]
            assert keys == sorted(set(keys)), path
        elif path != "/v1/decisions":
            cursors = [cursor_of(path)(item) for item in walked]
            assert cursors == sorted(set(cursors)), path  # each once, in the order stored
        else:
            assert [d["rationale"] for d in walked] == [f"decision {n}" for n in range(5)]


def test_a_site_walks_only_its_own_dead_letters(filled: Api) -> None:
    for site, count in (("CN-SH-01", 4), ("CN-BJ-02", 3)):
        walked = walk(filled, site, "/v1/rejections", 1)
        assert len(walked) == count and {r["site_id"] for r in walked} == {site}
        assert [r["id"] for r in walked] == sorted({r["id"] for r in walked})


def test_unacknowledged_alerts_page_too(filled: Api) -> None:
    every = filled.get("officer", "/v1/alerts?limit=1000").json()
    first = every[0]["alert"]["derived_id"]
    acknowledged = filled.client.post(
        f"/v1/alerts/{first}/acknowledge",
        headers={"Authorization": f"Bearer {filled.tokens['officer']}"},
    )
    assert acknowledged.status_code == 200
    walked = walk(filled, "officer", "/v1/alerts", 1, "unacknowledged=true&")
    assert [a["number"] for a in walked] == [a["number"] for a in every[1:]]


def test_a_limit_or_cursor_out_of_bounds_is_refused(api: Api) -> None:
    for path in LIST_ENDPOINTS:
        for query in ("limit=0", "limit=1001", "limit=-1", "after=-1", f"after={2**63}"):
            assert api.get("officer", f"{path}?{query}").status_code == 422, (path, query)


def test_every_list_endpoint_documents_its_limit_and_cursor(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    lists = {
        path
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
        if method == "get"
        and operation["responses"]["200"]["content"]
        .get("application/json", {})
        .get("schema", {})
        .get("type")
        == "array"
    }
    assert lists == set(LIST_ENDPOINTS)
    for path in lists:
        parameters = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        limit, after = parameters["limit"], parameters["after"]
        assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 1000), path
        assert limit["description"] and after["description"], path
        bounds = after["schema"].get("anyOf", [after["schema"]])[0]
        assert (bounds["minimum"], bounds["maximum"]) == (0, 2**63 - 1), path


# -- bounded reads: one page reads one page ---------------------------------------------------


class CountingSource:
    """A DerivedSource that records what each read asked for and how much it returned."""

    def __init__(self, inner: DerivedSource) -> None:
        self.inner = inner
        self.reads: list[tuple[int | None, int]] = []

    def derived_events(
        self, rule_id: str | None = None, after: int = 0, limit: int | None = None
    ) -> list[StoredDerived]:
        found = self.inner.derived_events(rule_id, after, limit)
        self.reads.append((limit, len(found)))
        return found


def test_the_api_asks_the_port_for_one_page(filled: Api) -> None:
    counting = CountingSource(filled.runtime.derived)
    filled.runtime.derived = counting
    assert len(filled.get("officer", "/v1/derived-events?limit=2").json()) == 2
    assert counting.reads == [(2, 2)]


def derived(count: int) -> list[DerivedEvent]:
    return [
        derive("boundary.crossed", f"R{n % 3}", "1", f"k{n}", AT, n, "crossed", {"n": n})
        for n in range(1, count + 1)
    ]


class RowCounter:
    """Counts the rows SQLite hands over (every row of every cursor of ``engine``)."""

    def __init__(self, engine: Engine) -> None:
        self.rows = 0
        event.listen(engine, "checkout", self._attach)

    def _attach(self, connection: Any, record: Any, proxy: Any) -> None:
        connection.row_factory = self._count

    def _count(self, cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> tuple[Any, ...]:
        self.rows += 1
        return row

    def during(self, read: Callable[[], list[Any]]) -> tuple[int, int]:
        """(rows read from the database, items returned) by ``read``."""
        self.rows = 0
        found = read()
        return self.rows, len(found)


def test_one_page_of_5000_derived_events_reads_at_most_limit_rows(sqlite_url: str) -> None:
    store = new_sql_store(sqlite_url)
    repository = SqlProjectionRepository(store.engine)
    repository.save(TrialState(position=1), set(), set(), derived(5000))
    counter = RowCounter(store.engine)
    assert counter.during(lambda: repository.derived_events(limit=100)) == (100, 100)
    assert counter.during(lambda: repository.derived_events(after=4950, limit=100)) == (50, 50)
    assert counter.during(lambda: repository.derived_events(rule_id="R1", limit=10)) == (10, 10)
    assert counter.during(repository.derived_events) == (5000, 5000)  # the counter counts
    store.close()


def test_one_page_of_5000_in_memory_derived_events_looks_at_most_limit_of_them() -> None:
    repository = InMemoryProjectionRepository()
    repository.save(TrialState(position=1), set(), set(), derived(5000))
    looked = 0

    class Counting(dict[uuid.UUID, DerivedEvent]):
        def values(self) -> Any:
            nonlocal looked
            for item in super().values():
                looked += 1
                yield item

    repository.derived = Counting(repository.derived)
    assert len(repository.derived_events(limit=100)) == 100
    assert looked <= 101


def test_one_page_of_alerts_and_of_dead_letters_reads_at_most_limit_rows(
    sqlite_url: str,
) -> None:
    store = new_sql_store(sqlite_url)
    repository = SqlProjectionRepository(store.engine)
    repository.save(TrialState(position=1), set(), set(), derived(2000))
    outbox = SqlOutbox(store.engine, AlertConfig.model_validate(QUIET))
    assert outbox.plan(repository, AT) == 2000
    with store.write() as session:
        for n in range(2000):
            session.reject("http", "S1", f"line {n}", f'{{"n": {n}}}'.encode(), [])
    first = outbox.alerts(limit=3)
    for view in first:
        outbox.acknowledge(view.alert.derived_id, "officer", None, AT)
    counter = RowCounter(store.engine)
    rows, found = counter.during(lambda: outbox.alerts(limit=50))
    assert found == 50 and rows <= 50 + 3  # the page's alerts and their log (3 acknowledged)
    assert counter.during(lambda: outbox.alerts(after=1990, limit=50)) == (10, 10)
    rows, found = counter.during(lambda: outbox.alerts(unacknowledged=True, limit=50))
    assert (rows, found) == (50, 50)
    assert counter.during(lambda: store.rejections(limit=50)) == (50, 50)
    assert counter.during(lambda: store.rejections(after=10, limit=50)) == (50, 50)
    assert counter.during(lambda: store.rejections(site_id="S1", after=1990)) == (10, 10)
    store.close()
