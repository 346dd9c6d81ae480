"""Store commands: ``verify`` (hash chain), ``rejected`` (dead letters), ``replay`` (rebuild)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safety_stream.api.schemas import RejectionOut
from safety_stream.projections.projector import replay
from safety_stream.projections.repositories import SqlProjectionRepository
from safety_stream.store.opening import open_store
from safety_stream.store.verify import verify_chain


def migrate(db: str) -> int:
    """Create the store, or bring its schema to this version's (idempotent)."""
    store = open_store(db, create=True)
    store.close()
    print("the store's schema is current")
    return 0


def verify(db: str) -> int:
    store = open_store(db, create=False)
    head = store.head()

    def progress(done: int) -> None:
        print(f"\r  verified {done:,} / {head:,}", end="", file=sys.stderr, flush=True)

    result = verify_chain(store.read(), progress)
    if head >= 10_000:
        print(file=sys.stderr)
    store.close()
    if result.ok:
        print(f"OK: {result.checked} events, hash chain intact")
        return 0
    print(f"BROKEN at position {result.broken_at}: {result.reason}")
    print(f"({result.checked} events before it verified)")
    return 1


def rejected(db: str, site: str | None, limit: int, as_json: bool) -> int:
    store = open_store(db, create=False)
    rows = store.rejections(site_id=site, limit=limit)
    store.close()
    if as_json:
        documents = [RejectionOut.of(r).model_dump(mode="json") for r in rows]
        print(json.dumps(documents, indent=2))
        return 0
    if not rows:
        print("no rejected records")
    for r in rows:
        print(f"#{r.id} {r.received_at:%Y-%m-%d %H:%M:%S} {r.source} {r.location}")
        for problem in r.problems:
            allowed = f" (allowed: {problem['allowed']})" if problem.get("allowed") else ""
            print(f"    {problem.get('path') or '(record)'}: {problem['message']}{allowed}")
    return 0


def replay_command(db: str, plan_path: Path | None = None) -> int:
    from safety_stream.monitoring.monitor import Monitor
    from safety_stream.runtime import load_plan_or_default

    plan = load_plan_or_default(plan_path)
    store = open_store(db, create=False)
    repository = SqlProjectionRepository(store.engine)
    before = len(repository.derived_events())
    total = store.head()
    width = 30

    def progress(done: int, seconds: float) -> None:
        filled = int(width * done / total) if total else width
        rate = done / seconds if seconds else 0
        bar = "#" * filled + "." * (width - filled)
        print(f"\r  [{bar}] {done:,}/{total:,} {rate:,.0f} events/s", end="", file=sys.stderr)

    state, count, seconds = replay(store, repository, progress, Monitor(plan))
    new = len(repository.derived_events()) - before
    store.close()
    print(file=sys.stderr)
    rate = count / seconds if seconds else 0.0
    print(
        f"replayed {count:,} events in {seconds:.2f} s ({rate:,.0f} events/s): "
        f"{len(state.patients)} patients, {len(state.aes)} AEs, position {state.position}; "
        f"plan {plan.version}: {new} new derived events"
    )
    return 0
