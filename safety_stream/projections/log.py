"""What folding needs from the event store: the stored payloads in position order.

The projector and the monitor read the log through this protocol rather than the store's port
(``safety_stream.store.base.EventStore``, which satisfies it), so the domain never imports the
store: the store's backends import the domain, never the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol


class PayloadLog(Protocol):
    def payloads(
        self, after: int = 0, limit: int | None = None, stored_until: datetime | None = None
    ) -> Iterator[tuple[int, str, datetime]]:
        """(position, canonical JSON, stored at) of the events with position > ``after``, in
        position order (optionally only those stored <= ``stored_until``)."""
        ...
