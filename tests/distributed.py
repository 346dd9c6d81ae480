"""Running the distributed runtime for tests and benchmarks: worker processes, producing a
simulated trial to Kafka, and the outcome (projections, derived events, alerts, dead letters)
of a store, so the embedded and distributed runtimes can be compared field by field."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from realservers import free_port, stop_process
from sqlalchemy import func, select

from safety_stream.alerts.config import default_config
from safety_stream.ingest import ingest
from safety_stream.kafka.config import KafkaSettings
from safety_stream.kafka.producer import SubmissionProducer
from safety_stream.kafka.topics import Topics, ensure_topics
from safety_stream.projections.state import TrialState
from safety_stream.runtime import build_runtime
from safety_stream.settings import Settings
from safety_stream.simulate import SimulatedRecord
from safety_stream.store.outbox_sql import SqlOutbox as Outbox
from safety_stream.store.projection_sql import SqlProjectionRepository
from safety_stream.store.sql import SqlEventStore
from safety_stream.store.tables import DerivedEventRow, ProjectionPositionRow, SourceOffsetRow
from safety_stream.validation.records import InputFormat, RawRecord


@dataclass
class Outcome:
    """Everything a run leaves in its store that must not depend on the runtime."""

    events: list[tuple[int, str]]  # (position, event id)
    state: TrialState
    derived: list[dict[str, Any]]
    alerts: list[tuple[str, str, tuple[str, ...]]]  # (derived id, severity, channels)
    rejections: list[tuple[bytes, str]]  # (raw record, problems as JSON)


RECEIPT_TIMES = ("received_at", "aware_at", "due", "hours_late")


def conclusion(derived: dict[str, Any]) -> dict[str, Any]:
    """A derived event without what depends on when this run's server received the data (the
    monitoring clock is the server's: two runs of the same log minutes apart differ there)."""
    kept = {key: value for key, value in derived.items() if key != "occurred_at"}
    kept["details"] = {k: v for k, v in derived["details"].items() if k not in RECEIPT_TIMES}
    if derived["kind"].startswith("report."):  # their summaries name due times and delays
        kept.pop("summary")
    return kept


def outcome(db: str) -> Outcome:
    store = SqlEventStore.open(db)
    try:
        projection = SqlProjectionRepository(store.engine)
        outbox = Outbox(store.engine, default_config())
        return Outcome(
            events=[(e.position, str(e.event_id)) for e in store.read()],
            state=projection.load(),
            derived=[
                conclusion(d.event.model_dump(mode="json")) for d in projection.derived_events()
            ],
            alerts=[
                (
                    str(a.alert.derived_id),
                    a.alert.severity,
                    tuple(sorted(d.channel for d in a.deliveries)),
                )
                for a in outbox.alerts()
            ],
            rejections=sorted(
                (r.raw, json.dumps(r.problems, sort_keys=True))
                for r in store.rejections(limit=1_000_000)
            ),
        )
    finally:
        store.close()


def run_embedded(records: list[SimulatedRecord], db: str, batch: int = 100) -> Outcome:
    """The embedded runtime's result: ingest in order, the projector following each commit,
    the outbox planning every derived event."""
    runtime = build_runtime(Settings(db=db))
    try:
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            report = ingest(
                runtime.store,
                [RawRecord(f"record {start + i}", r.body) for i, r in enumerate(chunk)],
                InputFormat.NDJSON,
                runtime.ctcae,
                "embedded",
                None,
            )
            runtime.projector.follow(report.appended)
        runtime.dispatcher.run_once()
    finally:
        runtime.close()
    return outcome(db)


def kafka_settings(bootstrap: str) -> KafkaSettings:
    """Settings with topics of their own (a fresh prefix), created now."""
    settings = KafkaSettings(bootstrap=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}")
    ensure_topics(settings)
    return settings


def produce(settings: KafkaSettings, records: list[SimulatedRecord]) -> None:
    producer = SubmissionProducer(settings, client_id="test-site")
    try:
        for start in range(0, len(records), 500):
            chunk = records[start : start + 500]
            producer.send([RawRecord(f"{start + i}", r.body) for i, r in enumerate(chunk)], "test")
    finally:
        producer.close()


METRICS_TOKEN = "metrics-token-for-the-distributed-tests"


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    port: int

    def metrics(self) -> str:
        return httpx.get(
            f"http://127.0.0.1:{self.port}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=10,
        ).text

    def records_taken(self) -> float:
        """Records this worker's ingest agent has processed (from its /metrics)."""
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in self.metrics().splitlines()
            if line.startswith("safety_stream_ingest_records_total{")
        )

    def assigned(self) -> set[str]:
        """The topic partitions the worker holds ("topic/partition"), from its /healthz."""
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5).json()
        except httpx.HTTPError:
            return set()
        return set(answer.get("assigned", []))

    def kill(self) -> None:
        """SIGKILL: no shutdown, no offset commit, no flush."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (leaves the group, commits offsets)."""
        stop_process(self.process, timeout=60)


