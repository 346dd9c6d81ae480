"""Properties of the monitor over random histories, under the shipped SPARKLE-L plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trial_builder import ALT_INCREASED, DIARRHEA, NEUTROPENIA, Trial

from safety_stream.events import EventBase
from safety_stream.events.derived import DerivedEvent
from safety_stream.monitoring.monitor import Monitor
from safety_stream.monitoring.status import rule_statuses
from safety_stream.plan import load_plan
from safety_stream.projections.projector import Projector, replay
from safety_stream.projections.state import TrialState, apply
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.store.projection_memory import InMemoryProjectionRepository

PLAN = load_plan(REPO / "deploy" / "plans" / "sparkle-l.yaml")
MODALITIES = ["radiotherapy", "chemotherapy", "immunotherapy"]
ATTRIBUTIONS = ["unrelated", "unlikely", "possible", "probable", "definite"]
TERMS = [NEUTROPENIA, DIARRHEA, ALT_INCREASED]

actions = st.one_of(
    st.tuples(st.just("treat"), st.sampled_from(MODALITIES)),
    st.tuples(
        st.just("ae"),
        st.sampled_from(TERMS),
        st.integers(1, 4),
        st.tuples(*[st.sampled_from(ATTRIBUTIONS)] * 3),
        st.booleans(),  # serious and unexpected
    ),
    st.tuples(st.just("update"), st.integers(0, 5), st.integers(1, 4)),
    st.tuples(st.just("retract"), st.integers(0, 5)),
    st.tuples(st.just("lab"), st.sampled_from(["ALT", "AST", "ALP"]), st.floats(0.5, 8)),
    st.tuples(st.just("wait"), st.integers(1, 60)),
)
histories = st.lists(st.lists(actions, max_size=12), min_size=1, max_size=6)


def patient_events(number: int, history: list[tuple[Any, ...]]) -> list[EventBase]:
    """One patient's events, in their own order, days rising."""
    trial, patient, day = Trial(), f"P{number}", 0
    trial.enrol(patient, day)
    aes: list[str] = []
    retracted: set[str] = set()
    for action in history:
        day += 1
        if action[0] == "treat":
            trial.treat(patient, action[1], day)
        elif action[0] == "ae":
            _, (term, code), grade, (rt, ct, it), serious = action
            seriousness = ["hospitalisation"] if serious else []
            expectedness = "unexpected" if serious else "expected"
            reported = trial.ae(
                patient, day, term, code, min(grade, 4), rt=rt, ct=ct, it=it,
                seriousness=seriousness, expectedness=expectedness,
            )  # fmt: skip
            aes.append(reported)
        elif action[0] in ("update", "retract") and aes:
            target = aes[action[1] % len(aes)]
            if target in retracted:
                continue
            if action[0] == "update":
                trial.update(patient, day, target, grade=action[2])
            else:
                trial.retract(patient, day, target)
                retracted.add(target)
        elif action[0] == "lab":
            trial.lab(patient, day, action[1], action[2])
        elif action[0] == "wait":
            day += action[1]
    return trial.events


def interleave(streams: list[list[EventBase]], order: list[int]) -> list[EventBase]:
    """Merge per-patient streams, each kept in its own order, picking streams by ``order``."""
    queues = [list(s) for s in streams]
    merged: list[EventBase] = []
    picks = iter(order)
    while any(queues):
        live = [i for i, q in enumerate(queues) if q]
        merged.append(queues[live[next(picks, 0) % len(live)]].pop(0))
    return merged


def final_status(events: list[EventBase]) -> list[tuple[Any, ...]]:
    state, monitor = TrialState(), Monitor(PLAN)
    for position, event in enumerate(events, start=1):
        apply(state, event, position)
        monitor.observe(state, event, position)
        for counter in monitor.counting:  # patients, not events: never more than exposed
            assert 0 <= counter.x <= counter.n <= counter.exposed <= len(state.patients)
    return [
        (s.rule_id, s.exposed, s.n, s.x, s.status, s.raised, len(s.clocks or []))
        for s in rule_statuses(monitor)
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, st.lists(st.integers(0, 10), max_size=200))
def test_the_order_of_independent_patients_does_not_change_the_outcome(
    history: list[list[tuple[Any, ...]]], order: list[int]
) -> None:
    streams = [patient_events(i, h) for i, h in enumerate(history, start=1)]
    one_by_one = [event for stream in streams for event in stream]
    assert final_status(one_by_one) == final_status(interleave(streams, order))


class RecordingRepository(InMemoryProjectionRepository):
    """Keeps every derived event handed to it, duplicates included (the dict does not)."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: list[DerivedEvent] = []

    def save(
        self,
        state: TrialState,
        patients: set[str],
        aes: set[UUID],
        derived: Sequence[DerivedEvent] = (),
    ) -> None:
        self.handed += derived
        super().save(state, patients, aes, derived)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_replay_never_duplicates_a_derived_event(history: list[list[tuple[Any, ...]]]) -> None:
    store, repository = InMemoryEventStore(), RecordingRepository()
    projector = Projector(store, repository, Monitor(PLAN))
    for stream in (patient_events(i, h) for i, h in enumerate(history, start=1)):
        with store.write() as session:
            for event in stream:
                session.append(event)
        projector.catch_up()
    stored = list(repository.derived)
    # the live monitor never derives the same conclusion twice
    assert [d.derived_id for d in repository.handed] == stored
    replay(store, repository, observer=Monitor(PLAN))
    assert list(repository.derived) == stored
