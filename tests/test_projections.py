"""Projections: hand-checked toxicity counts, incremental == replay on every backend, as-of."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import EXAMPLES, example
from trial_builder import DIARRHEA, NAUSEA, NEUTROPENIA, T0, Trial

from safety_stream.application import submissions
from safety_stream.auth import Principal
from safety_stream.ctcae import ctcae_dictionary
from safety_stream.events import EventBase, Modality, decode_json, decode_object
from safety_stream.events.derived import derive
from safety_stream.ingest import IngestReport, ingest
from safety_stream.plan import Window
from safety_stream.projections.log import PayloadLog
from safety_stream.projections.projector import (
    ProjectionRepository,
    Projector,
    replay,
    state_as_of,
)
from safety_stream.projections.state import TrialState
from safety_stream.projections.toxicity import modality_table
from safety_stream.runtime import build_memory_runtime
from safety_stream.store.base import EventStore
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.store.projection_memory import InMemoryProjectionRepository
from safety_stream.store.projection_sql import SqlProjectionRepository
from safety_stream.store.sql import SqlEventStore
from safety_stream.validation.records import InputFormat, read_ndjson

ADMIN = Principal("admin", "admin", None)


def small_trial() -> Trial:
    trial = Trial()
    for number, site in [(1, "S1"), (2, "S1"), (3, "S2"), (4, "S2")]:
        trial.enrol(f"P{number}", site=site)
        trial.treat(f"P{number}", "chemotherapy", 7, site)
    trial.treat("P1", "radiotherapy", 30)
    # P1: two chemo-related AEs; worst grade 3 counts once
    trial.ae("P1", 10, *NEUTROPENIA, 3, ct="probable")
    trial.ae("P1", 12, *NAUSEA, 2, ct="possible")
    # P2: unlikely-related grade 4: not related, so not counted
    trial.ae("P2", 10, *NEUTROPENIA, 4, ct="unlikely")
    # P3: grade 3 retracted: never counts
    retracted = trial.ae("P3", 11, *DIARRHEA, 3, ct="definite", site="S2")
    trial.add("ae.retracted", "P3", 12, "S2", ae_id=retracted, reason="wrong patient")
    # P4: grade 2 upgraded to 3
    upgraded = trial.ae("P4", 15, *DIARRHEA, 2, ct="possible", site="S2")
    trial.add("ae.updated", "P4", 17, "S2", ae_id=upgraded, grade=3, reason="worsened")
    # an AE related to two modalities counts for both
    trial.ae("P1", 40, *DIARRHEA, 3, rt="possible", ct="possible")
    return trial


def project(events: list[EventBase]) -> TrialState:
    store = InMemoryEventStore()
    with store.write() as session:
        for event in events:
            session.append(event)
    projector = Projector(store, InMemoryProjectionRepository())
    projector.catch_up()
    return projector.state


def test_chemotherapy_table_counts_patients_by_worst_related_grade() -> None:
    table = modality_table(
        project(small_trial().events), Modality.CHEMOTHERAPY, T0 + timedelta(days=60)
    )
    assert table.exposed == 4
    assert table.by_worst_grade == {"0": 2, "1": 0, "2": 0, "3": 2, "4": 0, "5": 0}
    assert (table.grade3_or_worse.count, table.grade3_or_worse.n) == (2, 4)
    assert table.grade3_or_worse.rate == 0.5
    assert table.grade3_or_worse.ci95_low == pytest.approx(0.0676, abs=1e-4)
    assert table.grade3_or_worse.ci95_high == pytest.approx(0.9324, abs=1e-4)
    by_term = {row.name: row for row in table.by_term}
    assert by_term["Diarrhea"].by_worst_grade["3"] == 2  # P1 and P4 (P3 retracted)
    assert by_term["Neutrophil count decreased"].patients == 1  # P2's is only 'unlikely'
    assert by_term["Nausea"].by_worst_grade["2"] == 1
    assert {row.site_id: row.grade3_or_worse.count for row in table.by_site} == {"S1": 1, "S2": 1}


def test_an_ae_related_to_two_modalities_counts_in_both() -> None:
    table = modality_table(
        project(small_trial().events), Modality.RADIOTHERAPY, T0 + timedelta(days=60)
    )
    assert table.exposed == 1
    assert table.grade3_or_worse.count == 1
    assert [row.name for row in table.by_term] == ["Diarrhea"]


def test_evaluable_patients_need_the_whole_window_whatever_their_outcome() -> None:
    """As the stopping rules count them: an event does not make a patient evaluable sooner
    (the table's window rows once did, and disagreed with the rules)."""
    trial = small_trial()
    window = {"late": Window(anchor="last_exposure", modality=Modality.CHEMOTHERAPY, days=30)}
    state = project(trial.events)
    # day 30: chemo on day 7 + 30 days = day 37 not reached: nobody is evaluable, P1 and P4's
    # events notwithstanding
    early = modality_table(state, Modality.CHEMOTHERAPY, T0 + timedelta(days=30), windows=window)
    assert (early.evaluable[0].evaluable, early.evaluable[0].grade3_or_worse.count) == (0, 0)
    late = modality_table(state, Modality.CHEMOTHERAPY, T0 + timedelta(days=37), windows=window)
    assert (late.evaluable[0].evaluable, late.evaluable[0].grade3_or_worse.count) == (4, 2)


def test_a_patient_who_left_the_window_early_without_the_event_is_not_evaluable() -> None:
    trial = small_trial()
    trial.add("patient.withdrawn", "P2", 20, reason="consent_withdrawn")
    window = {"late": Window(anchor="last_exposure", modality=Modality.CHEMOTHERAPY, days=30)}
    late = modality_table(
        project(trial.events), Modality.CHEMOTHERAPY, T0 + timedelta(days=37), windows=window
    )
    assert (late.evaluable[0].evaluable, late.evaluable[0].grade3_or_worse.count) == (3, 2)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[EventStore, ProjectionRepository, ProjectionRepository]]:
    if request.param == "memory":
        yield InMemoryEventStore(), InMemoryProjectionRepository(), InMemoryProjectionRepository()
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    store = SqlEventStore.create(url)
    yield store, SqlProjectionRepository(store.engine), SqlProjectionRepository(store.engine)
    store.close()


