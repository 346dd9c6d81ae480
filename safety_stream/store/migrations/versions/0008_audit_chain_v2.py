"""The audit chain covers what reads use: chain format 2 puts each event's receipt time
(``stored_at``, the monitoring clock) in its link; dead letters and the alert log
(acknowledgements, escalations) get hash chains of their own; a dead letter keeps at most the
first 64 KiB of what was received, with the size and SHA-256 of all of it.

The event log is first verified with the format-1 chain (payload hashes and links): a broken
log is refused, with the position, and nothing changes (re-linking it would seal the damage).
Then every event's link is recomputed with format 2. Dead letters kept before this revision
keep their bytes (their size and SHA-256 are of the bytes kept); the dead letters and the
alert log are chained in id order as they stand.

Revision ID: 0008
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from safety_stream.events.hashing import (
    GENESIS,
    alert_log_link,
    chain_hash,
    chain_hash_v1,
    payload_hash,
    rejection_link,
)
from safety_stream.store.tables import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PAGE = 5_000
Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

EVENTS = sa.table(
    "events",
    sa.column("position", Position),
    sa.column("event_id", sa.Uuid()),
    sa.column("stored_at", UtcDateTime()),
    sa.column("payload", sa.Text()),
    sa.column("payload_hash", sa.String()),
    sa.column("chain_hash", sa.String()),
)
REJECTIONS = sa.table(
    "rejections",
    sa.column("id", Position),
    sa.column("received_at", UtcDateTime()),
    sa.column("source", sa.String()),
    sa.column("site_id", sa.String()),
    sa.column("location", sa.String()),
    sa.column("raw", sa.LargeBinary()),
    sa.column("raw_size", Position),
    sa.column("raw_sha256", sa.String()),
    sa.column("problems", sa.Text()),
    sa.column("digest", sa.String()),
    sa.column("chain_hash", sa.String()),
)
ALERT_LOG = sa.table(
    "alert_log",
    sa.column("id", Position),
    sa.column("derived_id", sa.Uuid()),
    sa.column("action", sa.String()),
    sa.column("at", UtcDateTime()),
    sa.column("actor", sa.String()),
    sa.column("note", sa.Text()),
    sa.column("chain_hash", sa.String()),
)


class BrokenChainError(RuntimeError):
    """The log to migrate does not verify: it is not re-linked."""


def _pages(connection: sa.Connection, query: sa.Select[Any], key: Any) -> Any:
    """All rows of ``query`` in ``key`` order, a page at a time (each page read whole)."""
    after = 0
    while True:
        rows = connection.execute(query.where(key > after).order_by(key).limit(PAGE)).all()
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1][0]


def verify_v1(connection: sa.Connection) -> int:
    """Walk the format-1 chain; raise ``BrokenChainError`` naming the first broken link."""
    previous, expected = GENESIS, 1
    query = sa.select(
        EVENTS.c.position,
        EVENTS.c.event_id,
        EVENTS.c.payload,
        EVENTS.c.payload_hash,
        EVENTS.c.chain_hash,
    )
    for position, event_id, payload, digest, stored_hash in _pages(
        connection, query, EVENTS.c.position
    ):
        if position != expected:
            reason = f"position {expected} is missing"
        elif payload_hash(payload) != digest:
            reason = f"the payload of event {event_id} does not match its stored hash"
        elif chain_hash_v1(previous, position, event_id, digest) != stored_hash:
            reason = f"the chain hash of event {event_id} does not follow from the one before"
        else:
            previous, expected = stored_hash, expected + 1
            continue
        raise BrokenChainError(
            f"migration 0008 refused: the event log's hash chain is broken at position "
            f"{min(position, expected)}: {reason}. Re-linking it would seal the damage; "
            "restore the store from a backup (or investigate with `safety-stream verify` on "
            "the previous version) before upgrading"
        )
    return expected - 1


def relink_events(connection: sa.Connection) -> None:
    query = sa.select(
        EVENTS.c.position, EVENTS.c.event_id, EVENTS.c.payload_hash, EVENTS.c.stored_at
    )
    update = (
        EVENTS.update()
        .where(EVENTS.c.position == sa.bindparam("b_position"))
        .values(chain_hash=sa.bindparam("chain_hash"))
    )
    previous, pending = GENESIS, []
    for position, event_id, digest, stored_at in _pages(connection, query, EVENTS.c.position):
        previous = chain_hash(previous, position, event_id, digest, stored_at)
        pending.append({"b_position": position, "chain_hash": previous})
        if len(pending) >= PAGE:
            connection.execute(update, pending)
            pending = []
    if pending:
        connection.execute(update, pending)


def link_rejections(connection: sa.Connection) -> None:
    import hashlib

    query = sa.select(
        REJECTIONS.c.id, REJECTIONS.c.received_at, REJECTIONS.c.source, REJECTIONS.c.site_id,
        REJECTIONS.c.location, REJECTIONS.c.raw, REJECTIONS.c.problems, REJECTIONS.c.digest,
    )  # fmt: skip
    update = (
        REJECTIONS.update()
        .where(REJECTIONS.c.id == sa.bindparam("b_id"))
        .values(
            raw_size=sa.bindparam("raw_size"),
            raw_sha256=sa.bindparam("raw_sha256"),
            chain_hash=sa.bindparam("chain_hash"),
        )
    )
    previous, pending = GENESIS, []
    for row in _pages(connection, query, REJECTIONS.c.id):
        raw = bytes(row.raw)
        whole = hashlib.sha256(raw).hexdigest()
        previous = rejection_link(
            previous, row.id, row.received_at, row.source, row.site_id, row.location, raw,
            len(raw), whole, row.digest, row.problems,
        )  # fmt: skip
        pending.append(
            {"b_id": row.id, "raw_size": len(raw), "raw_sha256": whole, "chain_hash": previous}
        )
        if len(pending) >= PAGE:
            connection.execute(update, pending)
            pending = []
    if pending:
        connection.execute(update, pending)


def link_alert_log(connection: sa.Connection) -> None:
    query = sa.select(
        ALERT_LOG.c.id, ALERT_LOG.c.derived_id, ALERT_LOG.c.action, ALERT_LOG.c.at,
        ALERT_LOG.c.actor, ALERT_LOG.c.note,
    )  # fmt: skip
    update = (
        ALERT_LOG.update()
        .where(ALERT_LOG.c.id == sa.bindparam("b_id"))
        .values(chain_hash=sa.bindparam("chain_hash"))
    )
    previous, pending = GENESIS, []
    for row in _pages(connection, query, ALERT_LOG.c.id):
        previous = alert_log_link(
            previous, row.id, row.derived_id, row.action, row.at, row.actor, row.note
        )
        pending.append({"b_id": row.id, "chain_hash": previous})
    if pending:
        connection.execute(update, pending)


def upgrade() -> None:
    connection = op.get_bind()
    verify_v1(connection)  # before any change: a refusal leaves the store as it was
    relink_events(connection)
    with op.batch_alter_table("rejections") as table:
        table.add_column(sa.Column("raw_size", Position, nullable=True))
        table.add_column(sa.Column("raw_sha256", sa.String(64), nullable=True))
        table.add_column(sa.Column("chain_hash", sa.String(64), nullable=True))
    link_rejections(connection)
    with op.batch_alter_table("rejections") as table:
        table.alter_column("raw_size", existing_type=Position, nullable=False)
        table.alter_column("raw_sha256", existing_type=sa.String(64), nullable=False)
        table.alter_column("chain_hash", existing_type=sa.String(64), nullable=False)
    with op.batch_alter_table("alert_log") as table:
        table.add_column(sa.Column("chain_hash", sa.String(64), nullable=True))
    link_alert_log(connection)
    with op.batch_alter_table("alert_log") as table:
        table.alter_column("chain_hash", existing_type=sa.String(64), nullable=False)


def downgrade() -> None:
    """Back to format 1 (the receipt time leaves the chain) and no dead-letter or alert-log
    chains; dead letters keep the bytes they hold."""
    connection = op.get_bind()
    query = sa.select(EVENTS.c.position, EVENTS.c.event_id, EVENTS.c.payload_hash)
    update = (
        EVENTS.update()
        .where(EVENTS.c.position == sa.bindparam("b_position"))
        .values(chain_hash=sa.bindparam("chain_hash"))
    )
    previous, pending = GENESIS, []
    for position, event_id, digest in _pages(connection, query, EVENTS.c.position):
        previous = chain_hash_v1(previous, position, event_id, digest)
        pending.append({"b_position": position, "chain_hash": previous})
        if len(pending) >= PAGE:
            connection.execute(update, pending)
            pending = []
    if pending:
        connection.execute(update, pending)
    with op.batch_alter_table("alert_log") as table:
        table.drop_column("chain_hash")
    with op.batch_alter_table("rejections") as table:
        table.drop_column("chain_hash")
        table.drop_column("raw_sha256")
        table.drop_column("raw_size")
