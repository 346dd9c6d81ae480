"""`safety-stream monitor`: each file folded in memory as one trial, nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trial_builder import BOTH_CROSS, T0, crossing_trial

from safety_stream.cli import main
from safety_stream.events import encode_json


def write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_each_file_is_one_trial_and_the_clock_ends_at_now(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trial = crossing_trial(BOTH_CROSS)
    lab = trial.events.pop()  # without the day-200 lab the clock stops at day 8
    assert lab.event_type == "lab.resulted"
    early = write(tmp_path / "early.ndjson", [encode_json(e) for e in trial.events])
    bad = write(tmp_path / "bad.ndjson", [encode_json(trial.events[0]), '{"event_type": "x"}'])
    assert main(["monitor", "--json", early, bad]) == 1  # a rejected record in bad.ndjson
    files = json.loads(capsys.readouterr().out)["files"]
    assert [(f["file"], f["stored"], f["rejected"]) for f in files] == [
        (early, len(trial.events), 0),
        (bad, 1, 1),
    ]
    rules = {r["id"]: r for r in files[0]["rules"]}
    chemo = rules["chemotherapy-related-g3"]
    assert (chemo["n"], chemo["x"], chemo["status"], chemo["ever_crossed"]) == (0, 0, "ok", False)
    assert set(chemo) == {"id", "kind", "status", "ever_crossed", "n", "x", "first_crossed_at"}

    now = (T0.replace(hour=0) + (lab.recorded_at - T0)).isoformat()  # day 200
    assert main(["monitor", "--json", "--now", now, early]) == 0
    rules = {r["id"]: r for r in json.loads(capsys.readouterr().out)["files"][0]["rules"]}
    chemo, overall = rules["chemotherapy-related-g3"], rules["overall-related-g3"]
    assert (chemo["n"], chemo["x"], chemo["status"]) == (BOTH_CROSS, BOTH_CROSS, "crossed")
    assert chemo["first_crossed_at"].startswith("2026-02-27")  # day 57: the windows end
    assert overall["ever_crossed"] and overall["first_crossed_at"].startswith("2026-07-02")


def test_a_bad_now_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "t.ndjson", [encode_json(crossing_trial(1).events[0])])
    assert main(["monitor", "--now", "2026-13-01", path]) == 2
    assert capsys.readouterr().err.startswith("safety-stream monitor: --now: '2026-13-01'")
