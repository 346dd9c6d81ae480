"""Who is looking at the safety board: a login session behind a cookie, or a bearer token.

The board keeps its sessions on the server: the cookie holds only a random session id
(HttpOnly, SameSite=Strict, path /board, Secure over https), never the API token itself. The
token is long-lived and opens the whole API (a site's token writes events); a session id is
worth nothing after logout, after an hour without use or after twelve hours, and only to the
board. Each request also checks that the token which opened the session is still valid, so a
credential revoked, rotated or expired ends its sessions at their next request. The price is
that sessions live in this process's memory: a restart sends everyone back to the login page,
and each API process has sessions of its own.

Every POST must come from the board's own pages: a foreign ``Origin`` (or ``Referer``) is
refused, and a POST made with the cookie must also carry the session's CSRF token and name
its origin. A POST with ``Authorization: Bearer`` (scripts, curl) needs neither: browsers never
attach that header on their own. The origin is compared with the ``Host`` header, so a reverse
proxy in front must pass ``Host`` through unchanged.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from safety_stream.auth import Credentials, Principal

COOKIE = "board_session"
COOKIE_PATH = "/board"
IDLE_SECONDS = 60 * 60
LIFETIME_SECONDS = 12 * 60 * 60
MAX_SESSIONS = 10_000
SESSIONS_PER_CREDENTIAL = 8


@dataclass
class BoardSession:
    principal: Principal
    csrf: str
    opened: float
    seen: float


@dataclass(frozen=True)
class Visitor:
    """An authenticated board user and how they proved it (``session`` None: bearer token)."""

    principal: Principal
    session: BoardSession | None = None

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session is not None else ""


def _key(session_id: str) -> str:
    # only hashes are kept, so a dump of this process's memory holds no usable cookie
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass
class SessionStore:
    """Board sessions in memory, with idle and absolute expiry (thread-safe)."""

    clock: Callable[[], float] = time.monotonic
    idle_seconds: float = IDLE_SECONDS
    lifetime_seconds: float = LIFETIME_SECONDS
    _sessions: dict[str, BoardSession] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, principal: Principal) -> str:
        """A new session for ``principal``; returns its id (the cookie's value)."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._prune(now)
            # one credential holds a few sessions (its browsers): logging in over and over
            # replaces its own oldest, never another person's
            mine = [k for k, s in self._sessions.items() if s.principal.name == principal.name]
            if len(mine) >= SESSIONS_PER_CREDENTIAL:
                del self._sessions[min(mine, key=lambda k: self._sessions[k].seen)]
            if len(self._sessions) >= MAX_SESSIONS:  # drop the least recently used
                oldest = min(self._sessions, key=lambda k: self._sessions[k].seen)
                del self._sessions[oldest]
            self._sessions[_key(session_id)] = BoardSession(
                principal, secrets.token_urlsafe(24), now, now
            )
        return session_id

    def find(self, session_id: str, touch: bool = True) -> BoardSession | None:
        """The live session with this id, or None. ``touch``: a person used it (a page load or
        a form); the page's own refreshes do not count, so an unattended board times out."""
        now = self.clock()
        with self._lock:
            session = self._sessions.get(_key(session_id))
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[_key(session_id)]
                return None
            if touch:
                session.seen = now
            return session

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(_key(session_id), None)

    def _expired(self, session: BoardSession, now: float) -> bool:
        return (
            now - session.seen > self.idle_seconds or now - session.opened > self.lifetime_seconds
        )

    def _prune(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def identify(
    request: Request, credentials: Credentials, sessions: SessionStore, touch: bool = True
) -> Visitor | None:
    """The visitor by ``Authorization: Bearer`` first, else by the session cookie."""
    token = bearer_token(request)
    if token is not None:
        principal = credentials.authenticate(token)
        return Visitor(principal) if principal is not None else None
    session_id = request.cookies.get(COOKIE)
    session = sessions.find(session_id, touch) if session_id else None
    if session_id is None or session is None:
        return None
    # the token that opened the session must still be valid: revoking, rotating or expiring a
    # credential ends its sessions at their next request
    credential = session.principal.credential
    principal = credentials.current(credential) if credential is not None else None
    if principal is None:
        sessions.close(session_id)
        return None
    return Visitor(principal, session)


def set_session_cookie(response: Response, request: Request, session_id: str) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=LIFETIME_SECONDS,
        path=COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE,
        path=COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def request_origin(request: Request) -> str | None:
    """host[:port] that the browser says the request came from (Origin, else Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return None
    return urlsplit(source).netloc or None


def post_refusal(request: Request, visitor: Visitor | None, csrf: str | None) -> str | None:
    """Why a board POST must be refused as possibly forged (None: it may go ahead)."""
    origin = request_origin(request)
    if origin is not None and origin != request.headers.get("host"):
        return f"cross-origin request refused (from {origin})"
    if visitor is None or visitor.session is None:
        return None  # a login form, or a bearer token that no browser sends by itself
    if origin is None:
        return "the request does not say where it came from (no Origin or Referer)"
    if not csrf or not secrets.compare_digest(csrf, visitor.session.csrf):
        return "the form is stale or forged (CSRF token mismatch): reload the board"
    return None
