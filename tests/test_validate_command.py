"""`safety-stream validate`: formats, exit codes, JSON output, and garbage that must not crash."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, example
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safety_stream.cli import main
from safety_stream.commands.validate import validate_stream
from safety_stream.validation.records import MAX_RECORD_BYTES, InputFormat


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_ndjson(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_bundled_examples_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [
        str(EXAMPLES / "valid"),
        str(EXAMPLES / "sparkle-l-sample.ndjson"),
        str(EXAMPLES / "edc-export-sample.csv"),
    ]
    code, out, _ = run_cli(["validate", *paths], capsys)
    assert code == 0, out
    assert "sparkle-l-sample.ndjson: 50 records (ndjson): 50 valid, 0 invalid" in out
    assert "edc-export-sample.csv: 6 records (csv): 6 valid, 0 invalid" in out
    assert "records/s" in out.splitlines()[-1]


def test_every_bad_line_is_reported_with_its_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = example("ae.reported")
    nausea4 = dict(good, event_id=str(uuid.uuid4()), ctcae_term="Nausea", grade=4)
    del nausea4["verbatim_term"]
    nausea4["meddra_code"] = 10028813
    path = tmp_path / "events.ndjson"
    path.write_text(
        json.dumps(good) + "\n\n" + "{not json\n" + json.dumps(nausea4) + "\n" + "[1, 2]\n"
    )
    code, out, _ = run_cli(["validate", str(path)], capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].endswith(
        "line 3: (record): Invalid JSON: key must be a string at line 1 column 2 "
        "(allowed: one JSON object per record)"
    )
    assert lines[1].endswith(
        "line 4: grade: grade 4 is not defined for 'Nausea' in CTCAE v5.0 (allowed: grades 1, 2, 3)"
    )
    assert lines[2].endswith("line 5: (record): Input should be an object")
    assert "4 records (ndjson): 1 valid, 3 invalid" in out


def test_json_output_is_machine_readable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = dict(example("ae.reported"), grade=9)
    path = tmp_path / "batch.json"
    path.write_text(json.dumps([example("patient.enrolled"), bad]))
    code, out, _ = run_cli(["validate", "--json", str(path)], capsys)
    assert code == 1
    document = json.loads(out)
    [summary] = document["files"]
    assert (summary["records"], summary["valid"], summary["invalid"]) == (2, 1, 1)
    assert summary["errors"] == [
        {
            "location": "item 1 (line 1)",
            "path": "grade",
            "message": "Input should be less than or equal to 5",
            "code": "schema.less_than_equal",
            "allowed": "<= 5",
        }
    ]
    assert document["records_per_s"] > 0


def test_truncated_json_array_reports_the_items_before_the_break(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = json.dumps([example("patient.enrolled"), example("ae.reported")], indent=2)
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2 + 40])
    code, out, _ = run_cli(["validate", "--json", str(path)], capsys)
    summary = json.loads(out)["files"][0]
    assert code == 1
    assert summary["valid"] == 1
    assert summary["errors"][0]["code"] == "input.json_invalid"
    assert summary["errors"][0]["message"].startswith("invalid JSON at line")


def test_an_unclosed_array_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "open.json"
    path.write_text("[" + json.dumps(example("patient.enrolled")) + ",\n")
    code, out, _ = run_cli(["validate", str(path)], capsys)
    assert code == 1
    assert "JSON array is not closed (input ends at line 2)" in out


def test_huge_lines_are_rejected_without_reading_them_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "huge.ndjson"
    with path.open("wb") as f:
        f.write(json.dumps(example("patient.enrolled")).encode() + b"\n")
        f.write(b'{"x": "' + b"a" * (3 * MAX_RECORD_BYTES) + b'"}\n')
        f.write(json.dumps(example("ae.reported")).encode() + b"\n")
    code, out, _ = run_cli(["validate", str(path)], capsys)
    assert code == 1
    assert f"line 2: (record): record is longer than {MAX_RECORD_BYTES} bytes" in out
    assert "3 records (ndjson): 2 valid, 1 invalid" in out


def test_wrong_encoding_in_csv_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (EXAMPLES / "edc-export-sample.csv").read_text().replace("tired", "fatigué")
    path = tmp_path / "latin1.csv"
    path.write_bytes(text.encode("latin-1"))
    code, out, _ = run_cli(["validate", str(path)], capsys)
    assert code == 1
    assert "is not valid UTF-8: byte 0xe9 on line 5; Excel and Windows exports are often " in out
    assert "(CLI: --encoding cp1252; HTTP: Content-Type: text/csv; charset=windows-1252)" in out
    code, out, _ = run_cli(["validate", "--encoding", "cp1252", str(path)], capsys)
    assert code == 0, out
    assert "6 valid, 0 invalid" in out


def test_semicolon_and_tab_separated_exports_are_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (EXAMPLES / "edc-export-sample.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    for name, delimiter in (("semicolon.csv", ";"), ("tab.csv", "\t")):
        with (tmp_path / name).open("w", newline="") as f:
            csv.writer(f, delimiter=delimiter).writerows(rows)
        code, out, _ = run_cli(["validate", str(tmp_path / name)], capsys)
        assert code == 0, out
        assert "6 valid, 0 invalid" in out


def test_dates_not_in_iso_form_echo_the_value_and_the_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (EXAMPLES / "edc-export-sample.csv").read_text()
    path = tmp_path / "dates.csv"
    path.write_text(text.replace("2026-01-17,2026-01-25", "20/11/2026,2026-01-25", 1))
    code, out, _ = run_cli(["validate", str(path)], capsys)
    assert code == 1
    row = [line for line in out.splitlines() if ": row 2: " in line]
    assert row == [
        f"{path}: row 2: AESTDTC: '20/11/2026' is not a date in the form YYYY-MM-DD (if it is "
        "day/month/year, write 2026-11-20) (allowed: YYYY-MM-DD (e.g. 2026-11-20), or "
        "YYYY-MM-DDThh:mm:ss with a UTC offset)"
    ]


def test_a_row_is_valid_as_a_whole_or_not_at_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The AE of a row whose resolution is rejected (end before onset) is rejected with it."""
    text = (EXAMPLES / "edc-export-sample.csv").read_text()
    path = tmp_path / "half.csv"
    path.write_text(text.replace("2026-01-17,2026-01-25", "2026-01-17,2026-01-10", 1))
    code, out, _ = run_cli(["validate", str(path)], capsys)
    assert code == 1
    assert "row 2 (ae.resolved): AEENDTC (end_date): end 2026-01-10 is before" in out
    assert "row 2: (record): another event of this row was rejected" in out
    assert "4 valid, 2 invalid" in out


