"""The paging parameters every list endpoint takes: ``limit`` (1 to 1000) and ``after``, the
cursor (the last number or id of the page before; each page is read with its limit in SQL)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import Query
from pydantic import BeforeValidator

MAX_PAGE = 1000
LARGEST = 2**63 - 1

Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description="at most this many in one page (1 to 1000)")
]
After = Annotated[
    int,
    Query(
        ge=0,
        le=LARGEST,
        description="the cursor: only those numbered after this one (0: from the first; to "
        "page on, the last number received)",
    ),
]


def _calendar_date_text(value: object) -> object:
    """Only ``YYYY-MM-DD`` is a date here (pydantic alone reads ``0`` as 1970-01-01)."""
    if isinstance(value, str) and not ISO_DATE.fullmatch(value):
        raise ValueError("a calendar date as YYYY-MM-DD, e.g. 2026-03-01")
    return value


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
CalendarDate = Annotated[date, BeforeValidator(_calendar_date_text)]
"""A date query parameter: ``YYYY-MM-DD`` only, anything else a 422 that says so."""
