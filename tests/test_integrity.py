"""No stored event stops the runtime; a failed projection save loses nothing; a full disk is a
503 to retry. Each runs through the API and the stores as ``serve`` runs them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from trial_builder import NEUTROPENIA, Trial

from safety_stream.api.app import create_app
from safety_stream.cli import main
from safety_stream.events import EventBase, decode_object, encode_json
from safety_stream.projections import projector as projector_module
from safety_stream.projections.projector import replay
from safety_stream.projections.state import apply as real_apply
from safety_stream.runtime import build_runtime
from safety_stream.settings import Settings
from safety_stream.store.projection_memory import InMemoryProjectionRepository
from safety_stream.store.sql import SqlEventStore
from safety_stream.ticking import Ticker


class Served:
    """The runtime ``serve`` builds on a SQLite file, with the API in front of it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.runtime = build_runtime(Settings(db=url))
        self.client = TestClient(create_app(self.runtime), raise_server_exceptions=False)
        name = f"admin-{uuid.uuid4().hex[:8]}"
        self.admin = self.runtime.credentials.add(name, "admin", None)

    def post(self, events: list[EventBase]) -> Any:
        body = "\n".join(encode_json(e) for e in events).encode()
        return self.client.post(
            "/v1/events",
            content=body,
            headers={
                "Authorization": f"Bearer {self.admin}",
                "Content-Type": "application/x-ndjson",
            },
        )

    def health(self) -> Any:
        return self.client.get("/healthz", headers={"Authorization": f"Bearer {self.admin}"})

    def restart(self) -> None:
        self.runtime.close()
        self.__init__(self.url)  # type: ignore[misc]


@pytest.fixture
def served(sqlite_url: str) -> Iterator[Served]:
    running = Served(sqlite_url)
    yield running
    running.runtime.close()


def two_patients() -> Trial:
    trial = Trial()
    for patient in ("P1", "P2"):
        trial.enrol(patient, day=0)
        trial.treat(patient, "chemotherapy", day=1)
    return trial


def at_the_end_of_the_calendar(event: EventBase) -> EventBase:
    """``event`` with every date and time moved to 9999-12-31 (as a store written before the
    future-date check could hold it)."""
    document = json.loads(encode_json(event))
    for key, value in document.items():
        if key in ("occurred_at", "recorded_at"):
            document[key] = "9999-12-31T23:59:59Z"
        elif key.endswith("_date") and isinstance(value, str):
            document[key] = "9999-12-31"
    return decode_object(document)


def test_events_dated_at_the_end_of_the_calendar_never_stop_serve_replay_or_report(
    sqlite_url: str, tmp_path: Path
) -> None:
    poison = Trial()
    poison.enrol("P9", day=0)
    poison.treat("P9", "chemotherapy", day=1)
    poison.ae("P9", 2, *NEUTROPENIA, grade=3, ct="probable")
    store = SqlEventStore.create(sqlite_url)
    with store.write() as session:  # stored as is: no validation between it and the log
        for stored in poison.events:
            session.append(at_the_end_of_the_calendar(stored))
    store.close()

    served = Served(sqlite_url)  # serve's start-up folds the log
    try:
        later = two_patients()
        later.ae("P1", 2, *NEUTROPENIA, grade=3, ct="probable")
        assert served.post(later.events).status_code == 201
        health = served.health()
        assert (health.status_code, health.json()["status"]) == (200, "ok")
        state = served.runtime.projector.state
        assert state.position == served.runtime.store.head() == 3 + len(later.events)
        assert {"P1", "P2", "P9"} <= set(state.patients)
        assert served.runtime.monitor.quarantined == {}  # the window arithmetic saturates
    finally:
        served.runtime.close()
    assert main(["replay", "--db", sqlite_url]) == 0
    report = tmp_path / "report.html"
    cutoff = ["--cutoff", "2026-11-30", "--snapshot", "9999-12-30T00:00:00Z"]
    assert main(["report", "--db", sqlite_url, "--out", str(report), *cutoff]) == 0
    assert report.stat().st_size > 0


