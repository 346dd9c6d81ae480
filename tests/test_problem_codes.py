"""The problem codes are a closed, documented vocabulary: the table in schemas/README.md lists
exactly the members of ``ProblemCode`` (plus the open ``schema.<type>`` family), with the
outcome ingest gives each; every code the README, the schema folder's README, the JSON Schemas
and the expected problems of the invalid examples mention is one of them."""

from __future__ import annotations

import json
import re

from conftest import REPO

from safety_stream.events import EVENT_TYPES
from safety_stream.ingest import CONFLICT_CODES, FORBIDDEN_CODES
from safety_stream.validation.codes import SCHEMA_PREFIX, ProblemCode, schema_code
from safety_stream.validation.problems import Problem

SCHEMAS_README = REPO / "schemas" / "README.md"
SCHEMA_FAMILY = "schema.<type>"
PREFIXES = {code.split(".")[0] for code in ProblemCode} | {SCHEMA_PREFIX.rstrip(".")}
CODE_LIKE = re.compile(r"\b((?:" + "|".join(sorted(PREFIXES)) + r")\.[a-z0-9_<>]+)")
NOT_CODES = {"treatment.modality"}  # a field path the schema folder's README names


def table() -> dict[str, str]:
    """code -> outcome, from the "Problem codes" table of schemas/README.md."""
    text = SCHEMAS_README.read_text().split("## Problem codes", 1)[1]
    rows: dict[str, str] = {}
    for line in text.splitlines():
        found = re.match(r"\| `([^`]+)` \| (\w+) \|", line)
        if found:
            code, outcome = found.groups()
            assert code not in rows, f"{code} is listed twice"
            rows[code] = outcome
    return rows


def is_known(code: str) -> bool:
    return code in set(ProblemCode) or (code.startswith(SCHEMA_PREFIX) and code != SCHEMA_PREFIX)


def test_the_table_lists_every_code_and_nothing_else() -> None:
    documented = table()
    assert SCHEMA_FAMILY in documented
    assert set(documented) - {SCHEMA_FAMILY} == {code.value for code in ProblemCode}


def test_the_table_gives_each_code_the_outcome_ingest_gives_it() -> None:
    for code, outcome in table().items():
        expected = (
            "forbidden"
            if code in FORBIDDEN_CODES
            else "conflict"
            if code in CONFLICT_CODES
            else "rejected"
        )
        assert outcome == expected, code


def test_every_code_the_documentation_mentions_is_a_problem_code() -> None:
    texts = {
        "README.md": (REPO / "README.md").read_text(),
        "schemas/README.md": SCHEMAS_README.read_text(),
    }
    for path in sorted((REPO / "schemas" / "json").glob("*.json")):
        texts[str(path.relative_to(REPO))] = path.read_text()
    for where, text in texts.items():
        for code in set(CODE_LIKE.findall(text)):
            if code in EVENT_TYPES or code in NOT_CODES or code == SCHEMA_FAMILY:
                continue
            if code.endswith((".py", ".")):  # a module's file name, a sentence's end
                continue
            assert is_known(code), f"{where} mentions {code}, which is no problem code"


def test_the_expected_problems_of_the_invalid_examples_use_problem_codes() -> None:
    expected = json.loads((REPO / "schemas" / "examples" / "expected-problems.json").read_text())
    codes = {p["code"] for problems in expected.values() for p in problems}
    assert codes and all(is_known(code) for code in codes), codes


def test_a_code_is_its_text_wherever_it_goes() -> None:
    problem = Problem("grade", "grade 6", ProblemCode.CTCAE_GRADE_NOT_ALLOWED)
    as_dict = problem.as_dict()
    assert type(as_dict["code"]) is str and as_dict["code"] == "ctcae.grade_not_allowed"
    assert json.dumps(as_dict["code"]) == '"ctcae.grade_not_allowed"'
    assert schema_code("missing") == "schema.missing"
    assert all(code.value == str(code) for code in ProblemCode)
