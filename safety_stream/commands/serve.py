"""``safety-stream serve``: the embedded runtime (API + store + projections) in one process."""

from __future__ import annotations

import errno
import logging
import socket

import uvicorn

from safety_stream.api.app import create_app
from safety_stream.errors import UsageError
from safety_stream.kafka.topics import ensure_topics
from safety_stream.runtime import (
    build_distributed_api,
    build_runtime,
    load_alerts_or_default,
    load_plan_or_default,
)
from safety_stream.serving import server_config
from safety_stream.settings import Settings
from safety_stream.ticking import Ticker

log = logging.getLogger("safety_stream.serve")


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything says it is serving (UsageError if taken)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        # IPPROTO_TCP named: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on accepted
        # sockets whose protocol says TCP; with 0 every response waited for a delayed ACK (40 ms)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as error:
        raise UsageError(f"--host {host}: {getattr(error, 'strerror', None) or error}") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        hint = (
            " (another server is using it: stop it or give --port)"
            if error.errno
            in (
                errno.EADDRINUSE,
                errno.EACCES,
            )
            else ""
        )
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror}{hint}") from None
    sock.listen(2048)
    return sock


def run(settings: Settings) -> int:
    # what the user named is checked before a database is created or a port taken
    load_plan_or_default(settings.plan)
    load_alerts_or_default(settings.alerts)
    sock = listen(settings.host, settings.port)
    try:
        return _serve(settings, sock)
    finally:
        sock.close()


def _serve(settings: Settings, sock: socket.socket) -> int:
    if settings.kafka is not None:  # distributed: workers store, monitor and alert
        ensure_topics(settings.kafka)
        runtime = build_distributed_api(settings)
    else:
        runtime = build_runtime(settings)
    app = create_app(runtime)
    host, port = sock.getsockname()[:2]
    log.info(
        "serving on http://%s:%s (plan %s v%s)",
        host if ":" not in host else f"[{host}]",
        port,
        runtime.plan.trial.id,
        runtime.plan.version,
    )
    ticker = None
    if settings.kafka is None:  # the embedded runtime: its monitor keeps the server's time
        runtime.dispatcher.start()
        ticker = Ticker(runtime, runtime.settings.tick_seconds)
        ticker.start()
    try:
        # limits and timeouts against slow or numerous clients (safety_stream.serving)
        uvicorn.Server(server_config(app, runtime.settings)).run(sockets=[sock])
    finally:
        if ticker is not None:
            ticker.stop()
        runtime.close()
    return 0
