"""Hypothesis stateful test: random reports, updates, resolutions and retractions give the same
outcomes and the same projections in memory, on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.ingest import ingest
from safety_stream.projections.projector import Projector, replay
from safety_stream.store.base import EventStore
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.store.projection_memory import InMemoryProjectionRepository
from safety_stream.store.projection_sql import SqlProjectionRepository
from safety_stream.store.sql import SqlEventStore
from safety_stream.store.tables import Base
from safety_stream.validation.records import InputFormat, read_ndjson

TERMS = [("Nausea", 10028813), ("Diarrhea", 10012727), ("Febrile neutropenia", 10016288),
         ("Death NOS", 10011914), ("Fatigue", 10016256)]  # fmt: skip
ATTRIBUTION = st.sampled_from(["unrelated", "unlikely", "possible", "probable", "definite"])
T0 = datetime(2026, 1, 1, tzinfo=UTC)
FOLFOX_CYCLE_1 = {"modality": "chemotherapy", "regimen": "FOLFOX", "cycle": 1}


class _Backends(RuleBasedStateMachine):
    sqlite_dir: ClassVar[Path]  # set by make_machine
    postgres_url: ClassVar[str]
    patients = Bundle("patients")
    aes = Bundle("aes")

    def __init__(self) -> None:
        super().__init__()
        postgres = SqlEventStore.create(self.postgres_url)
        with postgres.engine.begin() as connection:
            tables = ", ".join(t for t in Base.metadata.tables)
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
        sqlite = SqlEventStore.create(f"sqlite:///{self.sqlite_dir / uuid.uuid4().hex}.db")
        memory = InMemoryEventStore()
        self.stores: list[EventStore] = [memory, sqlite, postgres]
        self.projectors = [
            Projector(memory, InMemoryProjectionRepository()),
            Projector(sqlite, SqlProjectionRepository(sqlite.engine)),
            Projector(postgres, SqlProjectionRepository(postgres.engine)),
        ]
        self.tick = itertools.count(1)
        self.patient_count = itertools.count(1)

    def teardown(self) -> None:
        for store in self.stores[1:]:
            assert isinstance(store, SqlEventStore)
            store.close()

    def _event(self, kind: str, patient: str, **fields: Any) -> dict[str, Any]:
        when = (T0 + timedelta(hours=next(self.tick))).isoformat()
        return {
            "event_type": kind, "schema_version": 1, "event_id": str(uuid.uuid4()),
            "trial_id": "SPARKLE-L", "site_id": "S1", "patient_id": patient,
            "reporter": "hypothesis", "occurred_at": when, "recorded_at": when, **fields,
        }  # fmt: skip

    def _submit(self, *events: dict[str, Any]) -> list[str]:
        body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
        outcomes = []
        for store in self.stores:
            report = ingest(
                store, read_ndjson(io.BytesIO(body)), InputFormat.NDJSON,
                ctcae_dictionary(), "hypothesis", None,
            )  # fmt: skip
            outcomes.append([(o.status, o.position) for o in report.outcomes])
        assert outcomes[0] == outcomes[1] == outcomes[2]
        return [status for status, _ in outcomes[0]]

    @rule(target=patients)
    def enrol(self) -> str:
        patient = f"P{next(self.patient_count)}"
        self._submit(
            self._event("patient.enrolled", patient, consent_date="2025-12-31",
                        planned_modalities=["chemotherapy", "immunotherapy"]),
            self._event("treatment.administered", patient, treatment=FOLFOX_CYCLE_1),
        )  # fmt: skip
        return patient

    @rule(target=aes, patient=patients, term=st.sampled_from(TERMS),
          grade=st.integers(1, 5), ct=ATTRIBUTION, it=ATTRIBUTION)  # fmt: skip
    def report(self, patient: str, term: tuple[str, int], grade: int, ct: str, it: str) -> str:
        event = self._event(
            "ae.reported", patient, ctcae_version="5.0", ctcae_term=term[0],
            meddra_code=term[1], grade=grade,
            onset_date=(T0 + timedelta(hours=next(self.tick) - 1)).date().isoformat(),
            seriousness=["death"] if grade == 5 else [], expectedness="expected",
            immune_related=False,
            attribution={"radiotherapy": "unrelated", "chemotherapy": ct, "immunotherapy": it},
            action_taken="dose_not_changed",
        )  # fmt: skip
        event["onset_date"] = event["occurred_at"][:10]
        self._submit(event)
        return f"{patient}|{event['event_id']}"

    @rule(ae=aes, grade=st.integers(1, 5), ct=ATTRIBUTION)
    def update(self, ae: str, grade: int, ct: str) -> None:
        patient, ae_id = ae.split("|")
        attribution = {
            "radiotherapy": "unrelated",
            "chemotherapy": ct,
            "immunotherapy": "unlikely",
        }
        self._submit(self._event("ae.updated", patient, ae_id=ae_id, grade=grade,
                                 seriousness=["death"] if grade == 5 else [],
                                 attribution=attribution, reason="re-graded"))  # fmt: skip

    @rule(ae=aes)
    def resolve(self, ae: str) -> None:
        patient, ae_id = ae.split("|")
        event = self._event("ae.resolved", patient, ae_id=ae_id, outcome="recovered",
                            end_date="2026-01-01")  # fmt: skip
        event["end_date"] = event["occurred_at"][:10]
        self._submit(event)

    @rule(ae=aes)
    def retract(self, ae: str) -> None:
        patient, ae_id = ae.split("|")
        self._submit(self._event("ae.retracted", patient, ae_id=ae_id, reason="entered in error"))

    @rule(ae=aes)
    def resend_a_report_twice_in_one_batch(self, ae: str) -> None:
        patient, _ = ae.split("|")
        event = self._event("lab.resulted", patient, test="ALT", value=50.0, unit="U/L", uln=40.0)
        assert self._submit(event, event) == ["stored", "duplicate"]

    @invariant()
    def projections_agree(self) -> None:
        for projector in self.projectors:
            projector.catch_up()
        states = [p.state for p in self.projectors]
        assert states[0] == states[1] == states[2]
        rebuilt, _, _ = replay(self.stores[0], InMemoryProjectionRepository())
        assert rebuilt == states[0]

    @invariant()
    def every_backend_holds_the_same_log(self) -> None:
        heads = [store.head() for store in self.stores]
        assert heads[0] == heads[1] == heads[2]


def make_machine(sqlite_dir: Path, postgres_url: str) -> type[RuleBasedStateMachine]:
    return type("Backends", (_Backends,), {"sqlite_dir": sqlite_dir, "postgres_url": postgres_url})


def test_backends_agree_under_random_histories(tmp_path: Path, postgres_url: str) -> None:
    machine = make_machine(tmp_path, postgres_url)
    run_state_machine_as_test(
        machine, settings=settings(max_examples=15, stateful_step_count=25, deadline=None)
    )
