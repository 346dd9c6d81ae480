"""A real SMTP server (aiosmtpd) for the tests, run as its own process so a test can kill it.

Every accepted message is written (and fsynced) to the spool directory before the server
answers 250. With ``--hold``, DATA is never answered: the server writes ``holding`` to the
spool and waits, so a test can kill it in the middle of a delivery.

    python tests/smtp_sink.py --port 2525 --spool DIR [--hold] [--tls CERT KEY --user U:P]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


class Spool:
    def __init__(self, directory: Path, hold: bool) -> None:
        self.directory = directory
        self.hold = hold

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.hold:
            (self.directory / "holding").write_text("DATA received, not answering\n")
            await asyncio.sleep(3600)
        path = self.directory / f"{time.time_ns()}-{uuid.uuid4().hex}.eml"
        with open(path, "wb") as handle:
            handle.write(envelope.original_content or b"")
            handle.flush()
            os.fsync(handle.fileno())
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spool", type=Path, required=True)
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--user", help="USER:PASSWORD required after STARTTLS")
    args = parser.parse_args()
    options: dict[str, Any] = {}
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*args.tls)
        options.update(tls_context=context, require_starttls=True)
    if args.user:
        expected = args.user.encode()

        def authenticate(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            given = isinstance(data, LoginPassword) and data.login + b":" + data.password
            return AuthResult(success=given == expected)

        options.update(authenticator=authenticate, auth_required=True)
    controller = Controller(
        Spool(args.spool, args.hold), hostname="127.0.0.1", port=args.port, **options
    )
    controller.start()
    (args.spool / "ready").write_text(str(os.getpid()))
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
