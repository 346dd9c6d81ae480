"""The board's triage and review-mark form posts (readers only; a site gets 403).

POST /board/alerts/{id}/triage   to_state, disposition (closing), note; a form post (303 back
                                 to the alert) or, with Accept: application/json, the result
POST /board/marks                kind (alert|ae), ids (comma-separated item ids) or, for
                                 alerts, through (every alert numbered up to it: all those a
                                 page showed, however many; read in pages), position (the
                                 log position the page was read at), next (a /board path)

Both take the session's CSRF token like every board form (``_Board.checked_post``); the
triage step goes through the same service as ``POST /v1/alerts/{id}/triage``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Protocol, cast

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from safety_stream.alerts.outbox import UnknownAlert
from safety_stream.alerts.triage import LABELS, StepNotAllowed, TriageError
from safety_stream.application.review_marks import SITES_HAVE_NO_MARKS, MarksForbidden
from safety_stream.application.triage import TriageForbidden
from safety_stream.auth import Principal
from safety_stream.board.render import page_headers
from safety_stream.board.session import Visitor
from safety_stream.review.marks import MARK_KINDS, MarkKind
from safety_stream.runtime import Runtime


class _Board(Protocol):
    """What these routes use of the board (``board.routes._Board``)."""

    runtime: Runtime

    async def checked_post(self, request: Request) -> tuple[dict[str, str], Visitor] | Response:
        """A form post from a signed-in viewer with a valid CSRF token, or the refusal."""
        ...


MARK_IDS_LIMIT = 1000  # items named in one post
MARK_ALERTS_PAGE = 1000  # alerts read (and marked) at a time for "through": all, in pages


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _refusal(request: Request, message: str, status: int) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message}, status, headers=page_headers(None))
    return PlainTextResponse(message, status)


def _back(target: str | None, fallback: str) -> str:
    """Only a path on the board itself (never another host: no open redirect)."""
    if target and target.startswith("/board") and not target.startswith("//"):
        return target
    return fallback


def add_triage_routes(app: FastAPI, b: _Board) -> None:
    @app.post("/board/alerts/{alert_id}/triage", include_in_schema=False)
    async def triage(alert_id: uuid.UUID, request: Request) -> Response:
        return await _triage(b, alert_id, request)

    @app.post("/board/marks", include_in_schema=False)
    async def mark(request: Request) -> Response:
        return await _mark(b, request)


async def _triage(b: _Board, alert_id: uuid.UUID, request: Request) -> Response:
    posted = await b.checked_post(request)
    if isinstance(posted, Response):
        return posted
    form, who = posted
    try:
        done = await run_in_threadpool(
            b.runtime.triage.step, who.principal, alert_id, form.get("to_state", ""),
            form.get("disposition") or None, form.get("note"),
        )  # fmt: skip
    except TriageForbidden as refused:
        return _refusal(request, str(refused), 403)
    except UnknownAlert:
        return _refusal(request, f"no alert {alert_id}", 404)
    except StepNotAllowed as refused:
        return _refusal(request, str(refused), 409)
    except TriageError as error:
        return _refusal(request, str(error), 400)
    if not _wants_json(request):
        return RedirectResponse(f"/board#alert-{alert_id}", 303)
    views = b.runtime.outbox.alerts(derived_id=alert_id, limit=1)
    return JSONResponse(
        {
            "number": views[0].number if views else None,
            "derived_id": str(alert_id),
            "state": done.triage.state.value,
            "state_label": LABELS[done.triage.state],
            "by": who.principal.name,
            "position": done.position,
        },
        headers=page_headers(None),
    )


async def _mark(b: _Board, request: Request) -> Response:
    posted = await b.checked_post(request)
    if isinstance(posted, Response):
        return posted
    form, who = posted
    if who.principal.sees_site is not None:
        return _refusal(request, SITES_HAVE_NO_MARKS, 403)
    kind = form.get("kind", "")
    if kind not in MARK_KINDS:
        return _refusal(request, f"kind {kind!r} is not one of {', '.join(MARK_KINDS)}", 400)
    position = form.get("position", "")
    if not (position.isascii() and position.isdigit()):
        return _refusal(request, "position: the log position the page was read at", 400)
    try:
        moved, items = await run_in_threadpool(_mark_items, b, who.principal, form, int(position))
    except MarksForbidden as refused:
        return _refusal(request, str(refused), 403)
    except ValueError as error:
        return _refusal(request, str(error), 400)
    if _wants_json(request):
        return JSONResponse({"marked": moved, "items": items}, headers=page_headers(None))
    return RedirectResponse(_back(form.get("next"), "/board#alerts"), 303)


def _mark_items(
    b: _Board, principal: Principal, form: dict[str, str], position: int
) -> tuple[int, int]:
    """Mark the items a post names reviewed at ``position``: ``ids`` as given and, for alerts,
    every alert numbered up to ``through`` (the alerts a page showed, however many: read and
    marked a page at a time; alerts raised later have higher numbers and stay unmarked).
    Returns (marks moved, items named)."""
    kind = cast(MarkKind, form["kind"])
    ids = list(dict.fromkeys(i.strip() for i in form.get("ids", "").split(",") if i.strip()))
    if len(ids) > MARK_IDS_LIMIT:
        raise ValueError(f"at most {MARK_IDS_LIMIT} items in one post")
    through = form.get("through", "")
    if through and (kind != "alert" or not (through.isascii() and through.isdigit())):
        raise ValueError("through: the highest alert number shown (with kind alert)")
    moved = b.runtime.marks.mark(principal, kind, ids, position)  # checks the position too
    items, named = len(ids), set(ids)
    for page in _alerts_through(b, int(through or 0)):
        fresh = [i for i in page if i not in named]
        moved += b.runtime.marks.mark(principal, kind, fresh, position)
        items += len(fresh)
    return moved, items


def _alerts_through(b: _Board, through: int) -> Iterator[list[str]]:
    """The ids of every alert numbered 1 to ``through``, a page at a time, by number."""
    after = 0
    while after < through:
        found = b.runtime.outbox.alerts(after=after, limit=MARK_ALERTS_PAGE)
        shown = [str(v.alert.derived_id) for v in found if v.number <= through]
        if shown:
            yield shown
        if len(found) < MARK_ALERTS_PAGE:
            return
        after = found[-1].number
