"""What the review workspace costs per request, against the projection fold of the same log.

    python benchmarks/review_workspace.py [--patients 400] [--seed 1]

Simulates a multicentre trial (the simulator's published rates), stores it through ingest in
an in-memory store, then times in one process:

- baseline: folding every stored event into the projection state only (what the monitor
  counts), as replay does;
- the review fold: the projection state plus the history behind it (``ReviewData``), which
  the board and API fold once and then only forward;
- what one request computes on the folded data: the AE listing (every AE through the filter),
  every DMC table (closed version), the liver-safety view, the six SDTM datasets.

Prints each figure with its ratio to the baseline fold.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.events import decode_json
from safety_stream.ingest import ingest
from safety_stream.projections.state import TrialState, apply
from safety_stream.review.dataset import ReviewData
from safety_stream.review.dmc import dmc_tables
from safety_stream.review.listing import AeFilter, select
from safety_stream.review.liver_view import liver_safety
from safety_stream.review.sdtm import sdtm_datasets
from safety_stream.runtime import default_plan
from safety_stream.simulate import simulate
from safety_stream.simulate.rates import scenario
from safety_stream.store.base import StoredEvent
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.validation.records import InputFormat, RawRecord


def stored_trial(patients: int, seed: int) -> list[StoredEvent]:
    records = simulate(scenario("default", patients=patients, seed=seed))
    sent = [records[0].sent_at]
    store = InMemoryEventStore(clock=lambda: sent[0])
    for start in range(0, len(records), 200):
        chunk = records[start : start + 200]
        sent[0] = chunk[-1].sent_at
        raw = [RawRecord(f"record {start + i}", r.body) for i, r in enumerate(chunk)]
        ingest(store, raw, InputFormat.NDJSON, ctcae_dictionary(), "benchmark", None)
    return list(store.read())


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """The fastest of ``repeats`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    events = stored_trial(args.patients, args.seed)
    rows = [(e.position, e.payload, e.stored_at, e.chain_hash) for e in events]
    plan = default_plan()

    def baseline() -> None:
        state = TrialState()
        for position, payload, _, _ in rows:
            apply(state, decode_json(payload), position)

    def review_fold() -> ReviewData:
        data = ReviewData()
        data.fold_payloads(rows)
        return data

    data = review_fold()
    as_of = datetime.now(UTC).date()
    fold_base = best_of(args.repeats, baseline)
    figures = {
        "review fold (state + history)": best_of(args.repeats, review_fold),
        "AE listing (every AE filtered)": best_of(args.repeats, lambda: select(data, AeFilter())),
        "DMC tables (closed, all 10)": best_of(
            args.repeats, lambda: dmc_tables(data, plan, as_of, True)
        ),
        "liver safety view": best_of(args.repeats, lambda: liver_safety(data, plan, as_of)),
        "SDTM datasets (6)": best_of(args.repeats, lambda: sdtm_datasets(data)),
    }
    print(
        f"{args.patients} patients, {len(events):,} stored events, "
        f"{len(data.state.aes):,} AEs (best of {args.repeats})"
    )
    print(
        f"{'baseline: projection fold':34} {fold_base * 1000:9.1f} ms  "
        f"{len(events) / fold_base:10,.0f} events/s  1.00x"
    )
    for name, seconds in figures.items():
        print(f"{name:34} {seconds * 1000:9.1f} ms  {'':21}{seconds / fold_base:5.2f}x")


if __name__ == "__main__":
    main()
