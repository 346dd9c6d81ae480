"""The board's liver-safety page, GET /board/liver: CTCAE shift tables for ALT, AST, ALP and
total bilirubin, the eDISH plot (each patient one click from their profile), Child-Pugh
trajectories around SBRT and the cumulative incidence of related grade >= 3 AEs.

Read through ``runtime.review.read``: a site sees only its own patients, readers see every
site. Each plot is server-side SVG with the same data as a table beside it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

from fastapi import FastAPI, Request
from markupsafe import Markup
from starlette.responses import RedirectResponse, Response

from safety_stream.board.render import BoardPages
from safety_stream.board.session import Visitor
from safety_stream.review.dataset import ReviewData
from safety_stream.review.liver_view import LiverSafety, liver_safety
from safety_stream.review_plots import child_pugh_plot, cumulative_incidence_plot, edish_plot
from safety_stream.runtime import Runtime

PATH = "/board/liver"
PATIENT_LINK = "/board/patients/"


class _BoardParts(Protocol):
    runtime: Runtime
    pages: BoardPages

    def visitor(self, request: Request, touch: bool = True) -> Visitor | None: ...


def _plots(liver: LiverSafety) -> dict[str, Markup]:
    """The page's SVGs (built by this package's own escaping SVG writer)."""
    return {
        "edish": Markup(edish_plot(liver.edish, link_base=PATIENT_LINK)),
        "child_pugh": Markup(child_pugh_plot(liver.child_pugh, link_base=PATIENT_LINK)),
        "cif": Markup(cumulative_incidence_plot(liver.curves)),
    }


def add_liver_routes(app: FastAPI, board: _BoardParts) -> None:
    """Serve /board/liver from ``app`` (``board`` is the board's shared parts)."""

    @app.get(PATH, include_in_schema=False)
    def liver_page(request: Request) -> Response:
        who = board.visitor(request)
        if who is None:
            return RedirectResponse(f"/board/login?next={quote(PATH)}", 303)
        runtime = board.runtime
        now = datetime.now(UTC)

        def compute(data: ReviewData) -> LiverSafety:
            return liver_safety(data, runtime.plan, now.date())

        liver = runtime.review.read(who.principal, compute)
        return board.pages.page(
            "board_liver.html.j2",
            liver=liver,
            plots=_plots(liver),
            link_base=PATIENT_LINK,
            trial_id=runtime.plan.trial.id,
            viewer=who.principal.name,
            site_id=who.principal.sees_site,
            as_of=now,
            csrf=who.csrf,
            session=who.session is not None,
        )
