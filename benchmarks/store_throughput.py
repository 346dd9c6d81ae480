"""Store and projection throughput on SQLite, against pydantic validation in the same run.

    python benchmarks/store_throughput.py [--events 100000] [--batch 500]

Prints events/s for:
  baseline  pydantic validation of the events (the tagged union's validate_json)
  ingest    library-level ingest into a SQLite file: validate + append (one transaction per
            batch), then the projector follows each committed batch
  append    append + project of already validated events (no validation), same batches
  replay    rebuilding the projection from the whole log
and the ratios of ingest and replay to the baseline.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.events import decode_json, event_adapter
from safety_stream.ingest import ingest
from safety_stream.projections.projector import Projector, replay
from safety_stream.store.projection_sql import SqlProjectionRepository
from safety_stream.store.sql import SqlEventStore
from safety_stream.synthetic import make_events
from safety_stream.validation.records import InputFormat, read_ndjson


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    lines = [json.dumps(e).encode() for e in make_events(args.events)]
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
        store2 = SqlEventStore.create(f"sqlite:///{Path(tmp) / 'bench2.db'}")
        projector2 = Projector(store2, SqlProjectionRepository(store2.engine))
        started = time.perf_counter()
        for start in range(0, len(events), args.batch):
            batch = events[start : start + args.batch]
            now = datetime.now(UTC)
            with store2.write() as session:
                session.prefetch({e.event_id for e in batch}, set(), {e.patient_id for e in batch})
                results = [(session.append(e), e) for e in batch]
                appended = [(r.position, e, r.stored_at or now) for r, e in results]
            projector2.follow(appended)
        rate = len(events) / (time.perf_counter() - started)
        print(f"{'append + project (pre-validated)':<34} {rate:>10,.0f} events/s  ratio "
              f"{rate / base_rate:.2f}")  # fmt: skip
        store2.close()

        state, count, seconds = replay(store, SqlProjectionRepository(store.engine))
        rate = count / seconds
        print(f"{'replay (SQLite)':<34} {rate:>10,.0f} events/s  ratio {rate / base_rate:.2f}"
              f"  ({seconds:.1f} s; 1,000,000 events would take ~{1e6 / rate:.0f} s)")  # fmt: skip
        assert state == projector.state
        store.close()


if __name__ == "__main__":
    main()
