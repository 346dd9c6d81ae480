"""Store and projection throughput on SQLite, against pydantic validation in the same run.

    python benchmarks/store_throughput.py [--events 100000] [--batch 500] [--rounds 3]

Prints events/s for:
  baseline  pydantic validation of the events (the tagged union's validate_json)
  ingest    library-level ingest into a SQLite file: validate + append (one transaction per
            batch), then the projector follows each committed batch
  append    append + project of already validated events (no validation), same batches
  ceiling   the storage limit: bare ``sqlite3`` inserting the same rows (payload JSON, SHA-256
            payload digest and chain link computed per row, the same indexes), WAL,
            synchronous=FULL, one commit per batch; append + project is compared with it
  replay    rebuilding the projection from the whole log
and the ratios of ingest and replay to the baseline. The ceiling and append + project are
measured ``--rounds`` times, alternately, each on a new file, and compared best to best: on a
shared machine a round can lose half its speed to a neighbour, and alternating keeps one side
from having all the quiet moments. The inputs are frozen out of the garbage collector's walks
(gc.freeze), as the projector freezes its long-lived state: they are the benchmark's, not the
system's.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.events import EventBase, decode_json, encode_json, event_adapter
from safety_stream.events.hashing import GENESIS, chain_hash, payload_hash
from safety_stream.ingest import ingest
from safety_stream.projections.projector import Projector, replay
from safety_stream.store.projection_sql import SqlProjectionRepository
from safety_stream.store.sql import SqlEventStore
from safety_stream.synthetic import make_events
from safety_stream.validation.records import InputFormat, read_ndjson


def bare_sqlite_append(path: Path, events: Sequence[EventBase], batch: int) -> float:
    """Events/s of the same rows appended with nothing but ``sqlite3`` (the storage ceiling):
    the events table's own DDL and indexes, each row's payload digested and chained (the
    payloads' JSON is made before the clock starts: the ceiling is the storage's)."""
    store = SqlEventStore.create(f"sqlite:///{path}")  # only to create the same schema
    store.close()
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    insert = f"INSERT INTO events VALUES ({', '.join('?' * 14)})"
    chain, position, versions = GENESIS, 0, dict[tuple[str, str], int]()
    payloads = [encode_json(event) for event in events]
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        rows = []
        for event, payload in zip(
            events[start : start + batch], payloads[start : start + batch], strict=True
        ):
            position += 1
            digest = payload_hash(payload)
            now = datetime.now(UTC)
            chain = chain_hash(chain, position, event.event_id, digest, now)
            stream = (event.trial_id, event.patient_id)
            versions[stream] = versions.get(stream, 0) + 1
            rows.append(
                (
                    position, event.event_id.hex, event.event_type, event.schema_version,
                    event.trial_id, event.site_id, event.patient_id, versions[stream],
                    event.occurred_at.isoformat(), event.recorded_at.isoformat(),
                    now.isoformat(), payload, digest, chain,
                )
            )  # fmt: skip
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(insert, rows)
        connection.execute("COMMIT")
    rate = len(events) / (time.perf_counter() - started)
    connection.close()
    return rate


def append_and_project(path: Path, events: Sequence[EventBase], batch: int) -> float:
    """Events/s of the library's append + projection of already validated events, in the
    ceiling's batches: one write transaction per batch, then the projector follows it."""
    store = SqlEventStore.create(f"sqlite:///{path}")
    projector = Projector(store, SqlProjectionRepository(store.engine))
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        now = datetime.now(UTC)
        with store.write() as session:
            session.prefetch({e.event_id for e in chunk}, set(), {e.patient_id for e in chunk})
            results = [(session.append(e), e) for e in chunk]
            appended = [(r.position, e, r.stored_at or now) for r, e in results]
        projector.follow(appended)
    projector.checkpoint()  # the last documents folded are saved too, and timed
    rate = len(events) / (time.perf_counter() - started)
    store.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    lines = [json.dumps(e).encode() for e in make_events(args.events)]
    gc.freeze()
    adapter = event_adapter()
    started = time.perf_counter()
    for line in lines:
        adapter.validate_json(line)
    base_rate = len(lines) / (time.perf_counter() - started)
    print(f"{len(lines)} events")
    print(f"{'pydantic validation (baseline)':<34} {base_rate:>10,.0f} events/s  ratio 1.00")

    with tempfile.TemporaryDirectory() as tmp:
        store = SqlEventStore.create(f"sqlite:///{Path(tmp) / 'bench.db'}")
        projector = Projector(store, SqlProjectionRepository(store.engine))
        ctcae = ctcae_dictionary()
        started = time.perf_counter()
        for start in range(0, len(lines), args.batch):
            body = b"\n".join(lines[start : start + args.batch])
            report = ingest(
                store, read_ndjson(io.BytesIO(body)), InputFormat.NDJSON, ctcae, "bench", None
            )
            assert report.count("stored") == len(report.outcomes)
            projector.follow(report.appended)
        seconds = time.perf_counter() - started
        rate = len(lines) / seconds
        print(f"{'ingest + project (SQLite, batches)':<34} {rate:>10,.0f} events/s  ratio "
              f"{rate / base_rate:.2f}")  # fmt: skip
        events = [decode_json(line) for line in lines]
        gc.freeze()
        ceilings, rates = [], []
        for round_ in range(args.rounds):
            ceilings.append(bare_sqlite_append(Path(tmp) / f"bare{round_}.db", events, args.batch))
            rates.append(append_and_project(Path(tmp) / f"append{round_}.db", events, args.batch))
            print(f"  round {round_ + 1}: ceiling {ceilings[-1]:,.0f}, append + project "
                  f"{rates[-1]:,.0f} events/s ({rates[-1] / ceilings[-1]:.2f})")  # fmt: skip
        ceiling, rate = max(ceilings), max(rates)
        print(f"{'bare sqlite3 append (ceiling)':<34} {ceiling:>10,.0f} events/s  (best of "
              f"{args.rounds})")  # fmt: skip
        print(f"{'append + project (pre-validated)':<34} {rate:>10,.0f} events/s  ratio "
              f"{rate / base_rate:.2f}; {rate / ceiling:.2f} of the ceiling (best of "
              f"{args.rounds})")  # fmt: skip

        state, count, seconds = replay(store, SqlProjectionRepository(store.engine))
        rate = count / seconds
        print(f"{'replay (SQLite)':<34} {rate:>10,.0f} events/s  ratio {rate / base_rate:.2f}"
              f"  ({seconds:.1f} s; 1,000,000 events would take ~{1e6 / rate:.0f} s)")  # fmt: skip
        assert state == projector.state
        store.close()


if __name__ == "__main__":
    main()
