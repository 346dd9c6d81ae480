"""The safety board's routes under /board (HTML for people; the JSON API stays under /v1).

GET  /board                          the board (303 to the login page without credentials)
GET  /board/login, POST /board/login paste a bearer token, get a session cookie
POST /board/logout                   end the session
GET  /board/panels                   the board's live part alone (what the page swaps in)
GET  /board/stream                   server-sent events: ``change`` when the viewer's data moved
POST /board/alerts/{id}/acknowledge  readers only; a form post, or JSON with Accept: json
POST /board/rules/{id}/decision  a DSMB decision on a latched rule (dsmb or safety_officer)
GET  /board/alerts/{id}              where alert messages link to: the board at that alert
POST /board/alerts/{id}/triage, /board/marks  triage steps and review marks (triage_routes.py)
GET  /board/aes, /board/patients/{id} the drill-down pages (board/review_pages.py)
GET  /board/liver[/{table}.csv]      liver safety and its tables as CSV (board/liver_page.py)
GET  /board/tables[/{table}.csv]     the DMC tables and their CSV (board/tables_page.py)

Every route also takes ``Authorization: Bearer`` (scripts, tests). Roles as in the API:
readers (safety officer, DSMB, admin) see everything and acknowledge alerts; a site sees only
its own rows, and no rules or alerts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)

from safety_stream.alerts.dispatcher import utc_now
from safety_stream.alerts.outbox import UnknownAlert
from safety_stream.application.decisions import DecisionLog
from safety_stream.board.health import SubmissionTally
from safety_stream.board.live import LiveResponse, LiveStreams, StreamRefused
from safety_stream.board.liver_page import add_liver_routes
from safety_stream.board.render import BoardPages, page_headers
from safety_stream.board.review_pages import add_review_routes
from safety_stream.board.session import (
    COOKIE,
    SessionStore,
    Visitor,
    clear_session_cookie,
    identify,
    post_refusal,
    set_session_cookie,
)
from safety_stream.board.tables_page import add_tables_routes
from safety_stream.board.triage_routes import add_triage_routes
from safety_stream.board.view import build_view, change_stamp, gather
from safety_stream.governance import DECIDING_ROLES, DecisionError, build_decision
from safety_stream.runtime import Runtime

FORM_LIMIT = 8192
UNKNOWN_TOKEN = (
    "That token is not recognised. Paste the whole token printed by `safety-stream readers "
    "add` or `safety-stream sites add` (it is shown only once; ask an administrator for a "
    "new one if it is lost)."
)
SITES_NO_ALERTS = "sites see only their own data: alerts are for safety officers and the DSMB"


def _safe_next(target: str | None) -> str:
    """Only a path on the board itself (never another host: no open redirect)."""
    if target and target.startswith("/board") and not target.startswith("//"):
        return target
    return "/board"


async def _form(request: Request) -> dict[str, str] | Response:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    too_large = PlainTextResponse(f"form larger than {FORM_LIMIT} bytes", 413)
    if int(request.headers.get("content-length") or 0) > FORM_LIMIT:
        return too_large
    body = bytearray()
    async for chunk in request.stream():  # never buffer more than the limit
        body.extend(chunk)
        if len(body) > FORM_LIMIT:
            return too_large
    if body and kind != "application/x-www-form-urlencoded":
        return PlainTextResponse("send the form as application/x-www-form-urlencoded", 415)
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _unauthenticated() -> PlainTextResponse:
    return PlainTextResponse(
        "log in at /board/login, or send Authorization: Bearer <token>",
        401,
        headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"},
    )


@dataclass
class _Board:
    """What the board's routes share: the runtime, the sessions and the page renderer."""

    runtime: Runtime
    sessions: SessionStore
    tally: SubmissionTally
    pages: BoardPages
    live: LiveStreams
    trial_id: str

    def visitor(self, request: Request, touch: bool = True) -> Visitor | None:
        return identify(request, self.runtime.credentials, self.sessions, touch)

    def login_page(self, next_path: str, error: str | None = None, status: int = 200) -> Response:
        return self.pages.page(
            "board_login.html.j2",
            status,
            trial_id=self.trial_id,
            next=next_path,
            error=error,
        )

    async def checked_post(self, request: Request) -> tuple[dict[str, str], Visitor] | Response:
        """A board form post from a signed-in viewer with a valid CSRF token, or the refusal."""
        form = await _form(request)
        if isinstance(form, Response):
            return form
        who = await run_in_threadpool(self.visitor, request)
        if who is None:
            return _unauthenticated()
        refused = post_refusal(request, who, form.get("csrf"))
        if refused is not None:
            return PlainTextResponse(refused, 403)
        return form, who


