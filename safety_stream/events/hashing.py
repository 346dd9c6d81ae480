"""Tamper evidence: each stored event's hash is chained to the previous event's.

Chain format 2 (since revision 0008):

    chain_hash(n) = SHA-256(chain_hash(n-1) | position | event_id | payload_hash | stored_at)

with 64 zeros before the first event and ``stored_at`` (the server's receipt time, the
monitoring clock) as canonical UTC ISO 8601 text with microseconds
(``2026-03-01T10:00:00.000000+00:00``). Changing, removing or reordering any stored event, or
its receipt time, breaks every later link; ``verify`` names the first broken one. The other
columns reads filter on (event type, trial, site, patient, times) are checked against the
hash-verified payload they were copied from. Format 1 (before revision 0008) left
``stored_at`` out; ``chain_hash_v1`` is kept only to re-link such stores.

Dead letters (``rejection_link``) and the alert log (``alert_log_link``) have chains of their
own, over a JSON array of their fields (free text may hold any character).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from uuid import UUID

GENESIS = "0" * 64
CHAIN_VERSION = 2


def payload_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def utc_text(moment: datetime) -> str:
    """The canonical text of a stored time: UTC, ISO 8601, always with microseconds."""
    if moment.tzinfo is not UTC:  # (the store's clock and reads already give UTC)
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def chain_hash(
    previous: str, position: int, event_id: UUID, payload_digest: str, stored_at: datetime
) -> str:
    """The link of chain format 2: the receipt time is part of it."""
    link = f"{previous}|{position}|{event_id}|{payload_digest}|{utc_text(stored_at)}"
    return hashlib.sha256(link.encode("ascii")).hexdigest()


def chain_hash_v1(previous: str, position: int, event_id: UUID, payload_digest: str) -> str:
    """The link of chain format 1 (stores before revision 0008): no receipt time."""
    link = f"{previous}|{position}|{event_id}|{payload_digest}"
    return hashlib.sha256(link.encode("ascii")).hexdigest()


def _link(previous: str, *fields: object) -> str:
    text = json.dumps([previous, *fields], ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def rejection_link(
    previous: str,
    rejection_id: int,
    received_at: datetime,
    source: str,
    site_id: str | None,
    location: str,
    raw: bytes,
    raw_size: int,
    raw_sha256: str,
    digest: str | None,
    problems: str,
) -> str:
    """A dead letter's link: its fields, the SHA-256 of the bytes kept, the size and SHA-256
    of all the bytes received, and its problems exactly as stored (JSON text)."""
    kept = hashlib.sha256(raw).hexdigest()
    return _link(
        previous, rejection_id, utc_text(received_at), source, site_id, location, kept,
        raw_size, raw_sha256, digest, problems,
    )  # fmt: skip


def alert_log_link(
    previous: str,
    entry_id: int,
    derived_id: UUID,
    action: str,
    at: datetime,
    actor: str,
    note: str | None,
) -> str:
    """An alert log entry's link (an acknowledgement or an escalation)."""
    return _link(previous, entry_id, str(derived_id), action, utc_text(at), actor, note)
