"""Tamper evidence: each stored event's hash is chained to the previous event's.

chain_hash(n) = SHA-256(chain_hash(n-1) | position | event_id | payload_hash), with 64 zeros
before the first event. Changing, removing or reordering any stored event breaks every later
link; ``verify`` names the first broken one.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

GENESIS = "0" * 64


def payload_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def chain_hash(previous: str, position: int, event_id: UUID, payload_digest: str) -> str:
    link = f"{previous}|{position}|{event_id}|{payload_digest}"
    return hashlib.sha256(link.encode("ascii")).hexdigest()
