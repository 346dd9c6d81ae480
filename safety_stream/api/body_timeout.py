"""A deadline for receiving a request's body.

The server closes a connection whose request head does not arrive in time
(``safety_stream.serving``); a client can still send a whole head and then drip the body a
byte at a time. This middleware gives every request ``seconds`` from its first read of the
body to its last: past that, reading raises ``BodyTimeout`` and the app answers 408 and closes
the connection. Once the body is complete, ``receive`` is passed through unchanged (a live
stream waits on it for the client's disconnect, for as long as the stream lasts).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTimeout(Exception):
    """The request body did not arrive in time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the request body did not arrive within {seconds:g} s")


class BodyDeadline:
    """ASGI middleware: at most ``seconds`` to receive a request's whole body."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        state: dict[str, Any] = {"deadline": None, "done": False}

        async def timed_receive() -> Message:
            if state["done"]:
                return await receive()
            if state["deadline"] is None:
                state["deadline"] = loop.time() + self.seconds
            remaining = state["deadline"] - loop.time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0))
            except TimeoutError:
                raise BodyTimeout(self.seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["done"] = True
            return message

        await self.app(scope, timed_receive, send)
