"""Moved to :mod:`safety_stream.events.hashing` (the validator needs it, and the domain may not
import the store). This re-export stays while code being moved into ``store/`` (issue 18)
still imports the old path; new code imports ``safety_stream.events.hashing``."""

from safety_stream.events.hashing import (
    CHAIN_VERSION,
    GENESIS,
    alert_log_link,
    chain_hash,
    chain_hash_v1,
    payload_hash,
    rejection_link,
    utc_text,
)

__all__ = [
    "CHAIN_VERSION",
    "GENESIS",
    "alert_log_link",
    "chain_hash",
    "chain_hash_v1",
    "payload_hash",
    "rejection_link",
    "utc_text",
]
