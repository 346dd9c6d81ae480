"""The review dataset, live: folded from the event store on demand, read under one lock.

The review workspace (AE listing, patient profiles, DMC tables, liver safety, exports) reads a
:class:`ReviewData` folded from the log. :meth:`ReviewReads.read` catches up with the store
(only the events stored since the last read are folded) and runs the caller's function on
what the principal may see, under the lock: the function sees one log position, and no other
request folds underneath it. What it returns must not keep references into the data (return
computed rows, not the data's own lists).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from safety_stream.application.reads import site_of
from safety_stream.auth import Principal
from safety_stream.review.dataset import ReviewData
from safety_stream.store.base import EventStore

T = TypeVar("T")


class ReviewReads:
    """One live :class:`ReviewData` over ``store``, folded forward on each read."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._data = ReviewData()
        self._lock = threading.Lock()

    def _catch_up(self) -> None:
        rows = (
            (s.position, s.payload, s.stored_at, s.chain_hash)
            for s in self._store.read(after=self._data.position)
        )
        self._data.fold_payloads(rows)

    def read(self, principal: Principal, compute: Callable[[ReviewData], T]) -> T:
        """``compute`` of what ``principal`` may see, at the log's current position."""
        with self._lock:
            self._catch_up()
            return compute(self._data.for_site(site_of(principal)))
