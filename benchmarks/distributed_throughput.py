"""One worker with every stage against the library doing the same work, and produce-to-alert
latency.

    python benchmarks/distributed_throughput.py [--kafka 127.0.0.1:19092] [--postgres URL]
        [--patients 600] [--rounds 1] [--probes 50] [--no-latency] [--keep DIR]

Needs the development broker (deploy/kafka/kafka.sh start). Prints:
  consumer    a bare aiokafka consumer reading the submissions topic (records/s): Kafka's
              own ceiling, for scale
  library     the same records through `safety_stream.ingest.ingest` + `Projector.follow`, in
              this process, in transactions of the worker's batch size, on a fresh store of the
              same kind (the target: the worker at >= 0.8 x this)
  worker      one `safety-stream worker` taking the same records through every stage:
              validate, append to the audit store, project, monitor, publish (records/s,
              from its first record taken to the last one projected and saved), and its
              ratio to the library
  CPU         for the library and the worker: the CPU seconds their process used over the
              timed span (every thread), per record, and for the worker how many cores that
              is (one Python process holds the GIL on at most one core at a time)
  latency     p50 / p99 from producing an AE that crosses a rule (acks=all) to its alert
              arriving on the alerts topic, against a produce-only round trip as baseline
Every store is a fresh SQLite file, or with ``--postgres URL`` (a server's admin database) a
fresh database created on that server and dropped afterwards. ``--rounds N`` measures N times,
each round on new topics and stores (the figures are noisy on a shared machine: compare the
ratios). ``--keep DIR`` leaves the stores and the workers' logs in DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from alert_latency import event, plan_file, setup
from kafka import KafkaConsumer
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from distributed import kafka_settings, produce, progress_of, start_worker

from processors.app import BATCH
from safety_stream.ctcae import ctcae_dictionary
from safety_stream.events import DsmbDecision
from safety_stream.governance import record_decision
from safety_stream.ingest import ingest
from safety_stream.kafka.config import KafkaSettings
from safety_stream.kafka.producer import SubmissionProducer
from safety_stream.kafka.topics import Topics
from safety_stream.runtime import build_runtime
from safety_stream.settings import Settings
from safety_stream.simulate import SimulatedRecord, simulate
from safety_stream.simulate.rates import scenario
from safety_stream.store.sql import SqlEventStore
from safety_stream.validation.records import InputFormat, RawRecord


async def bare_consumer(settings: KafkaSettings, count: int) -> float:
    consumer = AIOKafkaConsumer(
        Topics.of(settings).submissions, group_id=f"bare-{time.time()}",
        auto_offset_reset="earliest", **settings.client_options(),
    )  # fmt: skip
    await consumer.start()
    try:
        seen, started = 0, None
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if started is None and batches:
                started = time.perf_counter()
            seen += sum(len(b) for b in batches.values())
        assert started is not None
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


class Stores:
    """Fresh, empty stores: SQLite files in ``workdir``, or databases on a PostgreSQL server."""

    def __init__(self, workdir: Path, postgres: str | None) -> None:
        self.workdir, self.postgres = workdir, postgres
        self._made: list[str] = []

    def new(self, name: str) -> str:
        if self.postgres is None:
            return f"sqlite:///{self.workdir / f'{name}.db'}"
        database = f"bench_{name}_{uuid.uuid4().hex[:8]}"
        with self._admin().connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        self._made.append(database)
        return self.postgres.rsplit("/", 1)[0] + "/" + database

    def _admin(self) -> Any:
        assert self.postgres is not None
        url = self.postgres.replace("postgresql://", "postgresql+psycopg://")
        return create_engine(url, isolation_level="AUTOCOMMIT")

    def drop(self) -> None:
        if self._made:
            with self._admin().connect() as connection:
                for database in self._made:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def library(records: list[SimulatedRecord], db: str) -> tuple[float, float]:
    """Records/s of the library's ingest + Projector.follow in transactions of the worker's
    batch size, until the projection is saved (the worker is timed to its saved projection),
    and the CPU seconds this process used meanwhile."""
    runtime = build_runtime(Settings(db=db))
    try:
        raw = [RawRecord(str(i), r.body) for i, r in enumerate(records)]
        trial = runtime.plan.trial.id
        cpu = time.process_time()
        started = time.perf_counter()
        for start in range(0, len(raw), BATCH):
            report = ingest(
                runtime.store, raw[start : start + BATCH], InputFormat.NDJSON, runtime.ctcae,
                "library", None, trial_id=trial,
            )  # fmt: skip
            runtime.projector.follow(report.appended)
        runtime.projector.checkpoint()
        return len(records) / (time.perf_counter() - started), time.process_time() - cpu
    finally:
        runtime.close()


def done(now: dict[str, int], count: int) -> bool:
    """Every record taken, projected and saved, and its derived events planned."""
    return (
        now["taken"] >= count
        and now["projected"] == now["head"]
        and (now["planned"] == now["derived"])
    )


def worker_rate(
    settings: KafkaSettings, db: str, count: int, workdir: Path, name: str
) -> tuple[float, float]:
    """Records/s of one worker from its first record taken to the last one projected (the
    store is polled over one open connection: reopening it for each poll cost ~20 ms of CPU
    every 50 ms, taken from the worker on a 2-core machine), and the CPU seconds per record
    the worker process used meanwhile."""
    worker = start_worker(settings, db, workdir, name)
    store = SqlEventStore.open(db)
    try:
        while (first := progress_of(store, settings))["taken"] == 0:
            time.sleep(0.02)
        cpu = cpu_seconds(worker.process.pid)
        started = time.perf_counter()
        while not done(progress_of(store, settings), count):
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        cpu = cpu_seconds(worker.process.pid) - cpu
    finally:
        store.close()
        worker.stop()
    return (count - first["taken"]) / seconds, cpu / (count - first["taken"])


def throughput(bootstrap: str, stores: Stores, patients: int, rounds: int, workdir: Path) -> None:
    records = simulate(scenario("default", patients=patients, seed=3))
    print(f"{len(records)} simulated submissions, {rounds} round(s)")
    for n in range(1, rounds + 1):
        settings = kafka_settings(bootstrap)
        produce(settings, records)
        base = asyncio.run(bare_consumer(settings, len(records)))
        lib, lib_cpu = library(records, stores.new(f"library{n}"))
        rate, per = worker_rate(settings, stores.new(f"worker{n}"), len(records), workdir, f"w{n}")
        print(f"round {n}")
        print(f"  {'bare aiokafka consumer (scale)':<40} {base:>9,.0f} records/s")
        print(f"  {'library ingest + follow (baseline)':<40} {lib:>9,.0f} records/s  ratio 1.00"
              f"  CPU {lib_cpu:.1f} s ({lib_cpu / len(records) * 1e6:.0f} us/record)")  # fmt: skip
        print(f"  {'one worker, every stage':<40} {rate:>9,.0f} records/s  ratio {rate / lib:.3f}"
              f"  CPU {per * 1e6:.0f} us/record ({per * rate:.2f} cores)")  # fmt: skip


def await_alert(alerts: KafkaConsumer, kind: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for batch in alerts.poll(timeout_ms=50).values():
            if any(json.loads(m.value)["kind"] == kind for m in batch):
                return
    raise SystemExit(f"no {kind} alert within {timeout} s: see the worker's log")


def release(store: SqlEventStore) -> None:
    """Record a DSMB decision on the benchmark's rule in the worker's store (decisions are not
    posted as data), so that its next crossing is a new one; the worker folds it from the log
    at its next wake-up."""
    decision = DsmbDecision.model_validate(
        event(
            "dsmb.decision",
            site_id="DSMB",
            patient_id="DSMB",
            answers=["chemo-fast"],
            outcome="continue_unchanged",
            rationale="benchmark",
            decided_by="bench",
        )
    )
    record_decision(store, ctcae_dictionary(), decision, "bench")


def latency(bootstrap: str, stores: Stores, probes: int, workdir: Path) -> None:
    settings = kafka_settings(bootstrap)
    db = stores.new("latency")
    worker = start_worker(settings, db, workdir, "latency", plan_file(workdir))
    producer = SubmissionProducer(settings, client_id="bench")
    store = SqlEventStore.open(db)
    alerts = KafkaConsumer(
        Topics.of(settings).alerts, auto_offset_reset="latest", **settings.client_options()
    )
    try:
        alerts.poll(timeout_ms=2000)  # joined, positioned at the end

        def send(document: dict[str, Any]) -> None:
            producer.send([RawRecord("probe", json.dumps(document).encode())], "bench")

        for doc in setup():
            send(doc)
        baseline, measured = [], []
        for _ in range(probes):
            report = event("ae.reported", **AE)
            started = time.perf_counter()
            send(report)
            baseline.append(time.perf_counter() - started)
            await_alert(alerts, "boundary.crossed")
            measured.append(time.perf_counter() - started)
            send(event("ae.retracted", ae_id=report["event_id"], reason="benchmark"))
            release(store)  # a crossing stays crossed until the DSMB decides
            await_alert(alerts, "boundary.cleared")
    finally:
        alerts.close()
        producer.close()
        store.close()
        worker.stop()
    for name, values in (
        ("produce, acks=all (baseline)", baseline),
        ("produce -> alert on topic", measured),
    ):
        p50, p99 = statistics.median(values), statistics.quantiles(values, n=100)[98]
        print(f"{name:<36} p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms")


AE = {
    "ctcae_version": "5.0", "ctcae_term": "Neutrophil count decreased", "meddra_code": 10029366,
    "grade": 3, "onset_date": "2026-01-05", "seriousness": [], "expectedness": "expected",
    "immune_related": False, "action_taken": "dose_not_changed",
    "attribution": {"radiotherapy": "unrelated", "chemotherapy": "probable",
                    "immunotherapy": "unrelated"},
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kafka", default="127.0.0.1:19092")
    parser.add_argument("--postgres", help="a PostgreSQL server's URL (default: SQLite files)")
    parser.add_argument("--patients", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--keep", type=Path, help="leave the stores and logs in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        stores = Stores(workdir, args.postgres)
        try:
            throughput(args.kafka, stores, args.patients, args.rounds, workdir)
            if not args.no_latency:
                latency(args.kafka, stores, args.probes, workdir)
        finally:
            stores.drop()


if __name__ == "__main__":
    main()
