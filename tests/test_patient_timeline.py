"""Dates that cannot be true for a patient are refused on ingest, with what to correct, and kept
as dead letters: an AE or treatment before consent, anything after death but follow-ups, a
second fatal AE, a death citing an AE that is not grade 5, a fatal outcome below grade 5.

The patient's history is ingested first, the event under test in a later transaction, so the
facts come from the store's index (memory and SQLite), as they would days later."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from trial_builder import DIARRHEA, HEPATIC_FAILURE, NEUTROPENIA, T0, Trial

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.events import EventBase, encode_json
from safety_stream.ingest import ingest
from safety_stream.store.base import EventStore
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.store.sql import SqlEventStore
from safety_stream.validation.records import InputFormat, RawRecord


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[EventStore]:
    clock = lambda: T0 + timedelta(days=400)  # noqa: E731 - the server's clock: after it all
    if request.param == "memory":
        yield InMemoryEventStore(clock=clock)
        return
    sql = SqlEventStore.create(request.getfixturevalue("sqlite_url"), clock=clock)
    yield sql
    sql.close()


def post(store: EventStore, events: list[EventBase]) -> list[Any]:
    records = [RawRecord(f"e{i}", encode_json(e).encode()) for i, e in enumerate(events)]
    report = ingest(store, records, InputFormat.NDJSON, ctcae_dictionary(), "test", None)
    return report.outcomes


def day(n: int) -> str:
    return (T0 + timedelta(days=n)).date().isoformat()


def history(trial: Trial) -> dict[str, str]:
    """P1 consents on day 10 (screening labs on day 8 are fine), treated from day 11; a grade 4
    hepatic failure on day 15, a fatal (grade 5) diarrhoea on day 20, death on day 21."""
    trial.enrol("P1", 10)
    trial.lab("P1", 8, "ALT", 1.0)  # logged after the enrolment, drawn at screening
    trial.treat("P1", "chemotherapy", 11)
    severe = trial.ae("P1", 15, *HEPATIC_FAILURE, 4, ct="probable")
    fatal = trial.ae("P1", 20, *DIARRHEA, 5, ct="probable")
    trial.add("patient.died", "P1", 21, death_date=day(21), primary_cause="diarrhoea",
              related_ae_id=fatal)  # fmt: skip
    return {"severe": severe, "fatal": fatal}


CASES: list[tuple[str, Callable[[Trial, dict[str, str]], Any], str | None]] = [
    ("AE before consent", lambda t, a: t.ae("P1", 9, *NEUTROPENIA, 2), "time.before_consent"),
    ("treatment before consent", lambda t, a: t.treat("P1", "chemotherapy", 9),
     "time.before_consent"),
    ("screening lab before consent", lambda t, a: t.lab("P1", 9, "AST", 1.0), None),
    ("treatment after death", lambda t, a: t.treat("P1", "chemotherapy", 25), "time.after_death"),
    ("AE after death", lambda t, a: t.ae("P1", 23, *NEUTROPENIA, 2), "time.after_death"),
    ("lab after death", lambda t, a: t.lab("P1", 22, "ALT", 1.0), "time.after_death"),
    ("an AE resolved after the death (a follow-up)",
     lambda t, a: t.add("ae.resolved", "P1", 30, ae_id=a["severe"], outcome="recovered",
                        end_date=day(19)), None),
    ("an AE reported after the death with an onset before it",
     lambda t, a: t.ae("P1", 18, *NEUTROPENIA, 1), None),
    ("a second fatal AE", lambda t, a: t.ae("P1", 19, *HEPATIC_FAILURE, 5, ct="possible"),
     "consistency.second_fatal_ae"),
    ("a second fatal AE by an update",
     lambda t, a: t.update("P1", 22, a["severe"], grade=5, seriousness=["death"]),
     "consistency.second_fatal_ae"),
    ("a fatal outcome on a grade 4 AE",
     lambda t, a: t.add("ae.resolved", "P1", 22, ae_id=a["severe"], outcome="fatal",
                        end_date=day(21)), "consistency.fatal_outcome_below_grade5"),
    ("a second death", lambda t, a: t.add("patient.died", "P1", 21, death_date=day(21),
                                          primary_cause="again"), "reference.already_died"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "make", "code"), CASES, ids=[c[0] for c in CASES])
def test_a_timeline_that_cannot_be_true_is_refused_and_kept(
    store: EventStore, case: str, make: Callable[[Trial, dict[str, str]], Any], code: str | None
) -> None:
    trial = Trial()
    aes = history(trial)
    assert [o.status for o in post(store, trial.events)] == ["stored"] * len(trial.events)
    trial.events.clear()
    make(trial, aes)
    (outcome,) = post(store, trial.events)
    if code is None:
        assert outcome.status == "stored", outcome.problems
        return
    assert outcome.status == "rejected"
    assert [p.code for p in outcome.problems] == [code]
    assert outcome.problems[0].allowed  # says what to correct
    (kept,) = [r for r in store.rejections() if json.loads(r.raw)["event_id"] == str(
        trial.events[0].event_id)]  # fmt: skip
    assert kept.problems[0]["code"] == code


def test_a_death_must_cite_a_fatal_ae(store: EventStore) -> None:
    trial = Trial()
    trial.enrol("P2", 0)
    trial.treat("P2", "chemotherapy", 1)
    severe = trial.ae("P2", 5, *HEPATIC_FAILURE, 4, ct="probable")
    post(store, trial.events)
    trial.events.clear()
    trial.add("patient.died", "P2", 8, death_date=day(8), primary_cause="sepsis",
              related_ae_id=severe)  # fmt: skip
    (refused,) = post(store, trial.events)
    assert [p.code for p in refused.problems] == ["consistency.death_cites_nonfatal_ae"]
    assert "ae.updated with grade 5" in str(refused.problems[0].allowed)
    # as the message says: the AE turned fatal first, then the death citing it
    trial.events.clear()
    trial.update("P2", 8, severe, grade=5, grade_change="worsened", seriousness=["death"])
    trial.add("patient.died", "P2", 8, death_date=day(8), primary_cause="sepsis",
              related_ae_id=severe)  # fmt: skip
    assert [o.status for o in post(store, trial.events)] == ["stored", "stored"]
