"""The DMC tables: ``GET /v1/tables`` (which there are) and ``GET /v1/tables/{table}`` (one, as
JSON, or with ``format=csv`` as CSV; ``excel_safe=true`` neutralises spreadsheet formulas).

A site sees its own patients only; ``site`` narrows a reader's tables to one site, and a site
asking for another site's gets 404 (never a confirmation that it exists). Readers get the log
position and chain head the tables were computed at (in the body, and as X-Log-Position /
X-Chain-Head on the CSV); a site never does.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from safety_stream.api.dependencies import ERRORS, PlanDep, runtime
from safety_stream.api.schemas import ErrorBody
from safety_stream.api.security import Caller
from safety_stream.application.dmc_tables import SiteNotVisible, TablesRead, read_tables
from safety_stream.application.review import ReviewReads
from safety_stream.review.currency import QUIET_DAYS
from safety_stream.review.dmc import TABLE_NAMES, UnknownTable
from safety_stream.review.table import DmcTable

router = APIRouter()


def _review(request: Request) -> ReviewReads:
    return runtime(request).review


ReviewDep = Annotated[ReviewReads, Depends(_review)]
RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": ErrorBody, "description": "no such table, or a site not yours"},
    200: {"content": {"text/csv": {}}, "description": "the table (JSON, or CSV with format=csv)"},
}
SiteQuery = Annotated[
    str | None,
    Query(max_length=64, description="only this site's patients (a site: its own only)"),
]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True)


class TableOut(_Body):
    name: str
    title: str
    columns: list[str] = Field(description="the keys of each row, in order (the CSV header)")
    headers: list[str] = Field(description="the columns as a person reads them")
    rows: list[dict[str, Any]]
    footnote: str = Field(description="the counting rules")
    as_of: date = Field(description="the date time-dependent figures are computed to")
    site_id: str | None = Field(description="the one site shown (null: every site)")
    position: int | None = Field(description="the log position read at (readers only)")
    chain_head: str | None = Field(description="the chain hash at that position (readers only)")

    @classmethod
    def of(cls, table: DmcTable, read: TablesRead) -> TableOut:
        return cls(
            name=table.name,
            title=table.title,
            columns=list(table.columns),
            headers=list(table.headers),
            rows=table.records(),
            footnote=table.footnote,
            as_of=read.as_of,
            site_id=read.site_id,
            position=read.position,
            chain_head=read.chain_head,
        )


class TableIndexOut(_Body):
    tables: list[str]


@router.get("/v1/tables", response_model=TableIndexOut, responses=ERRORS)
def table_index(caller: Caller) -> TableIndexOut:
    """The names of the DMC tables, in the order a DMC reads them."""
    return TableIndexOut(tables=list(TABLE_NAMES))


@router.get(
    "/v1/tables/{table}",
    response_model=TableOut,
    responses=RESPONSES,
)
def table(
    table: str,
    caller: Caller,
    review: ReviewDep,
    plan: PlanDep,
    format: Literal["json", "csv"] = "json",
    excel_safe: bool = False,
    site: SiteQuery = None,
    quiet_days: Annotated[
        int,
        Query(ge=1, le=3650, description="data currency: days without new data to count as quiet"),
    ] = QUIET_DAYS,
) -> Any:
    """One DMC table with its counting rules; ``format=csv`` for its CSV."""
    try:
        read = read_tables(review, plan, caller, datetime.now(UTC), (table,), site, quiet_days)
    except UnknownTable as error:
        raise HTTPException(404, str(error)) from None
    except SiteNotVisible:
        raise HTTPException(404, "no such site") from None
    found = read.tables[0]
    if format == "csv":
        return Response(
            read.csv(found, excel_safe),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{found.name}.csv"',
                **read.stamp_headers(),
            },
        )
    return TableOut.of(found, read)
