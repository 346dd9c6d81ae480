"""Derive the project's CTCAE v5.0 dictionary from the official NCI spreadsheet.

Usage: python schemas/ctcae/derive_ctcae.py [--check] [SHEET.xlsx]

SHEET defaults to the official sheet kept beside this script (see SOURCE.md). Writes
``schemas/ctcae/ctcae-v5.0.json``: one entry per term with its MedDRA LLT code, its
system organ class (SOC) and the grades the term defines. Grade descriptions, definitions and
notes are deliberately left out; a grade is "defined" when its cell is not the NCI's "-" marker.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("ctcae-v5.0.json")
SHEET = Path(__file__).with_name("CTCAE_v5.0_2017-11-27.xlsx")
SHEET_SHA256 = "e0b04ae9e88a47d7ae27f43d3a7e38632830a61dd349521e0627fb91e1b001a3"
GRADE_COLUMNS = range(3, 8)  # spreadsheet columns "Grade 1" .. "Grade 5"


def _grade_defined(cell: object) -> bool:
    return cell is not None and str(cell).strip() not in ("", "-")


def derive(xlsx: Path) -> dict[str, Any]:
    """Read the NCI sheet and return the dictionary document (terms sorted by SOC, term)."""
    import openpyxl

    workbook = openpyxl.load_workbook(xlsx, read_only=True)
    rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    header = [str(cell).strip() for cell in rows[0][:3]]
    if header != ["MedDRA Code", "MedDRA SOC", "CTCAE Term"]:
        raise SystemExit(f"unexpected header {header!r}; is this the CTCAE v5.0 sheet?")
    terms = []
    for row in rows[1:]:
        if row[0] is None:
            continue
        grades = [grade for grade, col in enumerate(GRADE_COLUMNS, 1) if _grade_defined(row[col])]
        terms.append(
            {
                "term": str(row[2]).strip(),
                "meddra_code": int(row[0]),
                "soc": str(row[1]).strip(),
                "grades": grades,
            }
        )
    terms.sort(key=lambda t: (t["soc"], t["term"]))
    return {
        "ctcae_version": "5.0",
        "source": xlsx.name,
        "term_count": len(terms),
        "terms": terms,
    }


def render(document: dict[str, Any]) -> str:
    """One term per line, so diffs of the committed file stay readable."""
    head = {k: v for k, v in document.items() if k != "terms"}
    lines = [json.dumps(t, ensure_ascii=False) for t in document["terms"]]
    body = ",\n    ".join(lines)
    head_json = json.dumps(head, ensure_ascii=False)[:-1]
    return f'{head_json}, "terms": [\n    {body}\n]}}\n'


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [arg for arg in argv if arg != "--check"]
    if len(paths) > 1 or any(arg.startswith("-") for arg in paths):
        print(__doc__, file=sys.stderr)
        return 2
    sheet = Path(paths[0]) if paths else SHEET
    document = derive(sheet)
    if check:
        if sheet == SHEET and hashlib.sha256(SHEET.read_bytes()).hexdigest() != SHEET_SHA256:
            print(
                f"{SHEET} is not the official sheet (sha256 differs, see SOURCE.md)",
                file=sys.stderr,
            )
            return 1
        if OUTPUT.read_text(encoding="utf-8") != render(document):
            print(
                f"{OUTPUT} differs from what {sheet} gives: rerun without --check", file=sys.stderr
            )
            return 1
        print(f"{OUTPUT.name} matches {sheet.name} ({document['term_count']} terms)")
        return 0
    OUTPUT.write_text(render(document), encoding="utf-8")
    print(f"wrote {document['term_count']} terms to {OUTPUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
