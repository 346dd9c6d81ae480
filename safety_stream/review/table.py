"""A DMC table ready to render and to export: named columns, rows of plain values, a caption
and the counting rules as a footnote.

Each table module (``review.tables``, ``exposure``, ``rates``, ``deaths``, ``currency``) returns
frozen row dataclasses; :func:`table_of` turns a list of them into a :class:`DmcTable` whose
``columns`` are the dataclass's field names (the CSV header and JSON keys) and whose
``headers`` are what a person reads. The board, the API, the CSV export and the DSMB report
all render the same :class:`DmcTable`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from datetime import date
from typing import Any

Cell = str | int | float | bool | date | None

# words of a column name a person reads differently (the rest: underscores become spaces)
_WORDS = {
    "pct": "%",
    "g1": "grade 1",
    "g2": "grade 2",
    "g3": "grade 3",
    "g4": "grade 4",
    "g5": "grade 5",
    "g3plus": "grade >= 3",
    "n": "n",
    "soc": "SOC",
    "ae": "AE",
    "aes": "AEs",
    "id": "id",
    "ci95": "95% CI",
    "iqr": "IQR",
    "gy": "(Gy)",
    "mg": "(mg)",
    "per": "per",
    "q1": "Q1",
    "q3": "Q3",
    "radiotherapy": "RT",
    "chemotherapy": "CT",
    "immunotherapy": "IT",
}
MODALITY_LEGEND = "RT: radiotherapy (SBRT); CT: chemotherapy; IT: immunotherapy (PD-1 antibody)."


def header_of(column: str) -> str:
    """``related_g3plus_pct`` -> ``Related grade >= 3 %``; modalities abbreviated (RT, CT,
    IT: ``MODALITY_LEGEND``) so that wide tables fit a printed page."""
    words = [_WORDS.get(word, word) for word in column.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


@dataclass(frozen=True, slots=True)
class DmcTable:
    """One table: ``rows`` hold one value per column, in ``columns`` order."""

    name: str  # the slug in /board/tables/{name}.csv and /v1/tables/{name}
    title: str  # the caption
    columns: tuple[str, ...]
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    footnote: str  # the counting rules, as gtreg prints them under a table
    patient_level: bool = False  # names patients: never in the open report

    @property
    def numeric(self) -> tuple[bool, ...]:
        """Per column: every value given is a number (right-aligned when shown)."""
        return tuple(
            all(
                v is None or (isinstance(v, int | float) and not isinstance(v, bool))
                for v in column
            )
            and any(v is not None for v in column)
            for column in zip(*self.rows, strict=True)
        ) or tuple(False for _ in self.columns)

    @property
    def decimals(self) -> tuple[int, ...]:
        """Per column: the most decimals any of its floats has (shown to that many places, so
        a column's figures line up: 2.0 and 5.66 as 2.00 and 5.66)."""
        found = [0] * len(self.columns)
        for row in self.rows:
            for index, value in enumerate(row):
                if isinstance(value, float) and math.isfinite(value):
                    text = repr(value)
                    places = len(text.split(".")[1]) if "." in text and "e" not in text else 0
                    found[index] = max(found[index], places)
        return tuple(found)

    def records(self) -> list[dict[str, Cell]]:
        """The rows as column -> value (the JSON form)."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def table_of(
    name: str,
    title: str,
    row_type: type[Any],
    rows: Sequence[Any],
    footnote: str,
    patient_level: bool = False,
) -> DmcTable:
    """A :class:`DmcTable` of frozen row dataclasses of ``row_type`` (its fields: the columns)."""
    columns = tuple(f.name for f in fields(row_type))
    return DmcTable(
        name=name,
        title=title,
        columns=columns,
        headers=tuple(header_of(c) for c in columns),
        rows=tuple(astuple(r) for r in rows),
        footnote=" ".join(footnote.split()),
        patient_level=patient_level,
    )


def percent(count: int, denominator: int) -> float | None:
    """``count`` of ``denominator`` in percent, one decimal (None with no denominator)."""
    return None if denominator == 0 else round(100.0 * count / denominator, 1)
