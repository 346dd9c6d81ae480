"""Keeping the projection up to date with the log, and rebuilding it by replay.

The projector reads the log after its recorded position and folds each event into the state
in memory, which is what readers see. The log is the only durable record an acknowledgement
waits for; the projection is checkpointed: the documents changed since the last checkpoint are
saved together with the position in one transaction every ``checkpoint_events`` events or
``checkpoint_seconds`` seconds, and at once whenever the observer derived something. After a
crash the projector loads the last checkpoint and folds the log's tail again, so no event is
applied twice or skipped, and the live state equals a replay.

An observer (the safety monitor) sees every event right after it is applied; what it derives
is saved with a checkpoint of the state it came from, so derived events and that state never
part (derived ids are deterministic: folding a tail again derives the same ones).

No stored event may stop the fold: one that cannot be decoded, applied or observed is
quarantined (the observer records it and raises an alert) and the fold goes on. A save that
fails leaves nothing half-done in memory: the projector reloads the persisted state and
position, so the batch is folded again from the log on the next catch-up.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from safety_stream.events import EventBase, decode_json
from safety_stream.projections.log import PayloadLog
from safety_stream.projections.state import TrialState, apply

log = logging.getLogger(__name__)

PROJECTION = "trial_state"
# The projection holds a few objects per event and lives as long as the process. Left in the
# collected generations, every full garbage collection walks all of it, and ingest slowed 4x at
# 100,000 events. Whenever it has grown by this many events the heap is frozen (gc.freeze):
# frozen objects are still freed by reference counting, only no longer scanned for cycles.
FREEZE_EVERY = 20_000
CHECKPOINT_EVENTS = 5_000  # a crash folds at most this many events again at start-up
CHECKPOINT_SECONDS = 2.0


class StaleProjectionError(Exception):
    """Another projector already saved this projection at or past this position."""

    def __init__(self, position: int) -> None:
        self.position = position
        super().__init__(f"the stored projection is already at or past position {position}")


@dataclass(frozen=True, slots=True)
class Quarantine:
    """A stored event that a fold step could not process; the fold went on without it."""

    position: int
    event_type: str  # "unknown" when the payload itself no longer decodes
    step: str  # decode | apply | observe
    error: str  # the exception's class and where it was raised: never its message (it may
    # quote the event, and with it a patient id)


def quarantine_of(position: int, event_type: str, step: str, error: BaseException) -> Quarantine:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" in {frames[-1].name} ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})"
    found = Quarantine(position, event_type, step, type(error).__name__ + (where if frames else ""))
    log.error("event at position %d quarantined (%s): %s", position, step, found.error)
    log.debug("quarantined event at position %d", position, exc_info=error)
    return found


class Observer(Protocol):
    """Sees each event after it is applied (the monitor); returns what it derives."""

    def observe(
        self,
        state: TrialState,
        event: EventBase,
        position: int,
        received_at: datetime | None = None,
    ) -> list[Any]:
        """``received_at``: when the server stored it (the monitor's clock); None offline."""
        ...

    def quarantine(self, quarantined: Quarantine, received_at: datetime | None) -> list[Any]:
        """Record that a stored event was set aside; returns what that derives (an alert)."""
        ...

    def rebuild(self, store: PayloadLog, upto: int) -> None:
        """Get back to ``upto`` after a restart, without deriving anything anew."""
        ...


class ProjectionRepository(Protocol):
    """Where projection state lives between runs (memory, SQL)."""

    def load(self) -> TrialState: ...

    def save(
        self, state: TrialState, patients: set[str], aes: set[UUID], derived: Sequence[Any] = ()
    ) -> None:
        """Persist the changed documents, derived events and ``state.position`` in one
        transaction (a derived event already stored is left as it is)."""
        ...

    def replace_all(self, state: TrialState, derived: Sequence[Any] = ()) -> None:
        """Replace the documents with ``state`` (after a replay), in one transaction."""
        ...


@dataclass
class Changes:
    """What folding some events changed: the keys to persist and the derived events."""

    count: int = 0
    patients: set[str] = field(default_factory=set)
    aes: set[UUID] = field(default_factory=set)
    derived: list[Any] = field(default_factory=list)
    # False: ``patients`` and ``aes`` stay empty (a replay writes every document anyway, and
    # half a million keys hashed into sets cost it more than the keys are worth)
    keys: bool = True

    def fold(
        self,
        state: TrialState,
        event: EventBase | bytes | str,
        position: int,
        observer: Observer | None,
        received_at: datetime | None = None,
    ) -> None:
        """Fold one stored event (or its payload, decoded here); one that fails is quarantined."""
        self.count += 1
        if self.count % FREEZE_EVERY == 0:
            gc.freeze()
        step = "decode"
        try:
            if not isinstance(event, EventBase):
                event = decode_json(event)
            step = "apply"
            patient, ae = apply(state, event, position)
            if self.keys:
                if patient is not None:
                    self.patients.add(patient)
                if ae is not None:
                    self.aes.add(ae)
            if observer is not None:
                step = "observe"
                self.derived += observer.observe(state, event, position, received_at)
        except Exception as error:
            if state.position < position:  # the apply step did not get to its end
                state.position = position
            event_type = "unknown"  # when the payload itself no longer decodes
            if isinstance(event, EventBase):  # save what it may have half changed, as it is
                event_type = event.event_type
                self._touched(state, event)
            found = quarantine_of(position, event_type, step, error)
            if observer is not None:
                self.derived += observer.quarantine(found, received_at)

    def _touched(self, state: TrialState, event: EventBase) -> None:
        """Mark the documents a failed step may have changed, so memory and saved agree."""
        if not self.keys:
            return
        if event.patient_id in state.patients:
            self.patients.add(event.patient_id)
        for key in (event.event_id, getattr(event, "ae_id", None)):
            if key in state.aes:
                self.aes.add(key)


def fold(
    state: TrialState,
    store: PayloadLog,
    limit: int | None = None,
    stored_until: datetime | None = None,
    observer: Observer | None = None,
) -> Changes:
    """Apply the events after ``state.position``."""
    changes = Changes()
    for position, payload, stored_at in store.payloads(state.position, limit, stored_until):
        changes.fold(state, payload, position, observer, stored_at)
    return changes


class Projector:
    """The live projection of one store: catch up after appends, read under a lock."""

    def __init__(
        self,
        store: PayloadLog,
        repository: ProjectionRepository,
        observer: Observer | None = None,
        persist: bool = True,
        checkpoint_events: int = CHECKPOINT_EVENTS,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
    ) -> None:
        """``persist=False``: a follower that keeps up in memory and never saves (the API of
        the distributed runtime reads what the workers project). ``checkpoint_events=1``
        saves after every fold."""
        self._store = store
        self._persist = persist
        self._repository = repository
        self._observer = observer
        self._checkpoint_events = checkpoint_events
        self._checkpoint_seconds = checkpoint_seconds
        self._lock = threading.RLock()
        self.state = self._load()
        self._frozen_at = -FREEZE_EVERY
        self._unsaved = Changes()  # folded since the last checkpoint
        self._unsaved_since = time.monotonic()
        self.listeners: list[Callable[[Changes], None]] = []  # told after each fold
        self.save_failure: str | None = None  # why the last save failed, until one succeeds
        self._settle()

    def _load(self) -> TrialState:
        state = self._repository.load()
        if self._observer is not None:
            self._observer.rebuild(self._store, state.position)
        return state

    def _settle(self) -> None:
        if self.state.position - self._frozen_at >= FREEZE_EVERY:
            gc.freeze()
            self._frozen_at = self.state.position

    @property
    def lock(self) -> threading.RLock:
        """Hold it while reading ``state`` from another thread."""
        return self._lock

    @property
    def unsaved(self) -> int:
        """Events folded since the last checkpoint (a crash now folds them again)."""
        return self._unsaved.count

    def _due(self) -> bool:
        return (
            self.save_failure is not None  # retried at every fold until one succeeds
            or self._unsaved.count >= self._checkpoint_events
            or time.monotonic() - self._unsaved_since >= self._checkpoint_seconds
        )

    def _save(self, changes: Changes) -> bool:
        """Fold ``changes`` into the unsaved ones and checkpoint when due (at once when they
        derived something); False when another projector got further first (then reloaded
        from it).

        Any other failure (disk full, I/O error, lock timeout) reloads the persisted state and
        re-raises: the events are folded again from the log next time, never skipped.
        """
        unsaved = self._unsaved
        if unsaved.count == 0:
            self._unsaved_since = time.monotonic()
        unsaved.count += changes.count
        unsaved.patients |= changes.patients
        unsaved.aes |= changes.aes
        unsaved.derived += changes.derived
        if unsaved.derived or self._due():
            try:
                self._write_checkpoint()
            except StaleProjectionError:
                return False
        for listener in self.listeners:
            listener(changes)
        return True

    def _write_checkpoint(self) -> None:
        unsaved, self._unsaved = self._unsaved, Changes()
        self._unsaved_since = time.monotonic()
        try:
            if self._persist and unsaved.count:
                self._repository.save(self.state, unsaved.patients, unsaved.aes, unsaved.derived)
        except StaleProjectionError:
            self.state = self._load()
            raise
        except BaseException as error:
            self.save_failure = f"{type(error).__name__} while saving the projection"
            self.state = self._load()
            raise
        self.save_failure = None

    def checkpoint(self) -> bool:
        """Save what was folded since the last checkpoint now (at shutdown, or when idle);
        False when another projector had saved further (then reloaded from it)."""
        with self._lock:
            try:
                self._write_checkpoint()
            except StaleProjectionError:
                return False
            return True

    def catch_up(self, batch: int = 10_000) -> int:
        """Apply everything committed since the last run; returns how many events. With
        nothing new, writes a checkpoint that has fallen due."""
        total = 0
        with self._lock:
            while True:
                changes = fold(self.state, self._store, limit=batch, observer=self._observer)
                if changes.count == 0:
                    if self._unsaved.count and self._due():
                        self.checkpoint()
                    self._settle()
                    return total
                if self._save(changes):
                    total += changes.count

    def follow(self, appended: Sequence[tuple[int, EventBase, datetime]]) -> int:
        """Apply events just committed by this process, without reading them back.

        ``appended`` are (position, event, stored at) in position order, as a write committed
        them. If they do not continue the state exactly (another writer committed in between,
        or this batch was already caught up), the projector catches up from the log instead.
        """
        with self._lock:
            first = self.state.position + 1
            if (
                not appended
                or appended[0][0] != first
                or appended[-1][0] != first + len(appended) - 1
            ):
                return self.catch_up()
            changes = Changes()
            for position, event, stored_at in appended:
                changes.fold(self.state, event, position, self._observer, stored_at)
            if not self._save(changes):
                return self.catch_up()
            self._settle()
            return changes.count


def replay(
    store: PayloadLog,
    repository: ProjectionRepository,
    progress: Callable[[int, float], None] | None = None,
    observer: Observer | None = None,
) -> tuple[TrialState, int, float]:
    """Rebuild the projection from the first event; returns (state, events, seconds)."""
    state = TrialState()
    started = time.perf_counter()
    changes = Changes(keys=False)  # every document is written
    fold_one = changes.fold
    if progress is None:
        for position, payload, stored_at in store.payloads():
            fold_one(state, payload, position, observer, stored_at)
    else:
        for position, payload, stored_at in store.payloads():
            fold_one(state, payload, position, observer, stored_at)
            if changes.count % FREEZE_EVERY == 0:
                progress(changes.count, time.perf_counter() - started)
    repository.replace_all(state, changes.derived)
    return state, changes.count, time.perf_counter() - started


def state_as_of(store: PayloadLog, when: datetime, observer: Observer | None = None) -> TrialState:
    """The state as the system knew it at ``when`` (events stored up to then)."""
    state = TrialState()
    fold(state, store, stored_until=when, observer=observer)
    return state
