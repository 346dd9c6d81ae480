"""Alert triage: the transition rules (every allowed and refused step), the API (readers
triage, sites get 403, each step an ``alert.triaged`` event in the log with the reader's name,
the same states after a restart and when folded again from the stored events), and the
severity order of the alert listing with its paging."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_api import Api
from trial_builder import CHEMO_CROSSES, crossing_trial

from safety_stream.alerts.triage import (
    AlertTriage,
    StepNotAllowed,
    TriageError,
    check_step,
    fold_triage,
)
from safety_stream.api.app import create_app
from safety_stream.cli import main
from safety_stream.events import AlertTriaged, Disposition, TriageState, decode_json, encode_json
from safety_stream.runtime import build_memory_runtime, build_runtime
from safety_stream.settings import Settings

S = TriageState
# written out by hand from the workflow (not read from the module under test)
EXPECTED_ALLOWED = {
    (S.NEW, S.UNDER_REVIEW),
    (S.UNDER_REVIEW, S.ESCALATED_TO_DSMB),
    (S.UNDER_REVIEW, S.CLOSED),
    (S.ESCALATED_TO_DSMB, S.CLOSED),
    (S.CLOSED, S.UNDER_REVIEW),
}


# --- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_step_is_allowed_or_refused_as_the_workflow_says(
    current: TriageState, target: TriageState
) -> None:
    disposition = "no_action_needed" if target == S.CLOSED else None
    if (current, target) in EXPECTED_ALLOWED:
        to, chosen, note = check_step(current, target.value, disposition, "  why  ")
        assert (to, note) == (target, "why")
        assert chosen == (Disposition.NO_ACTION_NEEDED if target == S.CLOSED else None)
        return
    with pytest.raises(StepNotAllowed) as refused:
        check_step(current, target.value, disposition, "why")
    allowed = [t.value for c, t in sorted(EXPECTED_ALLOWED) if c == current]
    message = str(refused.value)
    assert message.startswith(f"the alert is {current.value}: it may go to ")
    assert message.endswith(f", not {target.value}")
    assert sorted(message.split("it may go to ")[1].split(", not ")[0].split(", ")) == sorted(
        allowed
    )


def test_escalating_closing_and_reopening_need_a_note() -> None:
    with pytest.raises(TriageError, match="going to escalated_to_dsmb needs a note"):
        check_step(S.UNDER_REVIEW, "escalated_to_dsmb", None, "   ")
    with pytest.raises(TriageError, match="going to closed needs a note"):
        check_step(S.ESCALATED_TO_DSMB, "closed", "duplicate", None)
    with pytest.raises(TriageError, match="reopening needs a note"):
        check_step(S.CLOSED, "under_review", None, "")
    assert check_step(S.NEW, "under_review", None, None) == (S.UNDER_REVIEW, None, None)


def test_a_disposition_comes_from_the_list_and_only_with_closing() -> None:
    with pytest.raises(TriageError, match="closing needs one of no_action_needed, "):
        check_step(S.UNDER_REVIEW, "closed", None, "done")
    with pytest.raises(TriageError, match="'fixed' is not one of no_action_needed, "):
        check_step(S.UNDER_REVIEW, "closed", "fixed", "done")
    with pytest.raises(TriageError, match="only when closing \\(to_state under_review\\)"):
        check_step(S.NEW, "under_review", "duplicate", None)
    with pytest.raises(TriageError, match="'reviewing' is not a triage state"):
        check_step(S.NEW, "reviewing", None, None)
    with pytest.raises(TriageError, match="at most 2000 characters"):
        check_step(S.UNDER_REVIEW, "escalated_to_dsmb", None, "x" * 2001)
    with pytest.raises(TriageError, match="note: printable text only"):
        check_step(S.UNDER_REVIEW, "escalated_to_dsmb", None, "chair\x00informed")
    assert check_step(S.UNDER_REVIEW, "escalated_to_dsmb", None, "a\n\tb")[2] == "a\n\tb"
    for disposition in Disposition:
        assert check_step(S.UNDER_REVIEW, "closed", disposition.value, "n")[1] == disposition


def step_event(alert: uuid.UUID, before: str, after: str, by: str, **extra: Any) -> AlertTriaged:
    return AlertTriaged.model_validate(
        {
            "event_type": "alert.triaged", "schema_version": 1, "event_id": str(uuid.uuid4()),
            "trial_id": "SPARKLE-L", "site_id": "DSMB", "patient_id": "TRIAGE",
            "reporter": by, "occurred_at": "2026-05-01T10:00:00Z",
            "recorded_at": "2026-05-01T10:00:00Z", "alert_id": str(alert),
            "from_state": before, "to_state": after, "triaged_by": by, **extra,
        }
    )  # fmt: skip


def test_the_fold_keeps_each_alerts_state_and_every_step() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    steps = [
        (3, step_event(a, "new", "under_review", "ann")),
        (5, step_event(b, "new", "under_review", "bob")),
        (8, step_event(a, "under_review", "closed", "ann", disposition="duplicate", note="dup")),
        (9, step_event(a, "closed", "under_review", "cy", note="not a duplicate")),
    ]
    folded = fold_triage(steps)
    assert folded[a].state == S.UNDER_REVIEW and folded[b].state == S.UNDER_REVIEW
    assert [(s.position, s.by) for s in folded[a].steps] == [(3, "ann"), (8, "ann"), (9, "cy")]
    assert folded[a].last_position == 9 and folded[a].disposition is None
    assert fold_triage(steps[:3])[a].disposition == Disposition.DUPLICATE
    assert AlertTriage().state == S.NEW and AlertTriage().last_position == 0


def test_the_event_needs_a_disposition_exactly_when_closing() -> None:
    alert = uuid.uuid4()
    with pytest.raises(ValueError, match="disposition is given with to_state closed"):
        step_event(alert, "under_review", "closed", "ann")
    with pytest.raises(ValueError, match="disposition is given with to_state closed"):
        step_event(alert, "new", "under_review", "ann", disposition="other")


# --- the API --------------------------------------------------------------------------------


def filled(api: Api) -> Api:
    trial = crossing_trial(CHEMO_CROSSES, site="CN-SH-01")
    body = "\n".join(encode_json(e) for e in trial.events).encode()
    assert api.post("admin", body, "application/x-ndjson").status_code == 201
    api.runtime.outbox.plan(api.runtime.derived, datetime.now(UTC))
    return api


@pytest.fixture(params=["memory", "sqlite"])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    if request.param == "memory":
        runtime = build_memory_runtime()
    else:
        runtime = build_runtime(Settings(db=request.getfixturevalue("sqlite_url")))
    client = filled(Api(runtime))
    client.tokens["dsmb"] = runtime.credentials.add("dsmb-chair", "dsmb", None)
    yield client
    runtime.close()


def triage(api: Api, who: str, alert: str, **body: Any) -> Any:
    return api.client.post(
        f"/v1/alerts/{alert}/triage",
        json=body,
        headers={"Authorization": f"Bearer {api.tokens[who]}"},
    )


def stored_steps(api: Api) -> list[dict[str, Any]]:
    """The alert.triaged events in the log, read as raw JSON (not through the fold)."""
    return [
        dict(json.loads(s.payload), position=s.position)
        for s in api.runtime.store.read()
        if s.event_type == "alert.triaged"
    ]


def states_by_hand(steps: list[dict[str, Any]]) -> dict[str, str]:
    """Each alert's state: the to_state of its last step in log order."""
    states: dict[str, str] = {}
    for step in sorted(steps, key=lambda s: s["position"]):
        states[step["alert_id"]] = step["to_state"]
    return states