def test_incremental_projection_equals_a_clean_replay(
    backend: tuple[EventStore, ProjectionRepository, ProjectionRepository],
) -> None:
    store, live_repository, replay_repository = backend
    events: list[EventBase] = [
        decode_json(line)
        for line in (EXAMPLES / "sparkle-l-sample.ndjson").read_bytes().splitlines()
    ]
    events += small_trial().events
    projector = Projector(store, live_repository, checkpoint_seconds=3600)  # by count only
    for start in range(0, len(events), 7):  # many small commits, caught up after each
        with store.write() as session:
            for event in events[start : start + 7]:
                session.append(event)
        projector.catch_up()
    # a process restarted before any checkpoint loads an older copy and folds the tail again
    restarted = Projector(store, live_repository)
    assert restarted.state.position < projector.state.position
    restarted.catch_up()
    assert restarted.state == projector.state
    rebuilt, count, _ = replay(store, replay_repository)  # (SQL: the same tables)
    assert count == len(events)
    assert rebuilt == projector.state
    # after a checkpoint, the persisted copy is the same state
    projector.checkpoint()
    assert Projector(store, live_repository).state == projector.state


def test_a_restarted_projector_resumes_from_its_saved_position() -> None:
    store = InMemoryEventStore()
    repository = InMemoryProjectionRepository()
    events = small_trial().events
    with store.write() as session:
        for event in events[:10]:
            session.append(event)
    first = Projector(store, repository)
    first.catch_up()
    first.checkpoint()
    with store.write() as session:
        for event in events[10:]:
            session.append(event)
    first.catch_up()  # folded, not yet checkpointed: a crash now loses only work
    resumed = Projector(store, repository)
    assert resumed.state.position == 10
    assert resumed.catch_up() == len(events) - 10
    assert resumed.state == project(events)


def test_state_as_of_a_past_time_ignores_later_events() -> None:
    times = iter(T0 + timedelta(hours=h) for h in range(1000))
    store = InMemoryEventStore(clock=lambda: next(times))
    events = small_trial().events
    for event in events:
        with store.write() as session:
            session.append(event)
    update_index = next(i for i, e in enumerate(events) if e.event_type == "ae.updated")
    upgraded = events[update_index].ae_id  # type: ignore[attr-defined]
    before_upgrade = state_as_of(store, T0 + timedelta(hours=update_index - 1))
    assert before_upgrade.aes[upgraded].grade == 2
    assert state_as_of(store, T0 + timedelta(hours=update_index)).aes[upgraded].grade == 3
    assert state_as_of(store, T0 + timedelta(hours=2000)) == project(events)


def test_example_history_builds_the_expected_ae_states() -> None:
    state = project(
        [
            decode_object(example(n))
            for n in ("patient.enrolled", "ae.reported", "ae.updated", "ae.resolved")
        ]
    )
    [ae] = state.aes.values()
    assert (ae.grade, ae.status, ae.outcome, ae.seriousness) == (
        4,
        "resolved",
        "recovered",
        ["hospitalisation"],
    )
    assert ae.soc == "Investigations"


def _in_shanghai_time(line: bytes) -> bytes:
    """The same event, its times written with the site's +08:00 offset instead of Z."""
    document = json.loads(line)
    for key in ("occurred_at", "recorded_at"):
        moment = datetime.fromisoformat(document[key])
        document[key] = moment.astimezone(timezone(timedelta(hours=8))).isoformat()
    return json.dumps(document).encode()


