"""The packaged CTCAE v5.0 dictionary equals the official NCI spreadsheet, term by term."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import openpyxl
import pytest
from conftest import CTCAE_XLSX, REPO

from safety_stream.ctcae import ctcae_dictionary


def _official() -> dict[str, tuple[int, str, frozenset[int]]]:
    """Read the NCI sheet directly (independently of schemas/ctcae/derive_ctcae.py)."""
    assert CTCAE_XLSX.exists(), f"the official spreadsheet is missing: {CTCAE_XLSX}"
    sheet = openpyxl.load_workbook(CTCAE_XLSX, read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    official = {}
    for row in rows[1:]:
        if row[0] is None:
            continue
        grades = frozenset(
            g for g in range(1, 6) if row[2 + g] is not None and str(row[2 + g]).strip() != "-"
        )
        official[str(row[2]).strip()] = (int(row[0]), str(row[1]).strip(), grades)
    return official


SHEET_SHA256 = "e0b04ae9e88a47d7ae27f43d3a7e38632830a61dd349521e0627fb91e1b001a3"


def test_the_committed_sheet_is_the_official_one() -> None:
    assert hashlib.sha256(CTCAE_XLSX.read_bytes()).hexdigest() == SHEET_SHA256
    assert SHEET_SHA256 in (REPO / "schemas" / "ctcae" / "SOURCE.md").read_text()


def test_the_committed_dictionary_is_what_the_derivation_gives() -> None:
    script = REPO / "schemas" / "ctcae" / "derive_ctcae.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "837 terms" in result.stdout


def test_every_official_term_code_soc_and_grade_set_matches() -> None:
    official = _official()
    dictionary = ctcae_dictionary()
    assert len(official) == 837
    assert len(dictionary) == 837
    assert len(dictionary.socs) == 26
    for term, (code, soc, grades) in official.items():
        entry = dictionary.lookup(term)
        assert entry is not None, term
        assert (entry.meddra_code, entry.soc, entry.grades) == (code, soc, grades), term


@pytest.mark.parametrize(
    ("term", "grades"),
    [
        ("Nausea", {1, 2, 3}),
        ("Alanine aminotransferase increased", {1, 2, 3, 4}),
        ("Febrile neutropenia", {3, 4, 5}),
        ("Death NOS", {5}),
        ("Eosinophilia", {1, 3}),
        ("Anemia", {1, 2, 3, 4, 5}),
    ],
)
def test_known_grade_sets(term: str, grades: set[int]) -> None:
    entry = ctcae_dictionary().lookup(term)
    assert entry is not None
    assert entry.grades == grades


def test_codes_are_unique_and_resolve_back_to_their_term() -> None:
    dictionary = ctcae_dictionary()
    for entry in dictionary.terms.values():
        assert dictionary.by_code(entry.meddra_code) is entry


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Nausia", "Nausea"),
        ("nausea", "Nausea"),
        ("Alanine aminotransferase increase", "Alanine aminotransferase increased"),
        ("Febrile neutropaenia", "Febrile neutropenia"),
    ],
)
def test_suggestions_for_misspelt_terms(typed: str, expected: str) -> None:
    assert ctcae_dictionary().suggest(typed)[0] == expected


def test_other_specify_terms_need_verbatim() -> None:
    dictionary = ctcae_dictionary()
    other = [t for t in dictionary.terms.values() if t.needs_verbatim]
    assert len(other) == 26  # one "<SOC> - Other, specify" per SOC
    assert all(t.term.endswith(" - Other, specify") for t in other)