def test_a_reader_walks_an_alert_through_triage_and_each_step_is_in_the_log(api: Api) -> None:
    alerts = api.get("officer", "/v1/alerts").json()
    alert = alerts[0]["alert"]["derived_id"]
    assert alerts[0]["triage"] == {
        "state": "new", "disposition": None, "allowed": ["under_review"], "steps": [],
    }  # fmt: skip
    started = triage(api, "officer", alert, to_state="under_review")
    assert started.status_code == 201, started.text
    assert started.json()["alert"]["acknowledged_by"] == "officer"  # review = seen
    escalated = triage(api, "dsmb", alert, to_state="escalated_to_dsmb", note="for the chair")
    assert escalated.status_code == 201
    closed = triage(
        api, "officer", alert, to_state="closed",
        disposition="addressed_by_dsmb_decision", note="DSMB paused enrolment",
    )  # fmt: skip
    assert closed.status_code == 201
    shown = closed.json()["alert"]["triage"]
    assert (shown["state"], shown["disposition"], shown["allowed"]) == (
        "closed", "addressed_by_dsmb_decision", ["under_review"],
    )  # fmt: skip
    steps = stored_steps(api)
    assert [(s["from_state"], s["to_state"], s["triaged_by"], s["reporter"], s["note"])
            for s in steps] == [
        ("new", "under_review", "officer", "officer", None),
        ("under_review", "escalated_to_dsmb", "dsmb-chair", "dsmb-chair", "for the chair"),
        ("escalated_to_dsmb", "closed", "officer", "officer", "DSMB paused enrolment"),
    ]  # fmt: skip
    assert {s["alert_id"] for s in steps} == {alert}
    assert {(s["site_id"], s["patient_id"]) for s in steps} == {("DSMB", "TRIAGE")}
    positions = [closed.json()["position"]]
    assert positions == [steps[-1]["position"]]
    listed = next(a for a in api.get("officer", "/v1/alerts").json()
                  if a["alert"]["derived_id"] == alert)  # fmt: skip
    assert [(s["position"], s["by"], s["to_state"]) for s in listed["triage"]["steps"]] == [
        (s["position"], s["triaged_by"], s["to_state"]) for s in steps
    ]
    assert api.runtime.store.verify().ok  # in the hash chain like every event