def test_csv_errors_name_the_export_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (EXAMPLES / "edc-export-sample.csv").read_text()
    text = text.replace("Fatigue,10016256,2", "Fatigue,10016256,6")
    text = text.replace("NOT RELATED,DEFINITELY", "RELATED,DEFINITELY")
    path = tmp_path / "edc.csv"
    path.write_text(text)
    code, out, _ = run_cli(["validate", str(path)], capsys)
    assert code == 1
    assert "row 4: AERELRT: 'RELATED' is not an allowed value (allowed: NOT RELATED, " in out
    assert "row 4 (ae.resolved): (record): the AE reported on this row was rejected" in out
    assert "row 5: AETOXGR (grade): Input should be less than or equal to 5 (allowed: <= 5)" in out


def test_csv_missing_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "short.csv"
    path.write_text("STUDYID,SITEID\nSPARKLE-L,CN-SH-01\n")
    code, out, _ = run_cli(["validate", str(path)], capsys)
    assert code == 1
    assert "header: (record): missing required column(s): SUBJID, AESPID, REPORTER" in out
    assert "the header has 2 column(s): STUDYID, SITEID (is this an EDC AE export" in out


def test_csv_rows_get_stable_event_ids_so_reposting_never_double_counts(tmp_path: Path) -> None:
    def ids() -> list[str]:
        with (EXAMPLES / "edc-export-sample.csv").open("rb") as f:
            summary = validate_stream(f, "x.csv", None, None)
        assert summary.valid == 6
        from safety_stream.ctcae import ctcae_dictionary
        from safety_stream.validation.edc_csv import read_edc_csv
        from safety_stream.validation.validator import Validator

        with (EXAMPLES / "edc-export-sample.csv").open("rb") as f:
            results = Validator(ctcae_dictionary()).validate(read_edc_csv(f), csv_paths=True)
            return [str(r.event.event_id) for r in results if r.event]

    first, second = ids(), ids()
    assert first == second and len(set(first)) == 6


def test_unreadable_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["validate", "/nonexistent/file.ndjson"], capsys)
    assert code == 2
    assert "cannot read" in err


def test_empty_input_is_valid_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.ndjson"
    path.write_bytes(b"")
    code, out, _ = run_cli(["validate", str(path)], capsys)
    assert code == 0
    assert "0 records" in out


@pytest.mark.parametrize("input_format", list(InputFormat))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    garbage=st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.lists(
            st.sampled_from(
                [
                    b"{",
                    b"}",
                    b"[",
                    b"]",
                    b",",
                    b'"',
                    b"\n",
                    b"\r",
                    b"\xff",
                    b'"event_type"',
                    b":",
                    b"null",
                    b"\x00",
                ]
            ),
            max_size=60,
        ).map(b"".join),
    )
)
def test_garbage_never_crashes(input_format: InputFormat, garbage: bytes) -> None:
    summary = validate_stream(io.BytesIO(garbage), "fuzz", input_format, None)
    assert summary.records == summary.valid + summary.invalid
    for error in summary.errors:
        assert error["message"] and error["location"]


def test_console_script_runs_from_any_directory(tmp_path: Path) -> None:
    executable = Path(sys.executable).with_name("safety-stream")
    assert executable.exists(), "the safety-stream console script is not installed"
    sample = tmp_path / "sample.ndjson"
    sample.write_bytes((EXAMPLES / "sparkle-l-sample.ndjson").read_bytes())
    done = subprocess.run(
        [executable, "validate", "--json", "sample.ndjson"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["valid"] == 50
