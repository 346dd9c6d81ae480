"""An AE's worst grade over its course is kept apart from its current grade: an improvement is
not a correction. Histories go through the validator, the projection and the monitor
(``monitoring.dryrun.fold``), as the server runs them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_monitor import bayes, plan_with
from trial_builder import NEUTROPENIA, Trial

from safety_stream.events import encode_json
from safety_stream.monitoring.dryrun import Folded, fold
from safety_stream.projections.toxicity import toxicity_tables
from safety_stream.validation.records import RawRecord

PLAN = plan_with(bayes("chemo", min_n=1, max_n=10))


def folded(trial: Trial) -> Folded:
    records = [
        RawRecord(f"event {i}", b"", value=json.loads(encode_json(e)), parsed=True)
        for i, e in enumerate(trial.events, 1)
    ]
    return fold(PLAN, records)


def course(*updates: dict[str, Any]) -> Trial:
    """One chemotherapy patient with a related neutropenia reported at grade 3 on day 5 and
    the given updates on days 10, 11, ...; a lab on day 30 moves the clock on."""
    trial = Trial()
    trial.enrol("P1", 0)
    trial.treat("P1", "chemotherapy", 1)
    ae = trial.ae("P1", 5, *NEUTROPENIA, 3, ct="probable")
    for day, fields in enumerate(updates, 10):
        trial.update("P1", day, ae, **fields)
    trial.lab("P1", 30, "ALT", 1.0)
    return trial


@pytest.mark.parametrize(
    ("updates", "current", "worst", "counted"),
    [
        ([], 3, 3, True),
        # improving: the AE was grade 3; it still counts as one
        ([{"grade": 1, "grade_change": "improved"}], 1, 3, True),
        # a correction: it never was grade 3
        ([{"grade": 2, "grade_change": "corrected"}], 2, 2, False),
        # an update that does not say (sent before grade_change existed) is a correction
        ([{"grade": 2}], 2, 2, False),
        # worse, then better: the worst is 4
        ([{"grade": 4, "grade_change": "worsened"}, {"grade": 2, "grade_change": "improved"}],
         2, 4, True),
        # worse, then the worsening corrected: the course is 3, 3
        ([{"grade": 4, "grade_change": "worsened"}, {"grade": 3, "grade_change": "corrected"}],
         3, 3, True),
        # improved, then the improvement corrected to grade 2: the worst is still the first 3
        ([{"grade": 1, "grade_change": "improved"}, {"grade": 2, "grade_change": "corrected"}],
         2, 3, True),
    ],
)  # fmt: skip
def test_an_improving_ae_keeps_its_worst_grade(
    updates: list[dict[str, Any]], current: int, worst: int, counted: bool
) -> None:
    result = folded(course(*updates))
    assert result.rejected == 0, result.problems
    (ae,) = result.state.aes.values()
    assert (ae.grade, ae.worst) == (current, worst)
    counter = result.monitor.counting[0]
    assert (counter.n, counter.x) == (1, int(counted))
    tables = toxicity_tables(result.state, result.monitor.clock)
    (chemo,) = [t for t in tables if t.modality == "chemotherapy"]
    assert chemo.by_worst_grade[str(worst)] == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"grade": 4, "grade_change": "improved"}, "not below the AE's current grade 3"),
        ({"grade": 2, "grade_change": "worsened"}, "not above the AE's current grade 3"),
        ({"grade": 3, "grade_change": "worsened"}, "not above the AE's current grade 3"),
    ],
)
def test_a_grade_change_that_contradicts_the_current_grade_is_rejected_and_kept(
    fields: dict[str, Any], message: str
) -> None:
    result = folded(course(fields))
    assert result.rejected == 1
    (problem,) = [p for p in result.problems if "grade_change" in str(p)]
    assert message in str(problem) and "consistency.grade_change" in str(problem)
    (ae,) = result.state.aes.values()
    assert (ae.grade, ae.worst) == (3, 3)  # the rejected update changed nothing


def test_an_update_without_grade_change_keeps_its_canonical_bytes() -> None:
    """Updates stored before grade_change existed must hash the same when they are resent."""
    trial = course({"grade": 2})
    update = next(e for e in trial.events if e.event_type == "ae.updated")
    assert "grade_change" not in json.loads(encode_json(update))
    with_change = course({"grade": 2, "grade_change": "corrected"})
    changed = next(e for e in with_change.events if e.event_type == "ae.updated")
    assert json.loads(encode_json(changed))["grade_change"] == "corrected"
