"""The exports: SAS transport files read back by pyreadstat to the same rows and labels; the
`export` command's files and manifest (position and chain head equal to the store's, each file's
SHA-256), Excel-safe CSV, a missing or outdated store refused with nothing written; and
GET /v1/exports/{dataset} for readers and for a site (its own rows, no trial-wide position)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyreadstat
import pytest
from fastapi.testclient import TestClient
from test_read_snapshot import ADMIN, BJ, SH, submit
from test_sdtm import STUDY, hand_trial, simulated

from safety_stream.api.app import create_app
from safety_stream.cli import main
from safety_stream.exporting.xpt import write_xpt, xpt_bytes
from safety_stream.review.sdtm import fit, sdtm_datasets
from safety_stream.review.sdtm_spec import Column, Dataset
from safety_stream.runtime import Runtime, build_runtime
from safety_stream.settings import Settings
from safety_stream.store.engine import make_engine
from safety_stream.store.migrate import upgrade
from safety_stream.store.sql import SqlEventStore

NAMES = ("ae", "suppae", "dm", "ex", "lb", "ds")


def read_xpt(path: Path) -> tuple[dict[str, list[Any]], Any]:
    data, meta = pyreadstat.read_xport(str(path), output_format="dict")
    return dict(data), meta


def assert_reads_back(dataset: Dataset, path: Path) -> None:
    data, meta = read_xpt(path)
    assert list(data) == dataset.names
    assert meta.column_labels == [c.label for c in dataset.columns]
    assert (meta.table_name, meta.file_label) == (dataset.name, dataset.label)
    assert meta.number_rows == len(dataset.rows)
    for at, column in enumerate(dataset.columns):
        expected = [row[at] for row in dataset.rows]
        if column.type == "Num":
            expected = [None if v is None else float(v) for v in expected]
        assert data[column.name] == expected, column.name


def test_xpt_files_read_back_to_the_same_rows_and_labels(tmp_path: Path) -> None:
    runtime, _ = simulated()
    sets = runtime.review.read(ADMIN, sdtm_datasets)
    assert all(len(d.rows) > 0 for d in sets.values())
    for name, dataset in sets.items():
        path = tmp_path / f"{name}.xpt"
        write_xpt(dataset, path)
        assert_reads_back(dataset, path)
        assert xpt_bytes(dataset) == path.read_bytes()  # the same data: the same bytes
        head = path.read_bytes()[:80]
        assert head.startswith(b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!")  # v5


def test_an_empty_dataset_is_a_valid_file(tmp_path: Path) -> None:
    runtime, _ = simulated()
    dataset = runtime.review.read(ADMIN, sdtm_datasets)["ds"]
    empty = Dataset(dataset.name, dataset.label, dataset.columns, ())
    write_xpt(empty, tmp_path / "ds.xpt")
    assert_reads_back(empty, tmp_path / "ds.xpt")


def test_non_ascii_and_the_longest_values_survive(tmp_path: Path) -> None:
    longest = fit("Übelkeit " * 40)  # cut to 200 bytes, never inside a character
    assert len(longest.encode()) <= 200 and longest.startswith("Übelkeit")
    columns = (Column("TERM", "Reported Term", "Char"), Column("N", "A number", "Num"))
    dataset = Dataset("XX", "Test", columns, (("Übelkeit", -1.5), (longest, None), ("", 0)))
    write_xpt(dataset, tmp_path / "xx.xpt")
    assert_reads_back(dataset, tmp_path / "xx.xpt")


# -- the command ------------------------------------------------------------------------------


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[str]:
    """An SQLite store holding the hand-built trial, submitted through the production path."""
    url = f"sqlite:///{tmp_path / 'trial.db'}"
    runtime = build_runtime(Settings(db=url))
    submit(runtime, hand_trial()[0])
    runtime.close()
    yield url


def store_head(url: str) -> tuple[int, str]:
    store = SqlEventStore.open(url)
    try:
        last = list(store.read())[-1]
        return last.position, last.chain_hash
    finally:
        store.close()


def csv_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def test_the_command_writes_every_dataset_and_a_manifest_naming_the_log_prefix(
    stored: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    assert main(["export", "--db", stored, "--out", str(out), "--format", "both"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    position, chain = store_head(stored)
    assert (manifest["log_position"], manifest["chain_head"]) == (position, chain)
    assert manifest["cutoff"] is None and manifest["excel_safe"] is False
    assert manifest["software"]["name"] == "safety-stream"
    assert sorted(f["name"] for f in manifest["files"]) == sorted(
        f"{n}.{ext}" for n in NAMES for ext in ("csv", "xpt")
    )
    expected_rows = {"ae": 3, "suppae": 12, "dm": 4, "ex": 5, "lb": 3, "ds": 7}
    for entry in manifest["files"]:
        path = out / entry["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert path.stat().st_mode & 0o077 == 0  # patient-level: the owner's only
        key = entry["name"].split(".")[0]
        assert entry["rows"] == expected_rows[key]
        if entry["format"] == "csv":
            assert len(csv_rows(path)) == 1 + expected_rows[key]
        else:
            assert read_xpt(path)[1].number_rows == expected_rows[key]
    ae = csv_rows(out / "ae.csv")
    assert ae[0][:4] == ["STUDYID", "DOMAIN", "USUBJID", "AESEQ"]
    assert "=1+1 watery stools" in ae[1]  # as entered: not Excel-safe unless asked
    assert f"log position {position}" in capsys.readouterr().out


def test_the_same_log_gives_the_same_bytes(stored: str, tmp_path: Path) -> None:
    hashes = []
    for run in ("first", "second"):
        out = tmp_path / run
        assert main(["export", "--db", stored, "--out", str(out), "--format", "both"]) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        hashes.append({f["name"]: f["sha256"] for f in manifest["files"]})
    assert hashes[0] == hashes[1] and len(hashes[0]) == 12


def test_excel_safe_csv_neutralises_the_formula(stored: str, tmp_path: Path) -> None:
    out = tmp_path / "safe"
    assert main(["export", "--db", stored, "--out", str(out), "--excel-safe"]) == 0
    ae = csv_rows(out / "ae.csv")
    assert "'=1+1 watery stools" in ae[1] and "=1+1 watery stools" not in ae[1]
    assert json.loads((out / "manifest.json").read_text())["excel_safe"] is True
    assert not list(out.glob("*.xpt"))  # csv is the default


def test_a_cut_off_is_in_the_manifest_and_the_rows(stored: str, tmp_path: Path) -> None:
    out = tmp_path / "cut"
    assert main(["export", "--db", stored, "--out", str(out), "--cutoff", "2026-01-06"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["cutoff"] == "2026-01-06"
    assert {f["name"]: f["rows"] for f in manifest["files"]}["ae.csv"] == 2


def test_a_missing_store_is_refused_and_nothing_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nothing"
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    assert main(["export", "--db", url, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("safety-stream export: --db: no store at") and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "missing.db").exists()


def test_a_store_whose_schema_is_behind_is_refused_and_nothing_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0004")
    engine.dispose()
    out = tmp_path / "nothing"
    # as for verify and report: a store that cannot be used now is status 1, with the fix
    assert main(["export", "--db", url, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "revision 0004" in err and f"safety-stream db upgrade --db {url}" in err
    assert not out.exists()


def test_an_empty_store_has_nothing_to_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["db", "upgrade", "--db", url]) == 0
    capsys.readouterr()
    out = tmp_path / "nothing"
    assert main(["export", "--db", url, "--out", str(out)]) == 2
    assert "no event: nothing to export" in capsys.readouterr().err
    assert not out.exists()


def test_bad_options_are_usage_errors(stored: str, tmp_path: Path) -> None:
    out = tmp_path / "x"
    assert main(["export", "--db", stored, "--out", str(out), "--cutoff", "2026-13-01"]) == 2
    assert main(["export", "--db", stored, "--out", str(out), "--as-of", "2026-01-01T00"]) == 2
    (tmp_path / "file").write_text("")
    assert main(["export", "--db", stored, "--out", str(tmp_path / "file")]) == 2
    assert not out.exists()


# -- the API ----------------------------------------------------------------------------------


@pytest.fixture
def api(stored: str) -> Iterator[tuple[TestClient, dict[str, str], Runtime]]:
    runtime = build_runtime(Settings(db=stored))
    tokens = {
        "officer": runtime.credentials.add("officer", "safety_officer", None),
        "dsmb": runtime.credentials.add("dsmb", "dsmb", None),
        SH: runtime.credentials.add(SH, "site", SH),
        BJ: runtime.credentials.add(BJ, "site", BJ),
    }
    yield TestClient(create_app(runtime)), tokens, runtime
    runtime.close()


def fetch(api: tuple[TestClient, dict[str, str], Runtime], who: str, path: str) -> Any:
    client, tokens, _ = api
    return client.get(path, headers={"Authorization": f"Bearer {tokens[who]}"})


def test_a_reader_gets_every_row_stamped_with_the_log_position(
    api: tuple[TestClient, dict[str, str], Runtime], stored: str
) -> None:
    position, chain = store_head(stored)
    for who in ("officer", "dsmb"):
        response = fetch(api, who, "/v1/exports/dm")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["X-Log-Position"] == str(position)
        assert response.headers["X-Chain-Head"] == chain
        assert 'filename="dm.csv"' in response.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(response.text, newline="")))
        assert sorted(r[2] for r in rows[1:]) == [f"{STUDY}-P{n}" for n in (1, 2, 3, 4)]
    ae = fetch(api, "officer", "/v1/exports/ae?excel_safe=true").text
    assert "'=1+1 watery stools" in ae
    assert "'=1+1" not in fetch(api, "officer", "/v1/exports/ae").text
    cut = fetch(api, "officer", "/v1/exports/ae?cutoff=2026-01-06")
    assert cut.headers["X-Cutoff"] == "2026-01-06" and len(cut.text.splitlines()) == 3


@pytest.mark.parametrize(
    "cutoff",
    [
        "2026-01-06",  # P1's diarrhoea resolved after it; P2's AE not begun
        "2026-01-31",  # P2's AE begun (grade 4); its worsening to 5 and the death the day after
    ],
)
def test_the_api_gives_the_commands_bytes_for_the_same_log_and_cut_off(
    api: tuple[TestClient, dict[str, str], Runtime], stored: str, tmp_path: Path, cutoff: str
) -> None:
    out = tmp_path / "cli"
    assert main(["export", "--db", stored, "--out", str(out), "--cutoff", cutoff]) == 0
    for name in NAMES:
        response = fetch(api, "officer", f"/v1/exports/{name}?cutoff={cutoff}")
        assert response.content == (out / f"{name}.csv").read_bytes(), name
    ae = {r[4]: r for r in csv_rows(out / "ae.csv")[1:]}  # by AESPID
    if cutoff == "2026-01-31":
        fatal = ae[hand_ids(stored)["Hepatic failure"]]
        assert (fatal[9], fatal[11], fatal[19]) == ("4", "N", "NOT RECOVERED/NOT RESOLVED")


def hand_ids(url: str) -> dict[str, str]:
    """The AE id of each CTCAE term reported in the stored hand-built trial."""
    store = SqlEventStore.open(url)
    try:
        found = [json.loads(s.payload) for s in store.read()]
    finally:
        store.close()
    return {e["ctcae_term"]: e["event_id"] for e in found if e["event_type"] == "ae.reported"}


def test_xpt_over_the_api_reads_back(
    api: tuple[TestClient, dict[str, str], Runtime], tmp_path: Path
) -> None:
    response = fetch(api, "officer", "/v1/exports/suppae?format=xpt")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-sas-xport"
    path = tmp_path / "suppae.xpt"
    path.write_bytes(response.content)
    runtime = api[2]
    assert_reads_back(runtime.review.read(ADMIN, sdtm_datasets)["suppae"], path)


def test_xpt_without_the_extra_says_which_to_install(
    api: tuple[TestClient, dict[str, str], Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyreadstat", None)  # as if not installed
    response = fetch(api, "officer", "/v1/exports/ae?format=xpt")
    assert response.status_code == 501
    assert "pip install 'safety-stream[export]'" in response.json()["detail"]
    assert fetch(api, "officer", "/v1/exports/ae").status_code == 200  # CSV still works


def test_a_site_exports_its_own_rows_only_without_the_trial_wide_position(
    api: tuple[TestClient, dict[str, str], Runtime],
) -> None:
    own = {SH: {f"{STUDY}-P1", f"{STUDY}-P2"}, BJ: {f"{STUDY}-P3", f"{STUDY}-P4"}}
    for site, patients in own.items():
        for name in NAMES:
            response = fetch(api, site, f"/v1/exports/{name}")
            assert response.status_code == 200
            assert "X-Log-Position" not in response.headers
            assert "X-Chain-Head" not in response.headers
            rows = list(csv.reader(io.StringIO(response.text, newline="")))
            assert {r[2] for r in rows[1:]} <= patients, (site, name)
        dm = fetch(api, site, "/v1/exports/dm").text
        assert {r[2] for r in list(csv.reader(io.StringIO(dm, newline="")))[1:]} == patients


def test_bad_requests_say_what_is_allowed(
    api: tuple[TestClient, dict[str, str], Runtime],
) -> None:
    client = api[0]
    assert client.get("/v1/exports/ae").status_code == 401
    unknown = fetch(api, "officer", "/v1/exports/vs")
    assert unknown.status_code == 422 and "'ae'" in unknown.text
    assert fetch(api, "officer", "/v1/exports/ae?format=sas7bdat").status_code == 422
    assert fetch(api, "officer", "/v1/exports/ae?cutoff=yesterday").status_code == 422
    assert fetch(api, "officer", "/v1/exports/ae?cutoff=0").status_code == 422  # not 1970
    spec = client.get("/openapi.json").json()
    assert "/v1/exports/{dataset}" in spec["paths"]
