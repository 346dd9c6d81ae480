"""The board's DMC tables: GET /board/tables (every table, each with a caption, its counting
rules and CSV links) and GET /board/tables/{table}.csv (``excel_safe=true``: formulas
neutralised).

Read through ``application.dmc_tables``: readers see every site with patient-level listings
and may narrow to one site (``?site=``); a site sees its own patients only, and another site's
tables are 404, as the API answers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from safety_stream.application.dmc_tables import SiteNotVisible, TablesRead, read_tables
from safety_stream.board.render import BoardPages, page_headers
from safety_stream.board.session import Visitor
from safety_stream.plan import MonitoringPlan
from safety_stream.review.dmc import TABLE_NAMES, UnknownTable
from safety_stream.review.table import MODALITY_LEGEND, DmcTable
from safety_stream.review.table_links import cell_queries
from safety_stream.runtime import Runtime

PATH = "/board/tables"


class _BoardParts(Protocol):
    runtime: Runtime
    pages: BoardPages

    def visitor(self, request: Request, touch: bool = True) -> Visitor | None: ...


def _site(raw: str | None) -> str | None:
    return (raw or "").strip()[:64] or None


def csv_links(name: str, site: str | None) -> tuple[str, str]:
    """The table's CSV and Excel-safe CSV URLs (narrowed to ``site`` if one is shown)."""
    query = {"site": site} if site else {}
    base = f"{PATH}/{quote(name)}.csv"
    plain = f"{base}?{urlencode(query)}" if query else base
    return plain, f"{base}?{urlencode({**query, 'excel_safe': 'true'})}"


def cell_links(
    table: DmcTable, plan: MonitoringPlan, site: str | None
) -> dict[tuple[int, int], str]:
    """Per (row, column) of a non-zero count: the AE listing of the AEs behind it, within the
    site shown (a site's principal: its own), so that their distinct patients are the count."""
    narrowed = {"site": site} if site else {}
    return {
        at: "/board/aes?" + urlencode({**query, **narrowed})
        for at, query in cell_queries(table, plan).items()
        if table.rows[at[0]][at[1]] != 0
    }


def _missing(what: str) -> Response:
    return PlainTextResponse(what, 404, headers=page_headers(None))


def add_tables_routes(app: FastAPI, board: _BoardParts) -> None:
    """Serve /board/tables and its CSV downloads from ``app``."""

    def _read(who: Visitor, names: tuple[str, ...], site: str | None) -> TablesRead | Response:
        runtime = board.runtime
        try:
            return read_tables(
                runtime.review, runtime.plan, who.principal, datetime.now(UTC), names, site
            )
        except UnknownTable as error:
            return _missing(str(error))
        except SiteNotVisible:
            return _missing("no such site")

    @app.get(PATH, include_in_schema=False)
    def tables_page(request: Request, site: str | None = None) -> Response:
        who = board.visitor(request)
        if who is None:
            return RedirectResponse(f"/board/login?next={quote(PATH)}", 303)
        read = _read(who, TABLE_NAMES, _site(site))
        if isinstance(read, Response):
            return read
        runtime = board.runtime
        return board.pages.page(
            "board_tables.html.j2",
            read=read,
            links={t.name: csv_links(t.name, read.site_id if site else None) for t in read.tables},
            cells={t.name: cell_links(t, runtime.plan, read.site_id) for t in read.tables},
            readers=who.principal.sees_site is None,
            related=runtime.plan.related_means_at_least.value,
            legend=MODALITY_LEGEND,
            trial_id=runtime.plan.trial.id,
            viewer=who.principal.name,
            site_id=who.principal.sees_site,
            here="Tables",
            csrf=who.csrf,
            session=who.session is not None,
        )

    @app.get(PATH + "/{table}.csv", include_in_schema=False)
    def table_csv(
        table: str, request: Request, site: str | None = None, excel_safe: bool = False
    ) -> Response:
        who = board.visitor(request)
        if who is None:
            target = f"{PATH}/{table}.csv"
            return RedirectResponse(f"/board/login?next={quote(target)}", 303)
        read = _read(who, (table,), _site(site))
        if isinstance(read, Response):
            return read
        found = read.tables[0]
        return Response(
            read.csv(found, excel_safe),
            media_type="text/csv; charset=utf-8",
            headers={
                **page_headers(None),
                "Content-Disposition": f'attachment; filename="{found.name}.csv"',
                **read.stamp_headers(),
            },
        )
