"""The paging parameters every list endpoint takes: ``limit`` (1 to 1000) and ``after``, the
cursor (the last number or id of the page before; each page is read with its limit in SQL)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

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
