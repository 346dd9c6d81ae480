"""Store commands: ``db upgrade`` / ``db status`` (the schema), ``verify`` (hash chains, signed
checkpoints), ``rejected`` (dead letters), ``replay`` (rebuild)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safety_stream.api.schemas import RejectionOut
from safety_stream.application.read_models import DeadLetterRead
from safety_stream.errors import UsageError
from safety_stream.projections.projector import replay
from safety_stream.store.base import VerifyResult
from safety_stream.store.opening import open_store, schema_status, upgrade_store
from safety_stream.store.projection_sql import SqlProjectionRepository
from safety_stream.store.verify import verify_alert_log, verify_chain


def db_upgrade(db: str) -> int:
    """``db upgrade``: create the store, or bring its schema to this version's, under the
    migration lock (idempotent: a second run, or one after another process, changes nothing)."""
    done = upgrade_store(db)
    print(done.describe())
    return 0


def db_status(db: str) -> int:
    """``db status``: the store's revision and this version's head; never creates or changes
    anything. 0 when current, 1 when behind, missing or from a newer version."""
    status = schema_status(db)
    print(f"store: {status.shown}")
    if not status.exists:
        print("revision: none (no store there)")
    else:
        print(f"revision: {status.revision or 'none (no safety-stream schema)'}")
    print(f"head: {status.head}")
    if status.current:
        print("status: current")
        return 0
    if not status.known:
        print("status: newer than this version of safety-stream (run that version)")
        return 1
    what = "missing" if status.revision is None else "behind"
    print(f"status: {what} (run `safety-stream db upgrade --db {status.shown}`)")
    return 1


def verify(db: str, checkpoint: Path | None = None, key: str | None = None) -> int:
    """Walk every chain (events, dead letters, alert log, credential changes); with
    ``checkpoint``, also check that signed head against the log. 0 when all hold."""
    from safety_stream.store.checkpoint import CheckpointError, check_checkpoint, load_checkpoint
    from safety_stream.store.credentials_sql import verify_credential_changes

    if checkpoint is not None and key is None:
        raise UsageError(
            "--checkpoint needs the key it was signed with (set SAFETY_STREAM_CHECKPOINT_KEY)"
        )
    store = open_store(db, create=False)
    try:
        head = store.head()

        def progress(done: int) -> None:
            print(f"\r  verified {done:,} / {head:,}", end="", file=sys.stderr, flush=True)

        result = verify_chain(store.read(), progress)
        if head >= 10_000:
            print(file=sys.stderr)
        ok = result.ok
        if result.ok:
            print(
                f"OK: {result.checked} events, hash chain intact (payloads, the columns reads "
                "use, receipt times)"
            )
            print(f"head: position {result.checked}, chain hash {result.head_hash}")
        else:
            print(f"BROKEN at position {result.broken_at}: {result.reason}")
            print(f"({result.checked} events before it verified)")
        dead = store.verify_rejections()
        ok &= _report_chain("dead letters", "dead letter", dead)
        alert_log = verify_alert_log(store.engine)
        ok &= _report_chain("alert log entries", "alert log entry", alert_log)
        credentials = verify_credential_changes(store.engine)
        if credentials is None:
            print("OK: credential changes, hash chain intact")
        else:
            print(f"BROKEN: {credentials}")
            ok = False
        if checkpoint is not None:
            assert key is not None
            try:
                signed = load_checkpoint(checkpoint, key)
            except CheckpointError as error:
                print(f"CHECKPOINT REFUSED: {error}")
                return 1
            problem = check_checkpoint(store, signed)
            if problem is None:
                print(
                    f"OK: checkpoint {checkpoint} (written {signed.written_at}): the log still "
                    f"holds position {signed.position} with chain hash {signed.chain_hash}"
                )
            else:
                print(f"CHECKPOINT FAILED: {problem}")
                ok = False
    finally:
        store.close()
    return 0 if ok else 1


def _report_chain(plural: str, singular: str, result: VerifyResult) -> bool:
    if result.ok:
        print(f"OK: {result.checked} {plural}, hash chain intact")
        return True
    print(f"BROKEN at {singular} {result.broken_at}: {result.reason}")
    return False


def rejected(db: str, site: str | None, limit: int, as_json: bool) -> int:
    store = open_store(db, create=False)
    rows = store.rejections(site_id=site, limit=limit)
    store.close()
    if as_json:
        documents = [RejectionOut.of(DeadLetterRead.of(r)).model_dump(mode="json") for r in rows]
        print(json.dumps(documents, indent=2))
        return 0
    if not rows:
        print("no rejected records")
    for r in rows:
        print(f"#{r.id} {r.received_at:%Y-%m-%d %H:%M:%S} {r.source} {r.location}")
        if r.truncated:
            print(
                f"    (raw: the first {len(r.raw):,} of {r.size:,} bytes kept; "
                f"SHA-256 of all {r.sha256})"
            )
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
