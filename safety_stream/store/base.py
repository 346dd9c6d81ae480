"""The event store's port: what every backend (memory, SQLite, PostgreSQL) provides.

The log is append-only. ``write()`` opens one exclusive transaction: appends inside it get
consecutive global positions, and positions become visible in order, so a reader following
``read(after=p)`` never skips an event that commits later with a smaller position.

    StoreError
     +-- EventIdConflictError   the same event_id was stored with another payload
     +-- ConcurrencyError       a patient stream is not at the version the writer expected
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from safety_stream.errors import SafetyStreamError
from safety_stream.events import EventBase
from safety_stream.validation.references import ReferenceSource


class StoreError(SafetyStreamError):
    """A store operation failed; the transaction was rolled back."""


class EventIdConflictError(StoreError):
    def __init__(self, event_id: UUID, position: int) -> None:
        self.event_id = event_id
        self.position = position
        super().__init__(
            f"event_id {event_id} is already stored (position {position}) with a different payload"
        )


class ConcurrencyError(StoreError):
    def __init__(self, stream: str, expected: int, actual: int) -> None:
        self.stream, self.expected, self.actual = stream, expected, actual
        super().__init__(f"stream {stream} is at version {actual}, the writer expected {expected}")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as stored: its place in the log, its stream and its tamper-evident hashes."""

    position: int
    event_id: UUID
    event_type: str
    schema_version: int
    trial_id: str
    site_id: str
    patient_id: str
    stream_version: int
    occurred_at: datetime
    recorded_at: datetime
    stored_at: datetime  # the server's receipt time: in the hash chain (format 2)
    payload: str  # the canonical JSON of the event
    payload_hash: str
    chain_hash: str


@dataclass(frozen=True, slots=True)
class AppendResult:
    status: Literal["stored", "duplicate"]
    position: int
    stream_version: int
    stored_at: datetime | None = None  # the server's receipt time (None: a duplicate)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that was not accepted, kept with everything needed to see why and fix it."""

    id: int
    received_at: datetime
    source: str
    site_id: str | None
    location: str
    raw: bytes  # the first RAW_KEPT bytes of what was received
    problems: list[dict[str, Any]]
    received: int = 1  # the same bytes from the same site again (a retry) count once, here
    raw_size: int | None = None  # bytes received (None: as many as kept)
    raw_sha256: str | None = None  # SHA-256 of all the bytes received

    @property
    def size(self) -> int:
        """How many bytes were received (``raw`` may hold only the first ``RAW_KEPT``)."""
        return len(self.raw) if self.raw_size is None else self.raw_size

    @property
    def truncated(self) -> bool:
        """Whether ``raw`` is only the beginning of what was received."""
        return self.size > len(self.raw)

    @property
    def sha256(self) -> str:
        """SHA-256 of all the bytes received."""
        return self.raw_sha256 or hashlib.sha256(self.raw).hexdigest()


RAW_KEPT = 64 * 1024  # a dead letter keeps at most this many bytes of what was received
# Characters of text kept, as long as the columns (store/tables.py) that hold them:
SOURCE_MAX = 200  # a dead letter's source (cut to this)
LOCATION_MAX = 200  # a dead letter's location in what was received (cut to this)
OFFSET_SOURCE_MAX = 200  # an ordered source's name, a key (longer is refused, never cut)


def check_offset_source(source: str) -> None:
    """Refuse an ordered source's name longer than its column: cut, two sources would share
    one offset (and PostgreSQL refuses it at commit, SQLite and memory would keep it)."""
    if len(source) > OFFSET_SOURCE_MAX:
        raise ValueError(
            f"source name longer than {OFFSET_SOURCE_MAX} characters: {source[:40]}..."
        )


def kept_raw(raw: bytes) -> tuple[bytes, int, str]:
    """(the bytes a dead letter keeps, the size received, SHA-256 of everything received):
    a 16 MiB garbage body costs 64 KiB, and its digest still identifies it."""
    return bytes(raw[:RAW_KEPT]), len(raw), hashlib.sha256(raw).hexdigest()


