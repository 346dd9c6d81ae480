"""Input built to break the server: every record still ends in one outcome (a 422 that names
the field, kept as a dead letter), the server keeps answering, and what a site is told never
reveals another site's patients or how much other sites posted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, example
from fastapi.testclient import TestClient

from safety_stream.api.app import create_app
from safety_stream.cli import main
from safety_stream.runtime import Runtime, build_memory_runtime
from safety_stream.settings import Settings

SH, BJ = "CN-SH-01", "CN-BJ-02"


class Api:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.client = TestClient(create_app(runtime), raise_server_exceptions=False)
        self.tokens = {
            SH: runtime.credentials.add(SH, "site", SH),
            BJ: runtime.credentials.add(BJ, "site", BJ),
            "officer": runtime.credentials.add("officer", "safety_officer", None),
        }

    def post(self, who: str, body: bytes, content_type: str = "application/json") -> Any:
        return self.client.post(
            "/v1/events",
            content=body,
            headers={"Authorization": f"Bearer {self.tokens[who]}", "Content-Type": content_type},
        )

    def get(self, who: str, path: str) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.tokens[who]}"})


@pytest.fixture
def api() -> Iterator[Api]:
    runtime = build_memory_runtime(Settings())
    served = Api(runtime)
    assert served.post(SH, json.dumps(example("patient.enrolled")).encode()).status_code == 201
    yield served
    runtime.close()


def ae(**changes: Any) -> bytes:
    return json.dumps(example("ae.reported") | changes).encode()


def csv_row_dated(day: str) -> bytes:
    header, first = (EXAMPLES / "edc-export-sample.csv").read_text().splitlines()[:2]
    cells = first.split(",")
    names = header.split(",")
    for column in ("AESTDTC", "AEDTC"):
        cells[names.index(column)] = day
    cells[names.index("AEENDTC")] = ""
    cells[names.index("AEMODDTC")] = ""
    cells[names.index("AEOUT")] = ""
    return f"{header}\n{','.join(cells)}\n".encode()


HOSTILE = {
    "nested 10,000 deep": (
        b"[" * 10_000 + b"]" * 10_000,
        "application/json",
        "",
        "input.json_too_deep",
    ),
    "a 5,000-digit integer": (
        b'{"grade": ' + b"9" * 5000 + b"}",
        "application/json",
        "",
        "input.number_too_long",
    ),
    "a time past the calendar in UTC": (
        ae(recorded_at="9999-12-31T23:00:00-14:00"),
        "application/json",
        "recorded_at",
        "schema.value_error",
    ),
    "a grade as a string": (ae(grade="3"), "application/json", "grade", "schema.int_type"),
    "a boolean as a string": (
        ae(immune_related="yes"),
        "application/json",
        "immune_related",
        "schema.bool_type",
    ),
    "a grade as a string in NDJSON": (
        ae(grade="3"),
        "application/x-ndjson",
        "grade",
        "schema.int_type",
    ),
    "NUL in free text": (
        ae(reporter="crc\u0000liu"),
        "application/json",
        "reporter",
        "schema.string_pattern_mismatch",
    ),
    "an escape in a term": (
        ae(ctcae_term="Nausea\u001b[2J"),
        "application/json",
        "ctcae_term",
        "schema.string_pattern_mismatch",
    ),
    "another trial's event": (
        ae(trial_id="OTHER-TRIAL"),
        "application/json",
        "trial_id",
        "reference.other_trial",
    ),
    "9999-12-31 in an EDC CSV row": (
        csv_row_dated("9999-12-31"),
        "text/csv",
        "AESTDTC",
        "time.in_the_future",
    ),
    "9999-12-31 in JSON": (
        ae(
            occurred_at="9999-12-31T00:00:00Z",
            recorded_at="9999-12-31T00:00:00Z",
            onset_date="9999-12-31",
        ),
        "application/json",
        "occurred_at",
        "time.in_the_future",
    ),
}


@pytest.mark.parametrize("body, content_type, path, code", HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_records_get_a_422_naming_the_field_and_are_kept(
    api: Api, body: bytes, content_type: str, path: str, code: str
) -> None:
    kept = len(api.runtime.store.rejections(limit=1000))
    response = api.post(SH, body, content_type)
    assert response.status_code == 422, response.text
    problems = response.json()["results"][0]["problems"]
    assert (code, path) in {(p["code"], p["path"].split(" ")[0]) for p in problems}, problems
    assert len(api.runtime.store.rejections(limit=1000)) == kept + 1  # a dead letter
    assert api.client.get("/healthz").json()["status"] == "ok"


def test_an_empty_body_is_a_400(api: Api) -> None:
    for content_type in ("application/json", "application/x-ndjson", "text/csv"):
        response = api.post(SH, b"  \n", content_type)
        assert response.status_code == 400 and "empty" in response.json()["detail"]


def test_an_as_of_past_the_calendar_is_a_422(api: Api) -> None:
    response = api.get("officer", "/v1/toxicity?as_of=9999-12-31T23:00:00-14:00")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "as_of"]


def test_a_site_cannot_tell_another_sites_patient_from_no_patient(api: Api) -> None:
    """SPK-0101 is enrolled at CN-SH-01; CN-BJ-02 asks about it and about a patient that
    does not exist: both answers are the same apart from the id."""

    def problems_for(patient: str) -> tuple[int, list[dict[str, Any]]]:
        body = ae(site_id=BJ, patient_id=patient)
        response = api.post(BJ, body)
        found = response.json()["results"][0]["problems"]
        return response.status_code, found

    other_site = problems_for("SPK-0101")
    nobody = problems_for("SPK-9999")
    assert other_site == nobody
    assert nobody[0] == 422 and nobody[1][0]["code"] == "reference.patient_not_enrolled"


def test_a_site_is_never_shown_the_trial_wide_position(api: Api) -> None:
    assert api.post(BJ, json.dumps(example("patient.enrolled") | {
        "site_id": BJ, "patient_id": "BJ-1", "event_id": "0b6f1c1e-2f4a-4c55-9a51-6d3e1c0a0999",
    }).encode()).status_code == 201  # fmt: skip
    for path in ("/v1/toxicity", "/v1/exposure"):
        assert api.get(SH, path).json()["position"] is None
        assert api.get("officer", path).json()["position"] == 2
    assert "position" not in api.get(SH, "/healthz").json()
    assert "position" not in api.client.get("/healthz").json()


FOR_VALIDATE = ("nested 10,000 deep", "a 5,000-digit integer", "a time past the calendar in UTC")


@pytest.mark.parametrize("body", [HOSTILE[k][0] for k in FOR_VALIDATE], ids=FOR_VALIDATE)
def test_validate_names_the_problem_and_never_prints_a_traceback(
    body: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hostile.json"
    path.write_bytes(body)
    assert main(["validate", str(path)]) == 1
    printed = capsys.readouterr()
    assert "Traceback" not in printed.out + printed.err
    assert "1 invalid" in printed.out
