"""Walking the hash chain: the first event whose stored hashes do not recompute is named."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from safety_stream.store.base import StoredEvent, VerifyResult
from safety_stream.store.hashing import GENESIS, chain_hash, payload_hash


def verify_chain(
    events: Iterable[StoredEvent], progress: Callable[[int], None] | None = None
) -> VerifyResult:
    previous, expected_position, checked = GENESIS, 1, 0
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
        link = chain_hash(previous, stored.position, stored.event_id, stored.payload_hash)
        if link != stored.chain_hash:
            return VerifyResult(
                checked,
                stored.position,
                f"the chain hash of event {stored.event_id} does not follow from position "
                f"{stored.position - 1}",
            )
        previous, expected_position, checked = stored.chain_hash, expected_position + 1, checked + 1
        if progress is not None and checked % 10_000 == 0:
            progress(checked)
    return VerifyResult(checked)
