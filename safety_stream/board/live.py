"""The live board's server-sent events: one ``change`` event whenever a viewer's stamp moves.

Each event's id is the stamp, so a browser that reconnects sends it back (``Last-Event-ID``) and
hears at once about anything it missed in between. A stream ends by itself after a while and
the browser reconnects: an open board then never holds up a server's graceful shutdown for
longer than that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi.concurrency import run_in_threadpool

CHECK_SECONDS = 0.5
STREAM_SECONDS = 15.0
RETRY_MILLISECONDS = 1000


def change_message(stamp: str) -> str:
    return f"id: {stamp}\nevent: change\ndata: {stamp}\n\n"


async def change_events(
    read_stamp: Callable[[], str],
    since: str | None,
    disconnected: Callable[[], Awaitable[bool]],
    check_seconds: float = CHECK_SECONDS,
    stream_seconds: float = STREAM_SECONDS,
) -> AsyncIterator[str]:
    """Yield SSE text: a ``change`` whenever ``read_stamp()`` differs from the last one seen.

    ``since`` is the stamp the client already shows (None: whatever is current now). The
    stamp is read in a worker thread, so store queries never block the event loop.
    """
    yield f"retry: {RETRY_MILLISECONDS}\n: watching\n\n"
    last = since
    ends = time.monotonic() + stream_seconds
    while True:
        stamp = await run_in_threadpool(read_stamp)
        if last is not None and stamp != last:
            yield change_message(stamp)
        last = stamp
        if time.monotonic() >= ends or await disconnected():
            return
        await asyncio.sleep(check_seconds)
