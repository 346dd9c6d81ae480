"""write_csv: RFC 4180 text, the cell rules, and formula injection neutralised only when asked."""

from __future__ import annotations

import csv
import io
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