def test_an_event_the_fold_cannot_process_is_quarantined_and_the_fold_goes_on(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    trial = two_patients()
    poison_id = trial.ae("P1", 2, *NEUTROPENIA, grade=3, ct="probable")
    trial.ae("P2", 2, *NEUTROPENIA, grade=3, ct="probable")

    def failing_apply(state: Any, event: EventBase, position: int) -> Any:
        if str(event.event_id) == poison_id:
            raise KeyError("P1")  # an error whose message names the patient
        return real_apply(state, event, position)

    monkeypatch.setattr(projector_module, "apply", failing_apply)
    assert served.post(trial.events).status_code == 201
    runtime = served.runtime
    position = next(s.position for s in runtime.store.read() if str(s.event_id) == poison_id)
    assert sorted(runtime.monitor.quarantined) == [position]
    assert runtime.projector.state.position == runtime.store.head()  # the fold went on
    assert [a.patient_id for a in runtime.projector.state.aes.values()] == ["P2"]

    health = served.health().json()
    assert (health["status"], health["quarantined"]) == ("degraded", 1)
    alerts = [
        d.event for d in runtime.derived.derived_events() if d.event.kind == "event.quarantined"
    ]
    assert [(a.caused_by, a.severity, a.details["step"]) for a in alerts] == [
        (position, "critical", "apply")
    ]
    assert "KeyError" in alerts[0].details["error"] and "P1" not in json.dumps(
        alerts[0].model_dump(mode="json")
    )  # the message is left out: it may quote the event
    page = served.client.get("/board", headers={"Authorization": f"Bearer {served.admin}"})
    assert "1 stored event could not be monitored" in page.text
    metrics = served.client.get("/metrics", headers={"Authorization": f"Bearer {served.admin}"})
    assert "safety_stream_quarantined_events 1.0" in metrics.text

    served.restart()  # the restarted monitor knows it again, and derives nothing twice
    assert sorted(served.runtime.monitor.quarantined) == [position]
    again = [
        d for d in served.runtime.derived.derived_events() if d.event.kind == "event.quarantined"
    ]
    assert len(again) == 1


def test_a_failed_projection_save_is_folded_again_not_skipped(served: Served) -> None:
    trial = two_patients()
    assert served.post(trial.events[:2]).status_code == 201  # P1 enrolled and treated
    engine = served.runtime.store.engine  # type: ignore[attr-defined]
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER fail_save BEFORE INSERT ON projection_docs "
                "BEGIN SELECT RAISE(ABORT, 'I/O error'); END"
            )
        )
    ae = Trial()
    ae.ae("P1", 2, *NEUTROPENIA, grade=3, ct="probable")
    stored = served.post(ae.events)
    assert stored.status_code == 201  # in the log, durable: acknowledged
    with pytest.raises(SQLAlchemyError):
        served.runtime.projector.checkpoint()  # as the ticker's next checkpoint would
    failing = served.health()
    assert failing.status_code == 503 and "projection" in failing.json()["problems"][0]
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER fail_save"))
    assert served.post(trial.events[2:]).status_code == 201  # P2: the next save
    assert served.health().json()["status"] == "ok"

    served.restart()
    state = served.runtime.projector.state
    assert [a.patient_id for a in state.aes.values()] == ["P1"]  # the AE of the failed save
    clean, _, _ = replay(served.runtime.store, InMemoryProjectionRepository())
    assert state.patients == clean.patients and state.aes == clean.aes
    assert state.position == clean.position == served.runtime.store.head()


def test_a_full_disk_is_a_503_to_retry_and_nothing_of_the_request_is_kept(
    served: Served,
) -> None:
    trial = two_patients()
    assert served.post(trial.events[:2]).status_code == 201
    engine = served.runtime.store.engine  # type: ignore[attr-defined]
    limit = {"pages": 0}

    @event.listens_for(engine, "connect")
    def cap(connection: Any, _record: Any) -> None:
        if limit["pages"]:
            connection.execute(f"PRAGMA max_page_count = {limit['pages']}")

    with engine.connect() as connection:
        limit["pages"] = connection.execute(text("PRAGMA page_count")).scalar_one()
    engine.dispose()  # new connections: each gets the cap
    big = Trial()
    for number in range(300):
        big.enrol(f"Q{number}", day=0)
    head = served.runtime.store.head()
    full = served.post(big.events)
    assert full.status_code == 503 and full.headers["Retry-After"] == "60"
    assert "disk is full" in full.json()["detail"]
    assert served.runtime.store.head() == head
    assert served.client.get("/healthz").status_code == 503

    limit["pages"] = 0
    engine.dispose()
    assert served.post(big.events).status_code == 201  # the client's retry
    assert served.client.get("/healthz").json()["status"] == "ok"
    assert served.runtime.store.head() == head + 300


def test_serve_writes_a_signed_checkpoint_of_the_head_periodically(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    settings = Settings(
        db=sqlite_url,
        checkpoint_key="a-checkpoint-key-of-some-length",
        checkpoint_file=checkpoint,
        checkpoint_seconds=0.05,
    )
    runtime = build_runtime(settings)
    ticker = Ticker(runtime, seconds=0.02)
    try:
        with runtime.store.write() as session:
            for stored in two_patients().events:
                session.append(stored)
        ticker.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if checkpoint.exists() and json.loads(checkpoint.read_text())["position"] == 4:
                break
            time.sleep(0.05)
    finally:
        ticker.stop()
        runtime.close()
    written = json.loads(checkpoint.read_text())
    assert written["position"] == 4 and written["hmac"]
    monkeypatch.setenv("SAFETY_STREAM_CHECKPOINT_KEY", "a-checkpoint-key-of-some-length")
    assert main(["verify", "--db", sqlite_url, "--checkpoint", str(checkpoint)]) == 0
