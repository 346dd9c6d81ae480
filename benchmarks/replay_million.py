"""Replay of a large log on SQLite: the time to rebuild every projection from scratch.

    python benchmarks/replay_million.py [--events 1000000]

Builds the log with the store's own append path (events pre-validated, 10,000 per
transaction), then times ``replay`` (read, decode, fold, write the projection documents).
The baseline is pydantic decoding of the same stored payloads in the same process, which
replay cannot beat since it decodes every event. Target: 1,000,000 events in under 10 s
(a ratio to decoding of about 0.4 on a machine that decodes ~257,000 events/s).

Where the time goes (60,000 events on the 2-core VM: fold ~1.0 s, write ~0.45 s): decoding
every payload (~7 us per event), folding it (~6 us), serialising ~540,000 AE documents per
million events (~4 us each) and SQLite's commit of the whole projection at the end (~300 MB
through its WAL): ~20 us per event on one core, twice the target. Reading the next page and
inserting documents on helper threads was tried and gained nothing (what SQLite does without
the GIL is short; the threads contend for the rest); a fold in several processes cannot serve
the ``replay`` command, whose monitor must see every event in log order.
Measure with ``--events 100000`` and compare ratios, not rates: the decoding baseline is
measured in the same process for that reason.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from safety_stream.events import decode_json, decode_object
from safety_stream.projections.projector import replay
from safety_stream.store.projection_sql import SqlProjectionRepository
from safety_stream.store.sql import SqlEventStore
from safety_stream.synthetic import make_events

CHUNK = 10_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlEventStore.create(f"sqlite:///{Path(tmp) / 'bench.db'}")
        started = time.perf_counter()
        events = make_events(args.events)
        gc.freeze()  # a million dicts the collector need not keep walking
        for start in range(0, len(events), CHUNK):
            chunk = [decode_object(event) for event in events[start : start + CHUNK]]
            with store.write() as session:  # the chunk's lookups answered in a few queries
                session.prefetch({e.event_id for e in chunk}, set(), {e.patient_id for e in chunk})
                for event in chunk:
                    session.append(event)
        del events
        print(f"log of {store.head():,} events built in {time.perf_counter() - started:.0f} s")

        payloads = [payload for _, payload, _ in store.payloads()]
        started = time.perf_counter()
        for payload in payloads:
            decode_json(payload)
        base_rate = len(payloads) / (time.perf_counter() - started)
        del payloads
        print(f"{'decode payloads (baseline)':<28} {base_rate:>9,.0f} events/s  ratio 1.00")

        progress_at = time.perf_counter()

        def progress(count: int, seconds: float) -> None:
            nonlocal progress_at
            if time.perf_counter() - progress_at > 5:
                progress_at = time.perf_counter()
                print(f"  ... {count:,} events, {count / seconds:,.0f}/s", flush=True)

        state, count, seconds = replay(store, SqlProjectionRepository(store.engine), progress)
        rate = count / seconds
        print(f"{'replay (SQLite)':<28} {rate:>9,.0f} events/s  ratio {rate / base_rate:.2f}"
              f"  {count:,} events in {seconds:.1f} s"
              f" ({len(state.patients):,} patients, {len(state.aes):,} AEs)")  # fmt: skip
        store.close()


if __name__ == "__main__":
    main()
