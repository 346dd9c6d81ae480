"""Submission health per site: events stored, dead letters, and when each last arrived.

Counted from the log and the dead-letter store themselves, incrementally: each refresh reads
only what was stored since the last one, so a board that refreshes every few seconds costs a
small query, and the first refresh after a start reads the log once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime

from safety_stream.store.base import EventStore

READ_BATCH = 10_000


@dataclass(frozen=True)
class SiteSubmissions:
    """One site's submissions (``site_id`` None: dead letters no site could be named for)."""

    site_id: str | None
    events: int = 0
    dead_letters: int = 0
    last_event_at: datetime | None = None
    last_dead_letter_at: datetime | None = None

    @property
    def rejected_share(self) -> float | None:
        total = self.events + self.dead_letters
        return self.dead_letters / total if total else None


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


class SubmissionTally:
    """Per-site counts, brought up to date from a store by ``refresh`` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._position = 0  # the last log position counted
        self._rejection = 0  # the last dead-letter id counted
        self._sites: dict[str | None, SiteSubmissions] = {}

    def refresh(self, store: EventStore) -> None:
        with self._lock:
            while True:
                read = 0
                for stored in store.read(after=self._position, limit=READ_BATCH):
                    row = self._sites.get(stored.site_id) or SiteSubmissions(stored.site_id)
                    self._sites[stored.site_id] = replace(
                        row,
                        events=row.events + 1,
                        last_event_at=_later(row.last_event_at, stored.stored_at),
                    )
                    self._position = stored.position
                    read += 1
                if read < READ_BATCH:
                    break
            while True:
                batch = store.rejections(after=self._rejection, limit=READ_BATCH)
                for rejection in batch:
                    row = self._sites.get(rejection.site_id) or SiteSubmissions(rejection.site_id)
                    self._sites[rejection.site_id] = replace(
                        row,
                        dead_letters=row.dead_letters + 1,
                        last_dead_letter_at=_later(row.last_dead_letter_at, rejection.received_at),
                    )
                    self._rejection = rejection.id
                if len(batch) < READ_BATCH:
                    break

    def rows(self, site_id: str | None = None) -> list[SiteSubmissions]:
        """Every site by id (unattributed dead letters last), or just ``site_id``'s row."""
        with self._lock:
            if site_id is not None:
                return [self._sites.get(site_id) or SiteSubmissions(site_id)]
            return sorted(self._sites.values(), key=lambda r: (r.site_id is None, r.site_id or ""))
