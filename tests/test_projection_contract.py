"""One contract for every projection repository: memory, SQLite and PostgreSQL.

A repository keeps the projection's documents with their position (saved forward only, so a
projector that fell behind never overwrites a newer copy) and the derived events in the order
first stored (each once, whatever number of times it is saved).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from conftest import EXAMPLES
from test_store_contract import new_sql_store

from safety_stream.events import decode_json
from safety_stream.events.derived import DerivedEvent, derive
from safety_stream.projections.projector import StaleProjectionError, replay
from safety_stream.projections.state import TrialState
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.store.projection_memory import InMemoryProjectionRepository
from safety_stream.store.projection_sql import SqlProjectionRepository

AT = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def repository(
    request: pytest.FixtureRequest,
) -> Iterator[InMemoryProjectionRepository | SqlProjectionRepository]:
    if request.param == "memory":
        yield InMemoryProjectionRepository()
        return
    url_fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    store = new_sql_store(request.getfixturevalue(url_fixture))
    yield SqlProjectionRepository(store.engine)
    store.close()


def sample_state() -> TrialState:
    """The projection of the example trial, rebuilt from its events."""
    store = InMemoryEventStore()
    with store.write() as session:
        for line in (EXAMPLES / "sparkle-l-sample.ndjson").read_bytes().splitlines():
            session.append(decode_json(line))
    state, _, _ = replay(store, InMemoryProjectionRepository())
    return state


def alert(rule: str, key: str, caused_by: int) -> DerivedEvent:
    return derive("boundary.crossed", rule, "1", key, AT, caused_by, f"{rule} crossed", {"n": 1})


def test_a_new_repository_loads_an_empty_state_at_position_zero(
    repository: InMemoryProjectionRepository | SqlProjectionRepository,
) -> None:
    assert repository.load() == TrialState(position=0)
    assert repository.derived_events() == []


def test_saved_documents_load_back_equal_and_only_changed_keys_are_written(
    repository: InMemoryProjectionRepository | SqlProjectionRepository,
) -> None:
    state = sample_state()
    repository.save(state, set(state.patients), set(state.aes))
    assert repository.load() == state
    patient = sorted(state.patients)[0]
    state.patients[patient].site_id = "CHANGED"
    state.position += 1
    ae = sorted(state.aes)[0]
    stale_ae = copy.deepcopy(state.aes[ae])
    state.aes[ae].grade = 5  # changed in memory but not named as changed: not written
    repository.save(state, {patient}, set())
    loaded = repository.load()
    assert loaded.position == state.position
    assert loaded.patients[patient].site_id == "CHANGED"
    assert loaded.aes[ae] == stale_ae


def test_the_position_only_moves_forward(
    repository: InMemoryProjectionRepository | SqlProjectionRepository,
) -> None:
    state = sample_state()
    repository.save(state, set(state.patients), set(state.aes))
    behind = TrialState(position=state.position)  # the same position again: refused
    with pytest.raises(StaleProjectionError):
        repository.save(behind, set(), set(), [alert("R1", "k", 1)])
    with pytest.raises(StaleProjectionError):
        repository.save(TrialState(position=state.position - 1), set(), set())
    assert repository.load() == state
    assert repository.derived_events() == []  # nothing of a refused save is kept


def test_derived_events_are_kept_once_in_the_order_first_stored(
    repository: InMemoryProjectionRepository | SqlProjectionRepository,
) -> None:
    first, second, third = alert("R1", "a", 1), alert("R2", "b", 2), alert("R1", "c", 3)
    repository.save(TrialState(position=1), set(), set(), [first])
    repository.save(TrialState(position=2), set(), set(), [second, first])  # first again
    repository.save(TrialState(position=3), set(), set(), [third])
    stored = repository.derived_events()
    assert [s.event for s in stored] == [first, second, third]
    # numbers only increase (PostgreSQL's sequence may skip one a conflicting insert drew)
    numbers = [s.number for s in stored]
    assert numbers == sorted(set(numbers)) and numbers[0] >= 1
    assert [s.event for s in repository.derived_events(rule_id="R1")] == [first, third]
    assert [s.event for s in repository.derived_events(after=numbers[0])] == [second, third]
    assert [s.event for s in repository.derived_events(rule_id="R1", after=numbers[0])] == [third]
    assert repository.derived_events(after=numbers[-1]) == []


def test_derived_events_are_read_a_page_at_a_time(
    repository: InMemoryProjectionRepository | SqlProjectionRepository,
) -> None:
    events = [alert("R1" if i % 3 else "R2", f"k{i}", i) for i in range(1, 8)]
    repository.save(TrialState(position=1), set(), set(), events)
    every = repository.derived_events()
    assert repository.derived_events(limit=3) == every[:3]
    assert repository.derived_events(after=every[2].number, limit=3) == every[3:6]
    assert repository.derived_events(after=every[5].number, limit=3) == every[6:]
    assert repository.derived_events(limit=0) == []
    assert repository.derived_events(limit=100) == every
    ones = [s for s in every if s.event.rule_id == "R1"]
    assert repository.derived_events(rule_id="R1", limit=2) == ones[:2]
    assert repository.derived_events(rule_id="R1", after=ones[1].number, limit=2) == ones[2:4]
    assert repository.derived_events(after=every[-1].number, limit=5) == []


def test_replace_all_leaves_exactly_the_given_state_and_keeps_derived_events(
    repository: InMemoryProjectionRepository | SqlProjectionRepository,
) -> None:
    state = sample_state()
    kept = alert("R1", "a", 1)
    repository.save(state, set(state.patients), set(state.aes), [kept])
    smaller = TrialState(position=3)
    patient = sorted(state.patients)[0]
    smaller.patients[patient] = state.patients[patient]
    rebuilt = alert("R2", "b", 2)
    repository.replace_all(smaller, [rebuilt, kept])
    assert repository.load() == smaller  # the position too, even though it went back
    assert [s.event for s in repository.derived_events()] == [kept, rebuilt]
