"""One worker with every stage against a bare aiokafka consumer, and produce-to-alert latency.

    python benchmarks/distributed_throughput.py [--kafka 127.0.0.1:19092] [--db URL]
        [--patients 600] [--probes 50]

Needs the development broker (deploy/kafka/kafka.sh start). Prints:
  baseline    a bare aiokafka consumer reading the submissions topic (records/s)
  worker      one `safety-stream worker` taking the same records through every stage:
              validate, append to the audit store, project, monitor, publish (records/s,
              from its first record taken to the last one projected), and the ratio
  latency     p50 / p99 from producing an AE that crosses a rule (acks=all) to its alert
              arriving on the alerts topic, against a produce-only round trip as baseline
The store is a fresh SQLite file unless --db names an (empty) database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from alert_latency import event, plan_file, setup
from kafka import KafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from distributed import kafka_settings, produce, progress, start_worker, wait_until_done

from safety_stream.kafka.config import KafkaSettings
from safety_stream.kafka.producer import SubmissionProducer
from safety_stream.kafka.topics import Topics
from safety_stream.simulate import simulate
from safety_stream.simulate.rates import scenario
from safety_stream.validation.records import RawRecord


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


def throughput(bootstrap: str, db: str, patients: int, workdir: Path) -> None:
    settings = kafka_settings(bootstrap)
    records = simulate(scenario("default", patients=patients, seed=3))
    produce(settings, records)
    base = asyncio.run(bare_consumer(settings, len(records)))
    print(f"{len(records)} simulated submissions")
    print(f"{'bare aiokafka consumer (baseline)':<36} {base:>9,.0f} records/s  ratio 1.00")
    worker = start_worker(settings, db, workdir, "throughput")
    try:
        while (first := progress(db, settings))["taken"] == 0:
            time.sleep(0.05)
        started = time.perf_counter()
        wait_until_done(db, settings, len(records), timeout=1800)
        seconds = time.perf_counter() - started
    finally:
        worker.stop()
    rate = (len(records) - first["taken"]) / seconds
    print(f"{'one worker, every stage':<36} {rate:>9,.0f} records/s  ratio {rate / base:.3f}")


def await_alert(alerts: KafkaConsumer, kind: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for batch in alerts.poll(timeout_ms=50).values():
            if any(json.loads(m.value)["kind"] == kind for m in batch):
                return
    raise SystemExit(f"no {kind} alert within {timeout} s: see the worker's log")


def latency(bootstrap: str, probes: int, workdir: Path) -> None:
    settings = kafka_settings(bootstrap)
    db = f"sqlite:///{workdir / 'latency.db'}"
    worker = start_worker(settings, db, workdir, "latency", plan_file(workdir))
    producer = SubmissionProducer(settings, client_id="bench")
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
            await_alert(alerts, "boundary.cleared")
    finally:
        alerts.close()
        producer.close()
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
    parser.add_argument("--db", help="an empty database (default: a SQLite file)")
    parser.add_argument("--patients", type=int, default=600)
    parser.add_argument("--probes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        throughput(
            args.kafka, args.db or f"sqlite:///{workdir / 'bench.db'}", args.patients, workdir
        )
        latency(args.kafka, args.probes, workdir)


if __name__ == "__main__":
    main()
