"""Latched crossings and DSMB decisions: a crossed rule stays "crossed, awaiting DSMB decision"
whatever later data do, until a decision answers it; decisions are events in the log; a pause
refuses enrolments until a later decision resumes them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import example
from test_api import Api
from trial_builder import CHEMO_CROSSES, crossing_trial

from safety_stream.cli import main
from safety_stream.events import encode_json
from safety_stream.governance import build_decision, pause_in_log, record_decision
from safety_stream.report.model import build_report
from safety_stream.report.render import render_html
from safety_stream.report.snapshot import snapshot_as_of
from safety_stream.runtime import build_memory_runtime, build_runtime
from safety_stream.settings import Settings

RULE = "chemotherapy-related-g3"


@pytest.fixture
def api(sqlite_url: str) -> Any:
    runtime = build_runtime(Settings(db=sqlite_url))
    client = Api(runtime)
    client.tokens["dsmb"] = runtime.credentials.add("dsmb-chair", "dsmb", None)
    yield client
    runtime.close()


def ndjson(events: list[Any]) -> bytes:
    return "\n".join(encode_json(e) for e in events).encode()


def rule(api: Api, rule_id: str = RULE) -> dict[str, Any]:
    rules = api.get("officer", "/v1/rules").json()["rules"]
    return next(r for r in rules if r["rule_id"] == rule_id)


def board(api: Api) -> str:
    page = api.client.get("/board", headers={"Authorization": f"Bearer {api.tokens['officer']}"})
    assert page.status_code == 200
    return str(page.text)


def card(page: str) -> str:
    found = re.search(rf'<article class="rule [a-z_]+" id="rule-{RULE}".*?</article>', page, re.S)
    assert found is not None
    return found.group(0)


def derived_kinds(api: Api) -> list[str]:
    derived = api.get("officer", "/v1/derived-events").json()
    return [d["event"]["kind"] for d in derived if d["event"]["rule_id"] == RULE]


def decide(api: Api, who: str = "dsmb", **body: Any) -> Any:
    return api.client.post(
        "/v1/decisions", json=body, headers={"Authorization": f"Bearer {api.tokens[who]}"}
    )


def test_a_crossing_stays_latched_until_the_dsmb_decides(api: Api) -> None:
    trial = crossing_trial(CHEMO_CROSSES, site="CN-SH-01")
    assert api.post("admin", ndjson(trial.events), "application/x-ndjson").status_code == 201
    crossed = rule(api)
    assert (crossed["status"], crossed["awaiting_decision"]) == ("crossed", True)
    # later data undo the crossing (two grades corrected to 2): the latch holds
    reports = [e for e in trial.events if e.event_type == "ae.reported"][:2]
    trial.events.clear()
    for report in reports:
        trial.update(report.patient_id, 60, str(report.event_id), site="CN-SH-01", grade=2)
    assert api.post("admin", ndjson(trial.events), "application/x-ndjson").status_code == 201
    latched = rule(api)
    assert (latched["status"], latched["awaiting_decision"]) == ("crossed", True)
    assert latched["x"] == CHEMO_CROSSES - 2  # the current numbers stay visible
    kinds = derived_kinds(api)
    assert "boundary.cleared" not in kinds
    page = board(api)
    assert 'data-field="awaiting-decision"><span class="big">1</span>' in page
    assert "Crossed, awaiting DSMB decision" in card(page)

    undecided_at = datetime.now(UTC)
    answer = decide(api, answers=[RULE], outcome="continue_unchanged",
                    rationale="Two grades were corrected at source verification.")  # fmt: skip
    assert answer.status_code == 201, answer.text
    decided = rule(api)
    assert decided["awaiting_decision"] is False and decided["status"] != "crossed"
    assert decided["last_decision"]["outcome"] == "continue_unchanged"
    assert decided["last_decision"]["decided_by"] == "dsmb-chair"
    kinds = derived_kinds(api)
    assert kinds[-1] == "boundary.cleared"
    page = board(api)
    assert 'data-field="awaiting-decision"><span class="big">0</span>' in page
    assert "awaiting DSMB decision" not in card(page)
    assert 'data-field="decision">continue unchanged' in card(page)
    # the DSMB report lists the crossing with its decision; before it, "no decision yet"
    store, plan = api.runtime.store, api.runtime.plan
    for moment, expected in ((undecided_at, "no decision yet"),
                             (datetime.now(UTC), "continue unchanged on")):  # fmt: skip
        dsmb_report = build_report(snapshot_as_of(store, plan, moment), None, "open")
        (crossing,) = [c for c in dsmb_report.crossings if c.rule_id == RULE]
        assert crossing.decision.startswith(expected)
        assert expected in render_html(dsmb_report)
    # the decision is an event of the log, in the hash chain, and survives a restart
    stored = [e for e in api.runtime.store.read() if e.event_type == "dsmb.decision"]
    assert len(stored) == 1 and json.loads(stored[0].payload)["answers"] == [RULE]
    assert api.runtime.store.verify().ok
    restarted = build_runtime(Settings(db=api.runtime.settings.db))
    try:
        again = next(c for c in restarted.monitor.counting if c.rule.id == RULE)
        assert again.awaiting_decision is False
        assert restarted.monitor.last_decision(RULE) is not None
    finally:
        restarted.close()


def test_a_pause_refuses_enrolment_with_409_until_resumed(api: Api) -> None:
    paused = decide(api, answers=[RULE], outcome="pause_enrolment",
                    rationale="Review the chemotherapy-related neutropenias first.")  # fmt: skip
    assert paused.status_code == 201 and paused.json()["enrolment_paused"] is True
    refused = api.post("CN-SH-01", example("patient.enrolled"))
    assert refused.status_code == 409
    (problem,) = refused.json()["results"][0]["problems"]
    assert problem["code"] == "governance.enrolment_paused"
    assert paused.json()["decision"]["event_id"] in problem["message"]
    assert [r for r in api.get("CN-SH-01", "/v1/rejections").json()]  # kept as a dead letter
    reviewed = "Neutropenia reviewed; dose modification rules reinforced."
    resumed = decide(api, answers=[RULE], outcome="resume_enrolment", rationale=reviewed)
    assert resumed.json()["enrolment_paused"] is False
    assert api.post("CN-SH-01", example("patient.enrolled")).status_code == 201


def test_only_the_dsmb_or_a_safety_officer_records_decisions(api: Api) -> None:
    body = {"answers": [RULE], "outcome": "terminate", "rationale": "x"}
    assert decide(api, "CN-SH-01", **body).status_code == 403
    assert decide(api, "admin", **body).status_code == 403
    assert decide(api, "officer", **body).status_code == 201  # a safety officer may
    unknown = decide(api, answers=["no-such-rule"], outcome="terminate", rationale="x")
    assert unknown.status_code == 400 and "the plan's rules" in unknown.text
    stop = decide(api, answers=[RULE], outcome="stop_modality", rationale="x")
    assert stop.status_code == 400 and "modality" in stop.text
    # a decision posted as data is refused, whoever posts it
    forged = dict(
        example("patient.enrolled"), event_type="dsmb.decision", site_id="DSMB",
        patient_id="DSMB", answers=[RULE], outcome="terminate", rationale="x", decided_by="x",
    )  # fmt: skip
    for key in ("consent_date", "planned_modalities"):
        forged.pop(key)
    assert api.post("admin", forged).status_code == 403


def test_decide_command(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--db", sqlite_url]) == 0
    code = main(["decide", "--db", sqlite_url, "--rule", "rild", "--outcome",
                 "continue_with_modification", "--rationale", "Liver MRI at 6 weeks",
                 "--by", "dsmb-chair"])  # fmt: skip
    assert code == 0 and "recorded decision" in capsys.readouterr().out
    assert main(["decide", "--db", sqlite_url, "--rule", "nope", "--outcome", "terminate",
                 "--rationale", "x", "--by", "y"]) == 2  # fmt: skip
    assert "unknown rule id(s): nope" in capsys.readouterr().err
    assert main(["verify", "--db", sqlite_url]) == 0


def test_a_worker_reads_the_pause_from_the_log() -> None:
    """The distributed ingest workers' monitors may lag: they read the pause from the log."""
    runtime = build_memory_runtime()
    try:
        assert pause_in_log(runtime.store, "SPARKLE-L") is None
        for outcome in ("pause_enrolment", "continue_unchanged"):  # the latter leaves it paused
            decision = build_decision(runtime.plan, [RULE], outcome, "minuted", "dsmb-chair",
                                      datetime.now(UTC))  # fmt: skip
            record_decision(runtime.store, runtime.ctcae, decision, "test")
        paused = pause_in_log(runtime.store, "SPARKLE-L")
        assert paused is not None and "minuted" in paused
        resume = build_decision(runtime.plan, [RULE], "resume_enrolment", "reviewed",
                                "dsmb-chair", datetime.now(UTC))  # fmt: skip
        record_decision(runtime.store, runtime.ctcae, resume, "test")
        assert pause_in_log(runtime.store, "SPARKLE-L") is None
    finally:
        runtime.close()