def test_following_ingested_events_equals_a_replay_even_with_an_interleaved_writer(
    backend: tuple[EventStore, ProjectionRepository, ProjectionRepository],
) -> None:
    store, live_repository, replay_repository = backend
    lines = (EXAMPLES / "sparkle-l-sample.ndjson").read_bytes().splitlines()
    lines = [_in_shanghai_time(line) for line in lines]
    projector = Projector(store, live_repository)

    def post(chunk: list[bytes]) -> list[tuple[int, EventBase, datetime]]:
        body = io.BytesIO(b"\n".join(chunk))
        report = ingest(store, read_ndjson(body), InputFormat.NDJSON, ctcae_dictionary(), "t", None)
        assert report.count("stored") == len(chunk)
        return report.appended

    chunks = [lines[start : start + 6] for start in range(0, len(lines), 6)]
    for index, chunk in enumerate(chunks):
        appended = post(chunk)
        if index == 3:
            continue  # another process wrote this one: this projector never sees it directly
        assert projector.follow(appended) >= len(appended)
    assert projector.state.position == store.head()
    rebuilt, _, _ = replay(store, replay_repository)
    assert rebuilt == projector.state
    # same UTC instants, and the same documents a restarted process would load
    projector.checkpoint()
    assert Projector(store, live_repository).state == projector.state
    assert all(p.enrolled_at is None or p.enrolled_at.utcoffset() == timedelta(0)
               for p in projector.state.patients.values())  # fmt: skip


def test_a_submission_in_parts_is_projected_when_it_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A submission stored in parts is answered only once all of them are projected (a GET
    right after sees every record), and the projection is a replay's."""
    monkeypatch.setattr(submissions, "PART", 4)
    runtime = build_memory_runtime()
    body = (EXAMPLES / "sparkle-l-sample.ndjson").read_bytes()
    folded: list[int] = []
    runtime.projector.listeners.append(lambda changes: folded.append(changes.count))
    report = runtime.submitter.submit(body, InputFormat.NDJSON, ADMIN, None)
    assert isinstance(report, IngestReport)
    stored = report.count("stored")
    assert stored == len(body.splitlines()) > 8
    assert len(folded) >= 3  # three parts or more, each projected on its own
    assert runtime.projector.state.position == runtime.store.head() == stored
    rebuilt, _, _ = replay(runtime.store, InMemoryProjectionRepository())
    assert rebuilt == runtime.projector.state


def test_a_projector_that_fell_behind_another_is_fenced_off_and_reloads(
    backend: tuple[EventStore, ProjectionRepository, ProjectionRepository],
) -> None:
    """Two projectors of one store (a worker that lost its partition and the one that took
    over): the one behind never writes its older state over the newer one; it reloads."""
    store, repository, replay_repository = backend
    events = [
        decode_json(line)
        for line in (EXAMPLES / "sparkle-l-sample.ndjson").read_bytes().splitlines()
    ]
    first, second = events[:20], events[20:]
    with store.write() as session:
        for event in first:
            session.append(event)
    ahead = Projector(store, repository, checkpoint_events=1)  # a checkpoint after each fold
    behind = Projector(store, repository, checkpoint_events=1)
    assert ahead.catch_up() == 20
    assert behind.catch_up() == 0  # refused: the same position is already saved
    assert behind.state == ahead.state
    with store.write() as session:
        for event in second:
            session.append(event)
    assert ahead.catch_up() == len(second)
    saved = repository.load()
    assert behind.catch_up() == 0  # its save was refused; it reloaded the newer state
    assert behind.state == ahead.state == saved
    rebuilt, _, _ = replay(store, replay_repository)
    assert repository.load() == rebuilt


class _DeriveOnThird:
    """An observer that derives one event when it sees the third position."""

    def observe(
        self, state: TrialState, event: EventBase, position: int, received_at: Any = None
    ) -> list[Any]:
        if position != 3:
            return []
        return [derive("boundary.crossed", "R1", "1", "k", T0, position, "crossed", {})]

    def quarantine(self, quarantined: Any, received_at: Any) -> list[Any]:
        return []

    def rebuild(self, store: PayloadLog, upto: int) -> None:
        pass


def test_the_projection_is_checkpointed_by_count_and_at_once_when_something_is_derived() -> None:
    """The log is what an acknowledgement waits for; the projection's copy is saved every N
    events, and in the same fold whenever the observer derived something (an alert must not
    wait for the next checkpoint)."""
    store = InMemoryEventStore()
    repository = InMemoryProjectionRepository()
    events = small_trial().events
    assert len(events) == 17
    projector = Projector(
        store, repository, _DeriveOnThird(), checkpoint_events=5, checkpoint_seconds=3600
    )
    saved_after = []
    for event in events:
        with store.write() as session:
            session.append(event)
        projector.catch_up()
        saved_after.append(repository.position)
    assert saved_after[:3] == [0, 0, 3]  # the third derived: saved with its state at once
    assert [d.event.caused_by for d in repository.derived_events()] == [3]
    assert saved_after[6] == 3 and saved_after[7] == 8  # five more events: a checkpoint
    assert saved_after[16] == 13 and projector.unsaved == 4
    restarted = Projector(store, repository, _DeriveOnThird())
    assert restarted.state.position == 13
    restarted.catch_up()
    assert restarted.state == projector.state == project(events)
