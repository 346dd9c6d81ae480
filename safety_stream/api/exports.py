"""SDTM-shaped exports for analysts: ``GET /v1/exports/{dataset}`` (ae, suppae, dm, ex, lb,
ds) as CSV or SAS transport (XPT v5), built from the live review dataset as of an optional
clinical cut-off.

Who gets what is decided by the one read model (``runtime.review.read``): a reader (safety
officer, DSMB, admin) gets every site's rows; a site gets its own site's rows only. Sites may
export: the rows are the ones they entered, and reconciling them against their own records is
what a site's data manager does; they never see another site's patients, and their responses
carry no trial-wide log position or chain head. A reader's response names them in
``X-Log-Position`` and ``X-Chain-Head`` (what ``safety-stream verify`` checks), so a file can be
traced to the exact log prefix it came from; ``X-Cutoff`` repeats the cut-off.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response

from safety_stream.api.dependencies import ERRORS, runtime
from safety_stream.api.paging import CalendarDate
from safety_stream.api.schemas import ErrorBody
from safety_stream.api.security import Caller
from safety_stream.application.reads import sees_trial_wide
from safety_stream.application.review import ReviewReads
from safety_stream.review.csv_export import stamp, write_csv
from safety_stream.review.dataset import ReviewData
from safety_stream.review.sdtm import Dataset, sdtm_dataset

router = APIRouter()

DatasetName = Literal["ae", "suppae", "dm", "ex", "lb", "ds"]
MEDIA = {"csv": "text/csv; charset=utf-8", "xpt": "application/x-sas-xport"}
XPT_EXTRA = (
    "SAS transport needs the optional export support (pyreadstat is not installed on the "
    "server): pip install 'safety-stream[export]'; format=csv works without it"
)
RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    200: {
        "description": "the dataset as CSV (header: the SDTM variable names) or XPT v5",
        "content": {"text/csv": {}, "application/x-sas-xport": {}},
        "headers": {
            "X-Log-Position": {"description": "readers only: the log position it was taken at"},
            "X-Chain-Head": {"description": "readers only: the chain hash of that position"},
            "X-Cutoff": {"description": "the clinical cut-off, when given"},
        },
    },
    501: {"model": ErrorBody, "description": "format=xpt without the export extra installed"},
}


def _review(request: Request) -> ReviewReads:
    return runtime(request).review


def _encode(dataset: Dataset, fmt: str, excel_safe: bool, created: datetime | None) -> bytes:
    if fmt == "csv":
        return write_csv(dataset.names, dataset.rows, excel_safe).encode("utf-8")
    try:
        from safety_stream.exporting.xpt import xpt_bytes

        return xpt_bytes(dataset, created)
    except ModuleNotFoundError:
        raise HTTPException(501, XPT_EXTRA) from None


@router.get("/v1/exports/{dataset}", response_class=Response, responses=RESPONSES)
def export_dataset(
    caller: Caller,
    request: Request,
    dataset: Annotated[DatasetName, Path(description="the SDTM domain, lower case")],
    format: Annotated[
        Literal["csv", "xpt"], Query(description="csv (default) or xpt (SAS transport v5)")
    ] = "csv",
    excel_safe: Annotated[
        bool,
        Query(
            description="CSV only: neutralise spreadsheet formulas (a cell starting with = + - "
            "@, a tab or a carriage return, other than a plain number, gets a leading '; so does "
            "such a start after a , ; tab or line break inside a cell, where Excel in another "
            "locale may split it)"
        ),
    ] = False,
    cutoff: Annotated[
        CalendarDate | None,
        Query(description="clinical cut-off (YYYY-MM-DD): only what is dated on or before it"),
    ] = None,
) -> Response:
    """One SDTM-shaped dataset (a site: its own rows only) as CSV or SAS transport."""

    def compute(data: ReviewData) -> tuple[Dataset, int, str, datetime | None]:
        found = sdtm_dataset(data, dataset, cutoff)
        return found, data.position, data.chain_head, data.last_stored_at

    found, position, chain_head, stored_at = _review(request).read(caller, compute)
    body = _encode(found, format, excel_safe, stored_at)  # a site's: None, SAS's epoch
    trial_wide = sees_trial_wide(caller)
    provenance = stamp(
        position if trial_wide else None, chain_head if trial_wide else None, None, cutoff
    )
    headers = {
        "Content-Disposition": f'attachment; filename="{dataset}.{format}"',
        **provenance.headers(),
    }
    return Response(body, media_type=MEDIA[format], headers=headers)