def add_board_routes(app: FastAPI, runtime: Runtime, sessions: SessionStore | None = None) -> None:
    """Serve the safety board from ``app`` over ``runtime``."""
    store = sessions if sessions is not None else SessionStore()
    app.state.board_sessions = store
    live = LiveStreams(
        per_credential=runtime.settings.board_streams_per_credential,
        in_all=runtime.settings.board_streams,
    )
    app.state.board_streams = live
    board = _Board(runtime, store, SubmissionTally(), BoardPages(), live, runtime.plan.trial.id)
    _add_page_routes(app, board)
    _add_stream_route(app, board)
    _add_session_routes(app, board)
    _add_action_routes(app, board)
    add_review_routes(app, board)
    add_liver_routes(app, board)
    add_tables_routes(app, board)
    add_triage_routes(app, board)


def _add_page_routes(app: FastAPI, b: _Board) -> None:
    @app.get("/", include_in_schema=False)
    def landing() -> Response:
        return RedirectResponse("/board", 307)

    @app.get("/board", include_in_schema=False)
    def board(request: Request) -> Response:
        who = b.visitor(request)
        if who is None:
            return RedirectResponse("/board/login", 303)
        view = build_view(gather(b.runtime, who.principal, b.tally), who.principal)
        return b.pages.page(
            "board.html.j2", view=view, csrf=who.csrf, session=who.session is not None
        )

    @app.get("/board/panels", include_in_schema=False)
    def panels(request: Request) -> Response:
        who = b.visitor(request, touch=False)  # the page refreshing itself is not a person
        if who is None:
            return _unauthenticated()
        view = build_view(gather(b.runtime, who.principal, b.tally), who.principal)
        return b.pages.fragment("board_panels.html.j2", view=view, csrf=who.csrf)

    @app.get("/board/alerts/{alert_id}", include_in_schema=False)
    def alert_link(alert_id: uuid.UUID, request: Request) -> Response:
        target = f"/board#alert-{alert_id}"
        if b.visitor(request) is None:
            return RedirectResponse(f"/board/login?next={quote(target)}", 303)
        return RedirectResponse(target, 303)


def _add_stream_route(app: FastAPI, b: _Board) -> None:
    @app.get("/board/stream", include_in_schema=False)
    async def stream(request: Request, since: str | None = None) -> Response:
        who = await run_in_threadpool(b.visitor, request, False)
        if who is None:
            return _unauthenticated()
        principal = who.principal
        try:
            slot = b.live.admit(principal.name)
        except StreamRefused as refused:
            return PlainTextResponse(
                str(refused),
                429,
                headers={
                    "Retry-After": str(round(b.live.stream_seconds)),
                    "Cache-Control": "no-store",
                },
            )
        known = request.headers.get("last-event-id") or since
        credential = principal.credential
        session_id = request.cookies.get(COOKIE) if who.session is not None else None

        def still_valid() -> bool:
            assert credential is not None
            return b.runtime.credentials.current(credential) is not None

        def session_open() -> bool:  # a logout ends the session's streams too
            return session_id is None or b.sessions.find(session_id, touch=False) is not None

        events = b.live.events(
            slot,
            principal.sees_site,  # what change_stamp depends on: a site, or every reader alike
            lambda: change_stamp(b.runtime, principal, b.tally),
            known[:200] if known else None,
            request.is_disconnected,
            credential=(credential, still_valid) if credential is not None else None,
            still_allowed=session_open,
        )
        return LiveResponse(events, slot)


