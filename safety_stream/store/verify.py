"""Walking the hash chains: the first entry whose stored hashes do not recompute is named.

``verify_chain`` walks the event log: positions consecutive, each payload matching its hash,
every column a read filters on (event type, schema version, trial, site, patient, clinical
and recording times) equal to what the hash-verified payload says, per-patient stream
versions consecutive, and each link (format 2, with the receipt time ``stored_at``)
following from the one before. ``verify_rejections`` and ``verify_alert_log`` walk the dead
letters' and the alert log's own chains.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, select

from safety_stream.events.hashing import (
    GENESIS,
    alert_log_link,
    chain_hash,
    payload_hash,
    rejection_link,
)
from safety_stream.store.base import Rejection, StoredEvent, VerifyResult, problems_json

PAGE = 5_000
TEXT_COLUMNS = ("event_type", "trial_id", "site_id", "patient_id")
TIME_COLUMNS = ("occurred_at", "recorded_at")


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def column_mismatch(stored: StoredEvent) -> str | None:
    """Which stored column differs from the event's payload (None: all agree)."""
    try:
        document = json.loads(stored.payload)
    except ValueError:
        return "its payload is not JSON"
    if not isinstance(document, dict):
        return "its payload is not a JSON object"
    if document.get("event_id") != str(stored.event_id):
        return "the event_id column differs from the payload"
    for column in TEXT_COLUMNS:
        if document.get(column) != getattr(stored, column):
            return f"the {column} column differs from the payload"
    if document.get("schema_version") != stored.schema_version:
        return "the schema_version column differs from the payload"
    for column in TIME_COLUMNS:
        if _moment(document.get(column)) != getattr(stored, column):
            return f"the {column} column differs from the payload"
    return None


def verify_chain(
    events: Iterable[StoredEvent],
    progress: Callable[[int], None] | None = None,
    *,
    after: int = 0,
    previous: str = GENESIS,
) -> VerifyResult:
    """Verify ``events`` (the log from position ``after`` + 1, whose link before is
    ``previous``; stream versions are only checked from the start of the log)."""
    expected_position, checked = after + 1, 0
    versions: dict[tuple[str, str], int] | None = {} if after == 0 else None
    for stored in events:
        if stored.position != expected_position:
            return VerifyResult(
                checked, expected_position, f"position {expected_position} is missing"
            )
        if payload_hash(stored.payload) != stored.payload_hash:
            return VerifyResult(
                checked,
                stored.position,
                f"the payload of event {stored.event_id} does not match its stored hash",
            )
        mismatch = column_mismatch(stored)
        if mismatch is not None:
            return VerifyResult(
                checked, stored.position, f"event {stored.event_id}: {mismatch} (edited)"
            )
        if versions is not None:
            stream = (stored.trial_id, stored.patient_id)
            version = versions.get(stream, 0) + 1
            if stored.stream_version != version:
                return VerifyResult(
                    checked,
                    stored.position,
                    f"event {stored.event_id}: stream version {stored.stream_version}, "
                    f"expected {version} (edited)",
                )
            versions[stream] = version
        link = chain_hash(
            previous, stored.position, stored.event_id, stored.payload_hash, stored.stored_at
        )
        if link != stored.chain_hash:
            return VerifyResult(
                checked,
                stored.position,
                f"the chain hash of event {stored.event_id} does not follow from position "
                f"{stored.position - 1} and its stored_at {stored.stored_at.isoformat()} "
                "(the receipt time, the hash or an earlier link was changed)",
            )
        previous, expected_position, checked = stored.chain_hash, expected_position + 1, checked + 1
        if progress is not None and checked % 10_000 == 0:
            progress(checked)
    return VerifyResult(checked, head_hash=previous)


def verify_rejection_rows(
    rows: Iterable[tuple[Rejection, str | None, str, str | None]],
) -> VerifyResult:
    """Verify dead letters in id order: (rejection, digest, problems as stored, chain hash)."""
    previous, checked = GENESIS, 0
    for rejection, digest, problems, stored_hash in rows:
        size = rejection.size
        whole = rejection.raw_sha256
        if whole is None or rejection.raw_size is None:
            return VerifyResult(checked, rejection.id, f"dead letter {rejection.id}: no size")
        if len(rejection.raw) > size or (
            len(rejection.raw) == size and hashlib.sha256(rejection.raw).hexdigest() != whole
        ):
            return VerifyResult(
                checked,
                rejection.id,
                f"dead letter {rejection.id}: its raw bytes do not match their size and SHA-256",
            )
        link = rejection_link(
            previous, rejection.id, rejection.received_at, rejection.source, rejection.site_id,
            rejection.location, rejection.raw, size, whole, digest, problems,
        )  # fmt: skip
        if link != stored_hash:
            return VerifyResult(
                checked,
                rejection.id,
                f"the chain hash of dead letter {rejection.id} does not follow from the one "
                "before it (its fields, raw bytes or problems were changed, or one was removed)",
            )
        previous, checked = link, checked + 1
    return VerifyResult(checked, head_hash=previous)


def memory_rejection_rows(
    rejections: Iterable[Rejection], digests: dict[int, str | None], hashes: dict[int, str]
) -> Iterable[tuple[Rejection, str | None, str, str | None]]:
    for rejection in rejections:
        yield (
            rejection,
            digests.get(rejection.id),
            problems_json(rejection.problems),
            hashes.get(rejection.id),
        )


def verify_alert_log(engine: Engine) -> VerifyResult:
    """Walk the alert log (acknowledgements, escalations) in id order."""
    from safety_stream.store.tables import AlertLogRow

    previous, checked, after = GENESIS, 0, 0
    query = select(
        AlertLogRow.id,
        AlertLogRow.derived_id,
        AlertLogRow.action,
        AlertLogRow.at,
        AlertLogRow.actor,
        AlertLogRow.note,
        AlertLogRow.chain_hash,
    ).order_by(AlertLogRow.id)
    while True:
        with engine.connect() as connection:
            rows = connection.execute(query.where(AlertLogRow.id > after).limit(PAGE)).all()
        for row in rows:
            derived_id: UUID = row.derived_id
            link = alert_log_link(
                previous, row.id, derived_id, row.action, row.at, row.actor, row.note
            )
            if link != row.chain_hash:
                return VerifyResult(
                    checked,
                    row.id,
                    f"the chain hash of alert log entry {row.id} ({row.action} of alert "
                    f"{str(derived_id)[:8]}) does not follow from the one before it "
                    "(an entry was changed or removed)",
                )
            previous, checked = link, checked + 1
        if len(rows) < PAGE:
            return VerifyResult(checked, head_hash=previous)
        after = rows[-1].id
