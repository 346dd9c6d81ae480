"""The simulator as a load generator: simulated sites posting through the HTTP site client.

    python benchmarks/simulate_posting.py [--patients 400] [--batch 200]

Starts ``safety-stream serve`` (SQLite, fresh database) in a child process, gives each
simulated site its own token, then posts the seeded trial flat out:
  sites       every site with its own SiteClient, all sites in parallel (the load generator)
  one site    the same records through a single admin client, one request at a time
The baseline, in this process: the same records through the library's ingest into a fresh
SQLite store in batches of the same size (no HTTP, no projection), so the ratio shows what
HTTP, auth, JSON answers and the projector add.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serve_process import start_safety_stream

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.ingest import ingest
from safety_stream.simulate.generator import SimulatedRecord, as_ndjson, simulate
from safety_stream.simulate.posting import SimulatedSites
from safety_stream.simulate.rates import scenario
from safety_stream.store.sql import SqlEventStore
from safety_stream.validation.records import InputFormat, read_ndjson

EXECUTABLE = str(Path(sys.executable).with_name("safety-stream"))


def library_ingest(records: list[SimulatedRecord], db: str, batch: int) -> float:
    store = SqlEventStore.create(db)
    ctcae = ctcae_dictionary()
    started = time.perf_counter()
    for start in range(0, len(records), batch):
        body = as_ndjson(records[start : start + batch])
        ingest(store, read_ndjson(io.BytesIO(body)), InputFormat.NDJSON, ctcae,
               source="benchmark", site_id=None)  # fmt: skip
    seconds = time.perf_counter() - started
    store.close()
    return len(records) / seconds


def served_rate(records: list[SimulatedRecord], workdir: Path, batch: int, per_site: bool) -> float:
    db = f"sqlite:///{workdir / 'served.db'}"
    server = start_safety_stream(db, workdir)
    try:
        sites = sorted({r.site_id for r in records})
        if per_site:
            tokens = {}
            for site in sites:
                out = subprocess.run([EXECUTABLE, "sites", "add", site, "--db", db],
                                     check=True, capture_output=True, text=True).stdout  # fmt: skip
                tokens[site] = out.splitlines()[-1]
            posting = SimulatedSites(server.url, tokens)
            stats = posting.run(records, None, batch_size=batch)
            posting.close()
        else:
            posting = SimulatedSites(server.url, {"all": server.token})
            relabelled = [SimulatedRecord(r.sent_at, "all", r.body, r.valid) for r in records]
            stats = posting.run(relabelled, None, batch_size=batch)
            posting.close()
        assert stats.stored == sum(r.valid for r in records), stats
        return stats.records_per_second
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    records = simulate(scenario("default", patients=args.patients, seed=11))
    print(f"{len(records):,} submissions ({args.patients} patients, "
          f"{len({r.site_id for r in records})} sites), batches of {args.batch}")  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        for name in ("baseline", "sites", "one"):
            (base / name).mkdir()
        baseline = library_ingest(records, f"sqlite:///{base / 'baseline' / 'b.db'}", args.batch)
        sites = served_rate(records, base / "sites", args.batch, per_site=True)
        one = served_rate(records, base / "one", args.batch, per_site=False)
    print(f"library ingest, no HTTP (baseline) {baseline:10,.0f} records/s")
    print(f"simulated sites over HTTP, parallel {sites:10,.0f} records/s  "
          f"ratio {sites / baseline:.2f}")  # fmt: skip
    print(f"one client over HTTP, sequential    {one:10,.0f} records/s  ratio {one / baseline:.2f}")


if __name__ == "__main__":
    main()