def test_refused_steps_say_why_and_leave_the_log_alone(api: Api) -> None:
    alert = api.get("officer", "/v1/alerts").json()[0]["alert"]["derived_id"]
    before = api.runtime.store.head()
    skipped = triage(api, "officer", alert, to_state="closed", disposition="duplicate", note="n")
    assert skipped.status_code == 409
    assert skipped.json()["detail"] == "the alert is new: it may go to under_review, not closed"
    assert triage(api, "officer", alert, to_state="under_review").status_code == 201
    again = triage(api, "officer", alert, to_state="under_review")
    assert again.status_code == 409 and "it may go to escalated_to_dsmb, closed" in again.text
    no_note = triage(api, "officer", alert, to_state="closed", disposition="other")
    assert no_note.status_code == 400 and "needs a note" in no_note.json()["detail"]
    bad = triage(api, "officer", alert, to_state="closed", disposition="fixed", note="n")
    assert bad.status_code == 422  # not one of the dispositions: refused by the body's schema
    control = triage(api, "officer", alert, to_state="escalated_to_dsmb", note="a\x1bb")
    assert control.status_code == 422  # refused by the body's schema (printable text)
    missing = triage(api, "officer", str(uuid.uuid4()), to_state="under_review")
    assert missing.status_code == 404
    assert api.runtime.store.head() == before + 1  # only the one allowed step


def test_a_site_may_not_triage_nor_post_a_triage_step_as_data(api: Api) -> None:
    alert = api.get("officer", "/v1/alerts").json()[0]["alert"]["derived_id"]
    refused = triage(api, "CN-SH-01", alert, to_state="under_review")
    assert refused.status_code == 403
    assert api.get("CN-SH-01", "/v1/alerts").status_code == 403
    forged = step_event(uuid.UUID(alert), "new", "under_review", "CN-SH-01")
    forged = forged.model_copy(update={"trial_id": api.runtime.plan.trial.id})
    for who in ("CN-SH-01", "admin"):  # not even an admin posts one as data
        posted = api.post(who, encode_json(forged).encode(), "application/x-ndjson")
        assert posted.status_code == 403, posted.text
        codes = [p["code"] for r in posted.json()["results"] for p in r["problems"]]
        assert "auth.triage_not_allowed" in codes or "auth.site_mismatch" in codes
    assert stored_steps(api) == []


def test_triage_states_survive_a_restart_and_a_fold_of_the_stored_events(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = build_runtime(Settings(db=sqlite_url))
    api = filled(Api(runtime))
    alerts = [a["alert"]["derived_id"] for a in api.get("officer", "/v1/alerts").json()]
    assert len(alerts) >= 2
    assert triage(api, "officer", alerts[0], to_state="under_review").status_code == 201
    assert (
        triage(api, "officer", alerts[0], to_state="escalated_to_dsmb", note="chair").status_code
        == 201
    )
    assert triage(api, "officer", alerts[1], to_state="under_review").status_code == 201
    before = {
        a["alert"]["derived_id"]: a["triage"] for a in api.get("officer", "/v1/alerts").json()
    }
    by_hand = states_by_hand(stored_steps(api))
    assert by_hand == {alerts[0]: "escalated_to_dsmb", alerts[1]: "under_review"}
    runtime.close()

    again = build_runtime(Settings(db=sqlite_url))  # a new process on the same store
    try:
        listed = TestClient(create_app(again)).get(
            "/v1/alerts", headers={"Authorization": f"Bearer {api.tokens['officer']}"}
        )
        after = {a["alert"]["derived_id"]: a["triage"] for a in listed.json()}
        assert after == before
        assert {k: v["state"] for k, v in after.items() if v["steps"]} == by_hand
        # the fold of the stored events, from scratch, gives the same states
        folded = fold_triage(
            (s.position, decode_json(s.payload))  # type: ignore[misc]
            for s in again.store.read()
            if s.event_type == "alert.triaged"
        )
        assert {str(k): v.state.value for k, v in folded.items()} == by_hand
    finally:
        again.close()
    # the command line reads the same states from the log
    assert main(["alerts", "--json", "--db", sqlite_url]) == 0
    listed = {a["alert"]["derived_id"]: a["triage"] for a in json.loads(capsys.readouterr().out)}
    assert listed == before
    assert main(["alerts", "--db", sqlite_url]) == 0
    lines = capsys.readouterr().out
    assert f"{alerts[0]}  " in lines and "triage: Escalated to DSMB (officer " in lines


# --- the listing's order --------------------------------------------------------------------

RANK = {"critical": 0, "warning": 1, "info": 2}


def test_alerts_are_listed_most_severe_first_then_newest_and_page_in_that_order(
    api: Api,
) -> None:
    every = api.get("officer", "/v1/alerts?limit=1000").json()
    keys = [(RANK[a["alert"]["severity"]], -a["number"]) for a in every]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert {a["alert"]["severity"] for a in every} >= {"critical", "warning"}
    walked: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.get("officer", f"/v1/alerts?after={after}&limit=1").json()
        if not page:
            break
        walked += page
        after = page[-1]["number"]
    assert walked == every
    raised = api.get("officer", "/v1/alerts?order=raised&limit=1000").json()
    assert [a["number"] for a in raised] == sorted(a["number"] for a in every)
