"""Reads "as the system stood at" a past time (``?as_of=``), bounded.

Such a read folds the log from the start, so it costs what a replay costs. It never holds the
projector's lock (live reads and ingest go on), the last few states are kept by the log
position they end at (the same cut-off asked twice, or two times with nothing stored between
them, fold once), one fold runs at a time, and each credential may start only a few folds a
minute: past that it gets a 429 with ``Retry-After``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import HTTPException, Query
from fastapi.exceptions import RequestValidationError

from safety_stream.projections.projector import fold
from safety_stream.projections.state import TrialState
from safety_stream.store.base import EventStore

AsOf = Annotated[
    str | None,
    Query(
        description="Answer as the system stood at this time (ISO 8601 with offset)",
        json_schema_extra={"format": "date-time"},
    ),
]


def parse_as_of(text: str) -> datetime:
    """An ISO 8601 time with a UTC offset; anything else is a 422 that says so."""
    try:
        moment: datetime | None = datetime.fromisoformat(text)
        if moment is not None and moment.tzinfo is not None:
            moment = moment.astimezone(UTC)  # past the calendar's end in UTC: refused
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise RequestValidationError(
            [
                {
                    "type": "datetime_parsing",
                    "loc": ("query", "as_of"),
                    "msg": "as_of must be an ISO 8601 time with a UTC offset, "
                    "e.g. 2026-03-01T00:00:00Z",
                    "input": text,
                }
            ]
        )
    return moment


FOLDS_PER_MINUTE = 6
"""New as-of folds a credential may start per minute (a bucket that refills continuously)."""
KEPT_STATES = 4


class PastStates:
    """Folded past states, a few kept by log position; folds rate-limited per credential."""

    def __init__(
        self, store: EventStore, kept: int = KEPT_STATES, per_minute: int = FOLDS_PER_MINUTE
    ) -> None:
        self._store = store
        self._kept = kept
        self._states: OrderedDict[int, TrialState] = OrderedDict()
        self._per_minute = per_minute
        self._allowance: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)
        self._lock = threading.Lock()  # the cache and the allowances
        self._folding = threading.Lock()  # one fold at a time

    def state(self, caller: str, moment: datetime) -> TrialState:
        """The state as stored by ``moment`` (do not change it: it is shared)."""
        position = self._store.position_at(moment)
        with self._lock:
            if position in self._states:
                self._states.move_to_end(position)
                return self._states[position]
            self._spend(caller)
        with self._folding:
            with self._lock:
                if position in self._states:  # folded while this one waited
                    return self._states[position]
            state = TrialState()
            if position:
                fold(state, self._store, limit=position)
            with self._lock:
                self._states[position] = state
                while len(self._states) > self._kept:
                    self._states.popitem(last=False)
            return state

    def _spend(self, caller: str) -> None:
        """Take one fold from ``caller``'s allowance (a bucket of ``per_minute`` that refills
        continuously), or refuse with 429 and when to come back."""
        now = time.monotonic()
        tokens, at = self._allowance.get(caller, (float(self._per_minute), now))
        tokens = min(float(self._per_minute), tokens + (now - at) * self._per_minute / 60)
        if tokens < 1:
            wait = math.ceil((1 - tokens) * 60 / self._per_minute)
            raise HTTPException(
                429,
                f"at most {self._per_minute} reads of a new as_of time a minute per "
                "credential (each folds the whole log); a time asked before is answered "
                "from the cache",
                {"Retry-After": str(wait)},
            )
        self._allowance[caller] = (tokens - 1, now)
