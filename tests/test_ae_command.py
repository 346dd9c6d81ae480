"""``safety-stream ae AE_ID``: an AE's versions from the store, by its id or a unique prefix; an
ambiguous prefix lists the matches' short ids, an unknown or too short one says what to give."""

from __future__ import annotations

import json

import pytest
from test_read_snapshot import submit
from trial_builder import DIARRHEA, NAUSEA, Trial

from safety_stream.cli import main
from safety_stream.runtime import build_runtime
from safety_stream.settings import Settings


def reported(trial: Trial, ae_id: str, term: tuple[str, int], day: int, grade: int) -> str:
    """An AE report with a chosen id (Trial.ae draws a random one)."""
    return trial.add(
        "ae.reported", "P1", day, event_id=ae_id, ctcae_version="5.0", ctcae_term=term[0],
        meddra_code=term[1], grade=grade, onset_date=f"2026-01-{day + 1:02d}", seriousness=[],
        expectedness="expected", immune_related=False, action_taken="dose_not_changed",
        attribution={"radiotherapy": "unrelated", "chemotherapy": "possible",
                     "immunotherapy": "unrelated"},
    )  # fmt: skip


def stored(url: str, ids: list[str]) -> str:
    """Two AEs with the given ids (the second amended twice); returns the second's id."""
    trial = Trial()
    trial.enrol("P1", 0)
    reported(trial, ids[0], NAUSEA, 3, 1)
    second = reported(trial, ids[1], DIARRHEA, 4, 2)
    trial.update("P1", 6, second, grade=3, grade_change="worsened")
    trial.add("ae.resolved", "P1", 9, ae_id=second, outcome="recovered", end_date="2026-01-10")
    runtime = build_runtime(Settings(db=url))
    try:
        submit(runtime, trial)
    finally:
        runtime.close()
    return second


IDS = ["abcd1234-0000-4000-8000-000000000001", "abcd9999-0000-4000-8000-000000000002"]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = main(args)
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_unique_prefix_shows_every_version(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ae_id = stored(sqlite_url, IDS)
    status, out, _ = run(["ae", "abcd9", "--db", sqlite_url, "--json"], capsys)
    assert status == 0
    document = json.loads(out)
    assert document["adverse_event"]["ae_id"] == ae_id
    assert document["adverse_event"]["worst_grade"] == 3
    versions = document["versions"]
    assert [v["event_type"] for v in versions] == ["ae.reported", "ae.updated", "ae.resolved"]
    assert versions[1]["changes"] == {"grade": 3, "grade_change": "worsened"}
    assert versions[1]["reason"] == "review" and versions[1]["reporter"] == "test"
    status, out, _ = run(["ae", ae_id.upper(), "--db", sqlite_url], capsys)
    assert status == 0 and f"AE {ae_id}: Diarrhea" in out and "3. ae.resolved by test" in out


def test_an_ambiguous_unknown_or_short_prefix_is_refused_clearly(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stored(sqlite_url, IDS)
    status, _, err = run(["ae", "abcd", "--db", sqlite_url], capsys)
    assert status == 2
    assert "matches 2 AEs" in err and "abcd1234" in err and "abcd9999" in err
    status, _, err = run(["ae", "ffff", "--db", sqlite_url], capsys)
    assert status == 2 and "no AE id starts with 'ffff'" in err
    for bad in ("abc", "P1-xyz"):
        status, _, err = run(["ae", bad, "--db", sqlite_url], capsys)
        assert status == 2 and "at least 4" in err