def _add_session_routes(app: FastAPI, b: _Board) -> None:
    @app.get("/board/login", include_in_schema=False)
    def login_form(next: str | None = None) -> Response:
        return b.login_page(_safe_next(next))

    @app.post("/board/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        refused = post_refusal(request, None, None)
        if refused is not None:
            return PlainTextResponse(refused, 403)
        form = await _form(request)
        if isinstance(form, Response):
            return form
        next_path = _safe_next(form.get("next"))
        token = form.get("token", "").strip()
        if not token:
            return b.login_page(next_path, "Paste a token to log in.", 400)
        principal = await run_in_threadpool(b.runtime.credentials.authenticate, token)
        if principal is None:
            return b.login_page(next_path, UNKNOWN_TOKEN, 401)
        response = RedirectResponse(next_path, 303)
        set_session_cookie(response, request, b.sessions.open(principal))
        return response

    @app.post("/board/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        form = await _form(request)
        if isinstance(form, Response):
            return form
        who = await run_in_threadpool(b.visitor, request)
        refused = post_refusal(request, who, form.get("csrf"))
        if refused is not None:
            return PlainTextResponse(refused, 403)
        session_id = request.cookies.get(COOKIE)
        if session_id:
            b.sessions.close(session_id)
        response = RedirectResponse("/board/login", 303)
        clear_session_cookie(response, request)
        return response


def _add_action_routes(app: FastAPI, b: _Board) -> None:
    @app.post("/board/rules/{rule_id}/decision", include_in_schema=False)
    async def record(rule_id: str, request: Request) -> Response:
        """A DSMB decision on one rule, from its card (dsmb or safety_officer only)."""
        posted = await b.checked_post(request)
        if isinstance(posted, Response):
            return posted
        form, who = posted
        if who.principal.role not in DECIDING_ROLES:
            return PlainTextResponse("a dsmb or safety_officer credential records decisions", 403)
        try:
            decision = build_decision(
                b.runtime.plan, [rule_id], form.get("outcome", ""), form.get("rationale", ""),
                who.principal.name, utc_now(),
            )  # fmt: skip
        except DecisionError as error:
            return PlainTextResponse(str(error), 400)
        decisions = DecisionLog(b.runtime.store, b.runtime.ctcae, b.runtime.projector)
        await run_in_threadpool(decisions.record, decision, f"board:{who.principal.name}")
        return RedirectResponse(f"/board#rule-{quote(rule_id)}", 303)

    @app.post("/board/alerts/{alert_id}/acknowledge", include_in_schema=False)
    async def acknowledge(alert_id: uuid.UUID, request: Request) -> Response:
        posted = await b.checked_post(request)
        if isinstance(posted, Response):
            return posted
        form, who = posted
        if who.principal.sees_site is not None:
            return PlainTextResponse(SITES_NO_ALERTS, 403)
        note = form.get("note", "").strip()[:2000] or None
        try:
            view = await run_in_threadpool(
                b.runtime.outbox.acknowledge, alert_id, who.principal.name, note, utc_now()
            )
        except UnknownAlert:
            return PlainTextResponse(f"no alert {alert_id}", 404)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(
                {
                    "number": view.number,
                    "derived_id": str(view.alert.derived_id),
                    "acknowledged_by": view.acknowledged_by,
                    "acknowledged_at": view.acknowledged_at.isoformat()
                    if view.acknowledged_at
                    else None,
                },
                headers=page_headers(None),
            )
        return RedirectResponse("/board#alerts", 303)
