"""Signed checkpoints: an anchor for the hash chain's head, kept outside the database.

A hash chain shows an edit in the middle of the log, but not a log cut short (its tail
deleted) or a tail rewritten with recomputed hashes: what is left still chains. A checkpoint
is a small JSON file holding the log's head as it was (position, chain hash, stored_at of
that event), when it was written, and an HMAC-SHA256 over all of it with a key the database
does not hold (``SAFETY_STREAM_CHECKPOINT_KEY``). ``safety-stream verify --checkpoint FILE``
checks the HMAC, then that the log still holds that position with that exact chain hash.

``write_checkpoint`` verifies what the log gained since the checkpoint already in the file
(the whole log when there is none) before it signs the new head, and refuses to replace a
checkpoint the log no longer matches: that file is the evidence.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safety_stream.errors import SafetyStreamError
from safety_stream.events.hashing import CHAIN_VERSION, GENESIS, utc_text
from safety_stream.store.base import EventStore, StoredEvent
from safety_stream.store.verify import verify_chain

if TYPE_CHECKING:
    from safety_stream.settings import Settings

FORMAT = "safety-stream checkpoint"
FIELDS = ("position", "chain_hash", "stored_at", "written_at")


class CheckpointError(SafetyStreamError):
    """A checkpoint cannot be read, is not signed with the key, or the log does not match it."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    position: int
    chain_hash: str
    stored_at: str | None  # the head event's receipt time (None: an empty log)
    written_at: str
    hmac: str

    def signed(self) -> dict[str, Any]:
        """What the HMAC covers (everything but the HMAC)."""
        return {
            "format": FORMAT,
            "chain_version": CHAIN_VERSION,
            **{name: getattr(self, name) for name in FIELDS},
        }

    def document(self) -> dict[str, Any]:
        return {**self.signed(), "hmac": self.hmac}


def _key_bytes(key: str | bytes) -> bytes:
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not key:
        raise CheckpointError("the checkpoint key is empty (set SAFETY_STREAM_CHECKPOINT_KEY)")
    return key


def _mac(key: str | bytes, fields: dict[str, Any]) -> str:
    message = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hmac.new(_key_bytes(key), message, hashlib.sha256).hexdigest()


def sign(key: str | bytes, head: StoredEvent | None, written_at: datetime) -> Checkpoint:
    """A checkpoint of ``head`` (None: the empty log)."""
    unsigned = Checkpoint(
        position=0 if head is None else head.position,
        chain_hash=GENESIS if head is None else head.chain_hash,
        stored_at=None if head is None else utc_text(head.stored_at),
        written_at=utc_text(written_at),
        hmac="",
    )
    return Checkpoint(**{**asdict(unsigned), "hmac": _mac(key, unsigned.signed())})


def load_checkpoint(path: Path, key: str | bytes) -> Checkpoint:
    """The checkpoint in ``path``, its HMAC checked with ``key``."""
    try:
        document = json.loads(path.read_bytes())
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror}") from None
    except ValueError:
        raise CheckpointError(f"checkpoint {path} is not JSON") from None
    try:
        checkpoint = Checkpoint(
            position=int(document["position"]),
            chain_hash=str(document["chain_hash"]),
            stored_at=None if document["stored_at"] is None else str(document["stored_at"]),
            written_at=str(document["written_at"]),
            hmac=str(document["hmac"]),
        )
        signed = {k: document[k] for k in ("format", "chain_version", *FIELDS)}
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(
            f"checkpoint {path} is not a safety-stream checkpoint (it needs "
            "position, chain_hash, stored_at, written_at and hmac)"
        ) from None
    if not hmac.compare_digest(_mac(key, signed), checkpoint.hmac) or signed != checkpoint.signed():
        raise CheckpointError(
            f"checkpoint {path} is refused: its HMAC does not match (signed with another "
            "key, or altered)"
        )
    return checkpoint


def _event_at(store: EventStore, position: int) -> StoredEvent | None:
    if position < 1:
        return None
    return next(iter(store.read(after=position - 1, limit=1)), None)


def check_checkpoint(store: EventStore, checkpoint: Checkpoint) -> str | None:
    """How the log differs from a (signature-checked) checkpoint; None when it still holds
    that position with that chain hash and receipt time."""
    if checkpoint.position == 0:
        return None
    stored = _event_at(store, checkpoint.position)
    seen = f"the checkpoint written {checkpoint.written_at} saw position {checkpoint.position}"
    if stored is None:
        return (
            f"the log ends at position {store.head()}, but {seen} "
            "(events were deleted: the log was truncated)"
        )
    if stored.chain_hash != checkpoint.chain_hash:
        return (
            f"position {checkpoint.position} has chain hash {stored.chain_hash[:16]}..., but "
            f"{seen} with {checkpoint.chain_hash[:16]}... (the log up to it was rewritten)"
        )
    if utc_text(stored.stored_at) != checkpoint.stored_at:
        return (
            f"position {checkpoint.position} was stored at {utc_text(stored.stored_at)}, but "
            f"{seen} stored at {checkpoint.stored_at}"
        )
    return None


def write_checkpoint(
    store: EventStore, key: str | bytes, path: Path, now: datetime | None = None
) -> Checkpoint:
    """Sign the log's head and write it to ``path`` (atomically).

    What the log gained since the checkpoint already in ``path`` is verified first (the whole
    log when there is none); a broken chain, a log that no longer matches that checkpoint, or
    a file not signed with ``key`` raise ``CheckpointError`` and leave the file as it is."""
    after, previous = 0, GENESIS
    if path.exists():
        former = load_checkpoint(path, key)
        problem = check_checkpoint(store, former)
        if problem is not None:
            raise CheckpointError(f"not replacing checkpoint {path}: {problem}")
        after, previous = former.position, former.chain_hash
    last: list[StoredEvent] = []

    def keeping_last(events: Any) -> Any:
        for stored in events:
            last[:] = [stored]
            yield stored

    result = verify_chain(keeping_last(store.read(after=after)), after=after, previous=previous)
    if not result.ok:
        raise CheckpointError(
            f"not writing a checkpoint: the log is broken at position {result.broken_at}: "
            f"{result.reason}"
        )
    head = last[0] if last else _event_at(store, after)
    checkpoint = sign(key, head, now or datetime.now(UTC))
    _write_atomically(path, json.dumps(checkpoint.document(), indent=2) + "\n")
    return checkpoint


def _write_atomically(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_configured_checkpoint(store: EventStore, settings: Settings) -> Checkpoint | None:
    """``write_checkpoint`` with the key and file from ``Settings`` (None: no key set)."""
    key = settings.checkpoint_key
    if key is None:
        return None
    return write_checkpoint(store, key.get_secret_value(), settings.checkpoint_file)
