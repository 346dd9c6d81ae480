"""uvicorn's HTTP/1.1 protocol with what it lacks against slow clients: a request-head timeout
and a connection cap that makes room by dropping connections still sending their head.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but has no timeout for a
request head that never ends: a client that sends ``GET / HTTP/1.1\\r\\nHost: x\\r\\n`` and
nothing more (slowloris) holds its connection for ever. :class:`HeadTimeoutProtocol` arms a
timer when a connection opens and again when a keep-alive connection has finished a response;
the timer is cancelled once a whole request head has arrived, and closes the connection if it
fires first. When ``max_connections`` connections are open, a new one makes room by closing the
connection that has waited longest for its head; if none is waiting, uvicorn's
``limit_concurrency`` (set to the same number) answers the new requests 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from safety_stream.settings import Settings

log = logging.getLogger("safety_stream.serve")


class HeadTimeoutProtocol(H11Protocol):
    """H11Protocol that closes a connection whose request head is not complete in time."""

    head_timeout: float = 10.0
    max_connections: int = 1000

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.head_timer: asyncio.TimerHandle | None = None
        self.waiting_since = 0.0

    # uvicorn declares a BaseTransport here; its server always passes an asyncio.Transport
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        if len(self.connections) >= self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.head_timer is not None and self.conn.their_state is not h11.IDLE:
            self._disarm()  # a whole request head arrived (or the request was refused)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # keep-alive: the next request's head must come in time too

    def _arm(self) -> None:
        self._disarm()
        self.waiting_since = time.monotonic()
        self.head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing():
            log.debug("closing a connection that sent no whole request head in time")
            self.transport.close()

    def _make_room(self) -> None:
        """Close the connection that has waited longest for its request head (not this one)."""
        waiting = [
            connection
            for connection in self.connections
            if isinstance(connection, HeadTimeoutProtocol)
            and connection is not self
            and connection.head_timer is not None
            and not connection.transport.is_closing()
        ]
        if waiting:
            oldest = min(waiting, key=lambda connection: connection.waiting_since)
            oldest._disarm()
            oldest.transport.close()


def head_timeout_protocol(head_timeout: float, max_connections: int) -> type[H11Protocol]:
    """The protocol class for uvicorn's ``Config(http=...)`` with these limits."""
    return type(
        "HeadTimeoutH11Protocol",
        (HeadTimeoutProtocol,),
        {"head_timeout": head_timeout, "max_connections": max_connections},
    )


def server_config(app: Any, settings: Settings) -> Config:
    """uvicorn's configuration for ``serve``: limits and timeouts from ``settings``."""
    return Config(
        app,
        log_level="info",
        access_log=False,
        # the board's live streams would hold a graceful shutdown open: give them 5 s
        timeout_graceful_shutdown=5,
        http=head_timeout_protocol(settings.header_timeout_seconds, settings.max_connections),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_seconds,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