def problems_json(problems: Sequence[dict[str, Any]]) -> str:
    """A dead letter's problems as stored (and chained): JSON text."""
    return json.dumps(list(problems))


def rejection_digest(
    site_id: str | None, location: str, raw: bytes, problems: Sequence[dict[str, Any]]
) -> str | None:
    """What makes two dead letters the same submission: the same bytes from the same site at
    the same place, rejected for the same reasons. None (never merged) when no bytes were kept
    (a record too large, a file that could not be decoded): nothing shows it is a resend."""
    if not raw:
        return None
    reasons = json.dumps(list(problems), sort_keys=True, default=str)
    text = "\0".join((site_id or "", location, reasons)).encode() + b"\0" + raw
    return hashlib.sha256(text).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    checked: int
    broken_at: int | None = None  # position (or id) of the first broken link
    reason: str | None = None
    head_hash: str | None = None  # the chain hash of the last one verified

    @property
    def ok(self) -> bool:
        return self.broken_at is None


class WriteSession(ReferenceSource, Protocol):
    """One exclusive write transaction; committed when its context exits without error."""

    def append(self, event: EventBase, expected_version: int | None = None) -> AppendResult:
        """Append (or recognise a resend of) one event. Raises ``EventIdConflictError``."""
        ...

    def reject(
        self,
        source: str,
        site_id: str | None,
        location: str,
        raw: bytes,
        problems: Sequence[dict[str, Any]],
    ) -> int:
        """Keep a rejected record in the dead-letter store. The same submission again (a
        retry after a lost response: ``rejection_digest``) is kept once and counted."""
        ...

    def stored_hash(self, event_id: UUID) -> tuple[int, str] | None:
        """(position, payload hash) of an already stored event id."""
        ...

    def now(self) -> datetime:
        """The server's time (the store's clock): when what this session appends is received."""
        ...

    def source_offset(self, source: str) -> int | None:
        """The last offset of ``source`` whose records were committed (None: none yet)."""
        ...

    def set_source_offset(self, source: str, offset: int) -> None:
        """Record, in this transaction, that ``source`` has been taken up to ``offset``."""
        ...

    def prefetch(
        self, event_ids: Iterable[UUID], ae_ids: Iterable[UUID], patient_ids: Iterable[str]
    ) -> None:
        """Warm the lookups for a batch about to be appended (ids that may be absent are fine).

        Only a cache: lookups not prefetched are answered one by one, as before.
        """
        ...


class EventStore(Protocol):
    def write(self) -> AbstractContextManager[WriteSession]: ...

    def read(
        self, after: int = 0, limit: int | None = None, stored_until: datetime | None = None
    ) -> Iterator[StoredEvent]:
        """Events with position > ``after`` in position order (optionally stored <= a time)."""
        ...

    def payloads(
        self, after: int = 0, limit: int | None = None, stored_until: datetime | None = None
    ) -> Iterator[tuple[int, str, datetime]]:
        """Like ``read`` but only (position, canonical JSON, stored at): what projections and
        the monitor fold (the monitor's clock is the server's receipt time)."""
        ...

    def head(self) -> int:
        """The highest committed position (0 when empty)."""
        ...

    def position_at(self, moment: datetime) -> int:
        """The end of the log's prefix stored by ``moment`` (``read(stored_until=moment)``
        reads exactly the positions up to it; 0 when nothing was stored by then)."""
        ...

    def now(self) -> datetime:
        """The server's clock, as it stamps ``stored_at``."""
        ...

    def stream(self, trial_id: str, patient_id: str) -> list[StoredEvent]: ...

    def rejections(
        self, site_id: str | None = None, limit: int = 100, after: int | None = None
    ) -> list[Rejection]:
        """The newest first; with ``after``: those kept after that id, oldest first."""
        ...

    def verify(self) -> VerifyResult:
        """Walk the hash chain from the first event; name the first broken link."""
        ...

    def verify_rejections(self) -> VerifyResult:
        """Walk the dead letters' hash chain; name (by id) the first broken link."""
        ...
