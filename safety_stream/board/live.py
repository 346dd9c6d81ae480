"""The live board's server-sent events: one ``change`` event whenever a viewer's stamp moves.

Each event's id is the stamp, so a browser that reconnects sends it back (``Last-Event-ID``) and
hears at once about anything it missed in between. A stream ends by itself after a while and
the browser reconnects: an open board then never holds up a server's graceful shutdown for
longer than that.

Open streams cost the server little: :class:`LiveStreams` admits at most a few per credential
and a bounded number in all (beyond: 429), and the streams share their polls. One background
poll per stamp key (readers share one stamp, each site has its own) reads the stamp at most
every ``check_seconds`` while anyone watches it, and one per credential checks that the token
is still valid, so a revoked, rotated or expired credential's open streams end at their next
poll instead of at their next reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

CHECK_SECONDS = 0.5
STREAM_SECONDS = 15.0
RETRY_MILLISECONDS = 1000
STREAMS_PER_CREDENTIAL = 4
STREAMS_IN_ALL = 200

log = logging.getLogger("safety_stream.board.live")
T = TypeVar("T")


def change_message(stamp: str) -> str:
    return f"id: {stamp}\nevent: change\ndata: {stamp}\n\n"


async def _stream(
    next_stamp: Callable[[], Awaitable[str | None]],
    since: str | None,
    disconnected: Callable[[], Awaitable[bool]],
    stream_seconds: float,
) -> AsyncIterator[str]:
    """The protocol: a retry hint, then a ``change`` whenever the stamp moves. ``next_stamp``
    waits for the next reading; None ends the stream (the viewer may no longer watch)."""
    yield f"retry: {RETRY_MILLISECONDS}\n: watching\n\n"
    last = since
    ends = time.monotonic() + stream_seconds
    while True:
        stamp = await next_stamp()
        if stamp is None:
            return
        if last is not None and stamp != last:
            yield change_message(stamp)
        last = stamp
        if time.monotonic() >= ends or await disconnected():
            return


async def change_events(
    read_stamp: Callable[[], str],
    since: str | None,
    disconnected: Callable[[], Awaitable[bool]],
    check_seconds: float = CHECK_SECONDS,
    stream_seconds: float = STREAM_SECONDS,
) -> AsyncIterator[str]:
    """Yield SSE text: a ``change`` whenever ``read_stamp()`` differs from the last one seen.

    ``since`` is the stamp the client already shows (None: whatever is current now). The
    stamp is read in a worker thread, so store queries never block the event loop. This one
    stream polls on its own; the server's streams share their polls (:class:`LiveStreams`).
    """
    first = True

    async def next_stamp() -> str | None:
        nonlocal first
        if not first:
            await asyncio.sleep(check_seconds)
        first = False
        return await run_in_threadpool(read_stamp)

    async for message in _stream(next_stamp, since, disconnected, stream_seconds):
        yield message


class _Failed:
    """What a poll holds when its last reading raised (the streams watching it end)."""


FAILED = _Failed()


class SharedPoll(Generic[T]):
    """``read()`` in a worker thread at most every ``interval`` seconds, while anyone watches.

    Watchers wait for a reading newer than the one they saw; a new watcher waits for a reading
    that began after it arrived, so it never compares against a stale value.
    """

    def __init__(
        self, read: Callable[[], T], interval: float, on_idle: Callable[[SharedPoll[T]], None]
    ) -> None:
        self._read = read
        self._interval = interval
        self._on_idle = on_idle
        self.loop = asyncio.get_running_loop()
        self.value: T | _Failed | None = None
        self.generation = 0
        self.reading = False
        self.watchers = 0
        self._changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        """Whether a new watcher on this (the running) event loop may join this poll."""
        alive = self.task is not None and not self.task.done()
        return alive and self.loop is asyncio.get_running_loop()

    def join(self) -> int:
        """Start watching; returns the generation to wait beyond (see :meth:`after`)."""
        self.watchers += 1
        if self.task is None:
            self.task = self.loop.create_task(self._run())
        return self.generation + (1 if self.reading else 0)

    def leave(self) -> None:
        self.watchers -= 1

    async def after(self, generation: int) -> tuple[int, T | _Failed]:
        """The first reading newer than ``generation``: (its generation, its value)."""
        while self.generation <= generation:
            await self._changed.wait()
        assert self.value is not None
        return self.generation, self.value

    async def _run(self) -> None:
        while True:
            self.reading = True
            try:
                value: T | _Failed = await run_in_threadpool(self._read)
            except Exception:
                log.exception("a live board poll failed (its streams end; browsers reconnect)")
                value = FAILED
            finally:
                self.reading = False
            self.value = value
            self.generation += 1
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
            await asyncio.sleep(self._interval)
            if self.watchers <= 0:  # nobody joined meanwhile: stop (atomic with on_idle)
                self._on_idle(self)
                return


class StreamRefused(Exception):
    """Too many open streams: for this credential, or on this server (a 429)."""


@dataclass
class StreamSlot:
    """One admitted stream; :meth:`release` (idempotent) gives its place back."""

    streams: LiveStreams
    name: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.streams._release(self.name)


@dataclass
class LiveStreams:
    """The server's open board streams: admission caps and the polls they share."""

    per_credential: int = STREAMS_PER_CREDENTIAL
    in_all: int = STREAMS_IN_ALL
    check_seconds: float = CHECK_SECONDS
    stream_seconds: float = STREAM_SECONDS
    _open: dict[str, int] = field(default_factory=dict)
    _polls: dict[Hashable, SharedPoll[Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def open_streams(self) -> int:
        with self._lock:
            return sum(self._open.values())

    def admit(self, name: str) -> StreamSlot:
        """A place for one more stream of credential ``name``, or StreamRefused (why)."""
        with self._lock:
            if self._open.get(name, 0) >= self.per_credential:
                raise StreamRefused(
                    f"too many live board streams for {name} (at most {self.per_credential} "
                    "at a time): close a board tab or window, or wait for one to reconnect"
                )
            if sum(self._open.values()) >= self.in_all:
                raise StreamRefused(
                    f"the server has as many live board streams as it takes ({self.in_all}): "
                    "try again in a moment"
                )
            self._open[name] = self._open.get(name, 0) + 1
        return StreamSlot(self, name)

    def _release(self, name: str) -> None:
        with self._lock:
            left = self._open.get(name, 0) - 1
            if left > 0:
                self._open[name] = left
            else:
                self._open.pop(name, None)

    def _join(self, key: Hashable, read: Callable[[], Any]) -> tuple[SharedPoll[Any], int]:
        """Watch the poll of ``key`` on this event loop (started if none runs yet)."""
        with self._lock:
            poll = self._polls.get(key)
            if poll is None or not poll.usable:
                poll = SharedPoll(read, self.check_seconds, lambda idle: self._forget(key, idle))
                self._polls[key] = poll
            return poll, poll.join()

    def _forget(self, key: Hashable, poll: SharedPoll[Any]) -> None:
        with self._lock:
            if self._polls.get(key) is poll:
                del self._polls[key]

    def watching(self) -> int:
        """How many polls run now (for tests and metrics)."""
        with self._lock:
            return sum(1 for poll in self._polls.values() if poll.usable)

    async def events(
        self,
        slot: StreamSlot,
        stamp_key: Hashable,
        read_stamp: Callable[[], str],
        since: str | None,
        disconnected: Callable[[], Awaitable[bool]],
        credential: tuple[Hashable, Callable[[], bool]] | None = None,
        still_allowed: Callable[[], bool] = lambda: True,
    ) -> AsyncIterator[str]:
        """The stream of one admitted viewer, reading the shared polls.

        ``stamp_key`` names what ``read_stamp`` reads (viewers with the same key share one
        poll); ``credential`` is (key, whether the credential is still valid), polled the same
        way; ``still_allowed`` is a cheap check made at every poll (a session still open).
        """
        stamps, seen = self._join(("stamp", stamp_key), read_stamp)
        check = self._join(("credential", credential[0]), credential[1])[0] if credential else None
        try:

            async def next_stamp() -> str | None:
                nonlocal seen
                seen, stamp = await stamps.after(seen)
                valid = check.value if check is not None else True
                if isinstance(stamp, _Failed) or valid is False or isinstance(valid, _Failed):
                    return None
                return stamp if still_allowed() else None

            async for message in _stream(next_stamp, since, disconnected, self.stream_seconds):
                yield message
        finally:
            stamps.leave()
            if check is not None:
                check.leave()
            slot.release()


class LiveResponse(StreamingResponse):
    """An event stream whose slot is given back however the response ends (a client that
    goes away mid-stream included)."""

    def __init__(self, content: AsyncIterator[str], slot: StreamSlot) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._content = content
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slot.release()
            closing = getattr(self._content, "aclose", None)
            if closing is not None:
                await closing()
