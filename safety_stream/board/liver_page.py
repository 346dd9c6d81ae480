"""The board's liver-safety page, GET /board/liver: CTCAE shift tables for ALT, AST, ALP and
total bilirubin, the eDISH plot (each patient one click from their profile), Child-Pugh
trajectories around SBRT and the cumulative incidence of related grade >= 3 AEs.

Read through ``runtime.review.read``: a site sees only its own patients, readers see every
site. Each plot is server-side SVG with the same data as a table beside it.

GET /board/liver/{table}.csv downloads one of the page's tables (``review/liver_tables.py``
names them; ``excel_safe=true``: formulas neutralised), stamped as /board/tables stamps its
downloads: readers get the log position and chain head, a site the as-of time only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

from fastapi import FastAPI, Request
from markupsafe import Markup
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from safety_stream.board.render import BoardPages, page_headers
from safety_stream.board.session import Visitor
from safety_stream.review.csv_export import stamp, write_csv
from safety_stream.review.dataset import ReviewData
from safety_stream.review.liver_tables import (
    LIVER_TABLE_NAMES,
    UnknownLiverTable,
    check_table,
    liver_table,
    shift_name,
)
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


def csv_links(name: str) -> tuple[str, str]:
    """The table's CSV and Excel-safe CSV URLs."""
    base = f"{PATH}/{quote(name)}.csv"
    return base, f"{base}?excel_safe=true"


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
            links={name: csv_links(name) for name in LIVER_TABLE_NAMES},
            shift_name=shift_name,
            link_base=PATIENT_LINK,
            trial_id=runtime.plan.trial.id,
            viewer=who.principal.name,
            site_id=who.principal.sees_site,
            as_of=now,
            csrf=who.csrf,
            session=who.session is not None,
        )

    @app.get(PATH + "/{table}.csv", include_in_schema=False)
    def liver_csv(table: str, request: Request, excel_safe: bool = False) -> Response:
        who = board.visitor(request)
        if who is None:
            target = f"{PATH}/{table}.csv"
            return RedirectResponse(f"/board/login?next={quote(target)}", 303)
        try:
            check_table(table)
        except UnknownLiverTable as error:
            return PlainTextResponse(str(error), 404, headers=page_headers(None))
        runtime = board.runtime
        now = datetime.now(UTC)
        trial_wide = who.principal.sees_site is None

        def compute(data: ReviewData) -> tuple[LiverSafety, int | None, str | None]:
            liver = liver_safety(data, runtime.plan, now.date())
            if not trial_wide:  # a site never sees the trial-wide position
                return liver, None, None
            return liver, data.position, data.chain_head

        liver, position, chain_head = runtime.review.read(who.principal, compute)
        columns, rows = liver_table(table, liver)  # written after the review lock is released
        return Response(
            write_csv(columns, rows, excel_safe),
            media_type="text/csv; charset=utf-8",
            headers={
                **page_headers(None),
                "Content-Disposition": f'attachment; filename="liver-{table}.csv"',
                **stamp(position, chain_head, now, None).headers(),
            },
        )