def kafka_environment(settings: KafkaSettings) -> dict[str, str]:
    """This process's environment plus the Kafka settings, for a child process."""
    return os.environ | {
        "SAFETY_STREAM_METRICS_TOKEN": METRICS_TOKEN,
        "SAFETY_STREAM_KAFKA__BOOTSTRAP": settings.bootstrap,
        "SAFETY_STREAM_KAFKA__TOPIC_PREFIX": settings.topic_prefix,
    }


def start_worker(
    settings: KafkaSettings, db: str, workdir: Path, name: str = "worker", plan: Path | None = None
) -> WorkerProcess:
    port = free_port()
    directory = workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("safety-stream")), "worker",
        "--db", db, "--web-port", str(port),
        "--data-dir", str(directory / "data"),
    ] + (["--plan", str(plan)] if plan else [])  # fmt: skip
    env = kafka_environment(settings)
    log = (directory / "worker.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=log, cwd=directory, env=env)
    worker = WorkerProcess(process, port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited: {(directory / 'worker.log').read_text()[-3000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return worker
        except httpx.HTTPError:
            time.sleep(0.2)
    worker.stop()
    raise RuntimeError("worker did not answer within 60 s")


def progress(db: str, settings: KafkaSettings) -> dict[str, int]:
    """How far a store is: records taken from the submissions topic, log head, projection
    position, derived events stored and planned as alerts."""
    store = SqlEventStore.open(db)
    try:
        return progress_of(store, settings)
    finally:
        store.close()


def progress_of(store: SqlEventStore, settings: KafkaSettings) -> dict[str, int]:
    """``progress`` of a store kept open: a poll costs a few queries, not opening the store
    (~20 ms, which a benchmark polling every 50 ms took from the worker it measures)."""
    prefix = f"kafka:{Topics.of(settings).submissions}/"

    def position(name: str) -> Any:
        return select(ProjectionPositionRow.position).where(ProjectionPositionRow.name == name)

    with store.engine.connect() as connection:
        offsets = (
            connection.execute(
                select(SourceOffsetRow.offset).where(SourceOffsetRow.source.startswith(prefix))
            )
            .scalars()
            .all()
        )
        return {
            "taken": sum(o + 1 for o in offsets),  # all records of one trial: one partition
            "head": store.head(),
            "projected": connection.execute(position("trial_state")).scalar() or 0,
            "derived": connection.execute(
                select(func.coalesce(func.max(DerivedEventRow.id), 0))
            ).scalar_one(),
            "planned": connection.execute(position("alert-outbox")).scalar() or 0,
        }


def wait_until_done(db: str, settings: KafkaSettings, count: int, timeout: float = 180) -> None:
    """Until ``count`` records are taken, projected, and their derived events planned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = progress(db, settings)
        if (
            now["taken"] >= count
            and now["projected"] == now["head"]
            and now["planned"] == now["derived"]
        ):
            return
        time.sleep(0.5)
    raise AssertionError(f"after {timeout} s: {progress(db, settings)}, {count} records sent")


def wait_until_taken(db: str, settings: KafkaSettings, count: int, timeout: float = 120) -> None:
    """Until at least ``count`` records are taken (to interrupt a worker mid-stream)."""
    deadline = time.monotonic() + timeout
    while progress(db, settings)["taken"] < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s: {progress(db, settings)}")
        time.sleep(0.05)


def wait_until_settled(
    workers: list[WorkerProcess], settings: KafkaSettings, timeout: float = 120
) -> None:
    """Until the workers between them hold every submissions partition once, and still do
    2 s later: a group that has settled, so records produced now are not moved mid-stream."""
    from safety_stream.kafka.topics import Topics

    topic = Topics.of(settings).submissions
    wanted = {f"{topic}/{n}" for n in range(settings.submission_partitions)}
    deadline = time.monotonic() + timeout
    stable_since = None
    while time.monotonic() < deadline:
        held = [{a for a in w.assigned() if a.startswith(f"{topic}/")} for w in workers]
        settled = set().union(*held) == wanted and sum(map(len, held)) == len(wanted)
        if settled and all(held):
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 2:
                return
        else:
            stable_since = None
        time.sleep(0.2)
    raise AssertionError(f"the consumer group did not settle in {timeout} s")
