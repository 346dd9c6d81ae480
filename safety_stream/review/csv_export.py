"""CSV for analysts: every listing and table of the review workspace is written by
:func:`write_csv`, with one set of rules, and stamped with where in the log it was taken.

The text is RFC 4180 (the standard library's ``csv`` module: comma-separated, CRLF line ends,
a field quoted when it holds a comma, a quote or a line break, quotes doubled inside it). A
cell is written as:

- ``None``: empty;
- a date: ISO 8601 (``2026-03-01``); a datetime: ISO 8601 with its offset
  (``2026-03-01T08:30:00+00:00``); a UUID: its canonical text; an enum: its value;
- a bool: ``true`` / ``false``; an int: its digits;
- a float: at most 12 significant digits (``0.1 + 0.2`` is ``0.3``, ``3.0`` is ``3``), so a
  ratio or a rate carries no binary noise; not-a-number is empty, infinities ``inf``/``-inf``.

Excel-safe mode (``excel_safe=True``) neutralises formula injection as the OWASP "CSV
Injection" guidance says (https://owasp.org/www-community/attacks/CSV_Injection): a cell whose
text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with a single
quote ``'``, so a spreadsheet shows it as text and never evaluates it.

The start of the cell is not the only place a spreadsheet may start a cell. Excel opens a
``.csv`` with the *list separator* of the user's regional settings: ``,`` in English locales,
``;`` in most European ones (where ``,`` is the decimal separator), and it does not ask. The csv
module quotes a cell holding ``,``, ``"`` or a line break, never one holding ``;``, so the
verbatim term ``x;=HYPERLINK(...);y`` is written unquoted, and Excel in a ``;`` locale splits it
into three cells, the middle one a live formula. Quoting every cell (``QUOTE_ALL``) would
rely on Excel reading the quotes of a comma-separated line as written while it splits at ``;``:
once the commas between cells are ordinary text to it, where a quoted cell begins and ends is
its parser's guess, which no documentation we found pins down. So safety does not rely on how
any reader handles quotes: wherever a reader might start a cell (after ``,``, ``;``, a tab, a
carriage return or a line feed, anywhere in the text, and after any double quotes that could
open a quoted field there) the same rule applies, and a ``'`` is inserted right after that
separator when what follows starts a formula (``x;'=HYPERLINK(...);y``). Read whole, the cell
shows that one extra ``'``; split at ``;``, the piece is text. A separator followed by a blank,
a letter or a plain number is left alone (``ALT 3x ULN; -1.5 from baseline``).

One exception, decided here: a cell (or a piece between separators) that is *only* a plain
decimal number (``-1.5``, ``+2``, ``-3e-05``: optional sign, ASCII digits, optional fraction and
exponent) is left as it is, whatever Python type it came from. A spreadsheet reads it as that
number and cannot evaluate anything in it, and prefixing it would turn every negative number (a
change from baseline, a log ratio) into text. ``-1+2``, ``-A1`` or a sign before non-ASCII
digits (Arabic-Indic ones, say) is not a plain number and is neutralised. Without excel-safe
mode the text is written as it is (what R, SAS or pandas should read).

:func:`stamp` says where an export was taken: the log position, the chain head (the hash of the
last event it includes), the snapshot time (as of) and the data cut-off, as HTTP headers or as
comment lines. A site's export carries neither position nor chain head (a site never sees the
trial-wide position): those are simply absent.

Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from uuid import UUID

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# ASCII digits only: \d would take any Unicode digit, which a spreadsheet does not read as one
PLAIN_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
# where a reader may start a cell inside the text: a separator it might split at, any quotes
# that could open a quoted field, then a formula start, up to the next separator
INNER_FORMULA = re.compile(r'([,;\t\r\n])("*)([=+\-@][^,;\t\r\n]*)')
SIGNIFICANT_DIGITS = 12


def cell_text(value: object) -> str:
    """One value as CSV text, by the rules above (before any excel-safe neutralising)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return cell_text(value.value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return str(value)


def _float_text(value: float) -> str:
    if math.isnan(value):
        return ""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:.{SIGNIFICANT_DIGITS}g}"
    return "0" if text == "-0" else text


def _inner(found: re.Match[str]) -> str:
    separator, quotes, piece = found.groups()
    if PLAIN_NUMBER.fullmatch(piece) is not None:
        return found.group(0)
    return separator + "'" + quotes + piece


def neutralise(text: str) -> str:
    """``text`` made safe to open in a spreadsheet: a leading ``'`` when it could start a
    formula, and a ``'`` after each separator inside it that a formula follows; a plain
    decimal number is kept as it is."""
    text = INNER_FORMULA.sub(_inner, text)
    if text.startswith(FORMULA_STARTS) and PLAIN_NUMBER.fullmatch(text) is None:
        return "'" + text
    return text


def write_csv(columns: Sequence[str], rows: Iterable[Sequence[object]], excel_safe: bool) -> str:
    """The header ``columns`` and ``rows`` as RFC 4180 CSV text (CRLF line ends).

    Every row must have as many cells as there are columns: a short or long row is a bug in
    the caller, and raises ``ValueError`` naming the row (1-based, after the header).
    The header is neutralised in excel-safe mode too.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    width = len(columns)

    def line(values: Sequence[object]) -> list[str]:
        texts = [cell_text(v) for v in values]
        return [neutralise(t) for t in texts] if excel_safe else texts

    writer.writerow(line(columns))
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise ValueError(
                f"CSV row {number} has {len(row)} cells; the header has {width} columns"
            )
        writer.writerow(line(row))
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class Stamp:
    """Where an export was taken. ``position``/``chain_head`` are None for a site."""

    position: int | None
    chain_head: str | None
    as_of: datetime | None
    cutoff: date | None

    def fields(self) -> list[tuple[str, str]]:
        """(name, text) of each known part, in a fixed order."""
        parts: list[tuple[str, object]] = [
            ("log position", self.position),
            ("chain head", self.chain_head or None),
            ("as of", self.as_of),
            ("cut-off", self.cutoff),
        ]
        return [(name, cell_text(value)) for name, value in parts if value is not None]

    def headers(self) -> dict[str, str]:
        """HTTP response headers: ``X-Log-Position``, ``X-Chain-Head``, ``X-As-Of``,
        ``X-Cutoff`` (each only when known)."""
        names = {
            "log position": "X-Log-Position",
            "chain head": "X-Chain-Head",
            "as of": "X-As-Of",
            "cut-off": "X-Cutoff",
        }
        return {names[name]: text for name, text in self.fields()}

    def lines(self, prefix: str = "# ") -> list[str]:
        """Provenance lines (``# log position: 42``) to print above or beside a table."""
        return [f"{prefix}{name}: {text}" for name, text in self.fields()]


def stamp(
    position: int | None,
    chain_head: str | None,
    as_of: datetime | None = None,
    cutoff: date | None = None,
) -> Stamp:
    """The provenance of an export (pass None for what the reader may not see)."""
    return Stamp(position, chain_head, as_of, cutoff)
