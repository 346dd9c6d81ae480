"""Keeping the projection up to date with the log, and rebuilding it by replay.

The projector reads the log after its recorded position, folds each event into the state, and
saves the changed documents together with the new position in one transaction: after a crash
it resumes exactly where the last commit left it, so no event is applied twice or skipped.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from safety_stream.events import EventBase, decode_json
from safety_stream.projections.state import TrialState, apply
from safety_stream.store.base import EventStore

PROJECTION = "trial_state"
# The projection holds a few objects per event and lives as long as the process. Left in the
# collected generations, every full garbage collection walks all of it, and ingest slowed 4x at
# 100,000 events. Whenever it has grown by this many events the heap is frozen (gc.freeze):
# frozen objects are still freed by reference counting, only no longer scanned for cycles.
FREEZE_EVERY = 20_000


class ProjectionRepository(Protocol):
    """Where projection state lives between runs (memory, SQL)."""

    def load(self) -> TrialState: ...

    def save(self, state: TrialState, patients: set[str], aes: set[UUID]) -> None:
        """Persist the changed documents and ``state.position`` in one transaction."""
        ...

    def replace_all(self, state: TrialState) -> None:
        """Replace everything with ``state`` (after a replay), in one transaction."""
        ...


def fold(
    state: TrialState,
    store: EventStore,
    limit: int | None = None,
    stored_until: datetime | None = None,
) -> tuple[int, set[str], set[UUID]]:
    """Apply the events after ``state.position``; returns (count, changed patients, AEs)."""
    patients: set[str] = set()
    aes: set[UUID] = set()
    count = 0
    for position, payload in store.payloads(state.position, limit, stored_until):
        patient, ae = apply(state, decode_json(payload), position)
        if patient is not None:
            patients.add(patient)
        if ae is not None:
            aes.add(ae)
        count += 1
        if count % FREEZE_EVERY == 0:
            gc.freeze()
    return count, patients, aes


class Projector:
    """The live projection of one store: catch up after appends, read under a lock."""

    def __init__(self, store: EventStore, repository: ProjectionRepository) -> None:
        self._store = store
        self._repository = repository
        self._lock = threading.RLock()
        self.state = repository.load()
        self._frozen_at = -FREEZE_EVERY
        self._settle()

    def _settle(self) -> None:
        if self.state.position - self._frozen_at >= FREEZE_EVERY:
            gc.freeze()
            self._frozen_at = self.state.position

    @property
    def lock(self) -> threading.RLock:
        """Hold it while reading ``state`` from another thread."""
        return self._lock

    def catch_up(self, batch: int = 10_000) -> int:
        """Apply everything committed since the last run; returns how many events."""
        total = 0
        with self._lock:
            while True:
                count, patients, aes = fold(self.state, self._store, limit=batch)
                if count == 0:
                    self._settle()
                    return total
                self._repository.save(self.state, patients, aes)
                total += count

    def follow(self, appended: Sequence[tuple[int, EventBase]]) -> int:
        """Apply events just committed by this process, without reading them back.

        ``appended`` are (position, event) in position order, as a write committed them. If
        they do not continue the state exactly (another writer committed in between, or this
        batch was already caught up), the projector catches up from the log instead.
        """
        with self._lock:
            first = self.state.position + 1
            if (
                not appended
                or appended[0][0] != first
                or appended[-1][0] != first + len(appended) - 1
            ):
                return self.catch_up()
            patients: set[str] = set()
            aes: set[UUID] = set()
            for position, event in appended:
                patient, ae = apply(self.state, event, position)
                if patient is not None:
                    patients.add(patient)
                if ae is not None:
                    aes.add(ae)
            self._repository.save(self.state, patients, aes)
            self._settle()
            return len(appended)


def replay(
    store: EventStore,
    repository: ProjectionRepository,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[TrialState, int, float]:
    """Rebuild the projection from the first event; returns (state, events, seconds)."""
    state = TrialState()
    started = time.perf_counter()
    count = 0
    for position, payload in store.payloads():
        apply(state, decode_json(payload), position)
        count += 1
        if count % FREEZE_EVERY == 0:
            gc.freeze()
            if progress is not None:
                progress(count, time.perf_counter() - started)
    repository.replace_all(state)
    return state, count, time.perf_counter() - started


def state_as_of(store: EventStore, when: datetime) -> TrialState:
    """The state as the system knew it at ``when`` (events stored up to then)."""
    state = TrialState()
    fold(state, store, stored_until=when)
    return state
