"""Expedited IND safety reports as 21 CFR 312.32 and ICH E2A have them: day 0 is the sponsor's
awareness (the server's receipt), deadlines end with a calendar day in the trial's time zone,
corrections can make a case no longer reportable, a case that turns fatal after its report
needs a follow-up, a 7-day report is followed by a complete one, and only the suspected
products make a SUSAR."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from test_monitor import BASE, CLOCKS, Run, bayes, serious
from trial_builder import DIARRHEA, T0, Trial

from safety_stream.monitoring.report_clocks import calendar_due
from safety_stream.plan import parse_plan

SHANGHAI = ZoneInfo("Asia/Shanghai")


def run_with(time_zone: str = "UTC", **clock_fields: Any) -> Run:
    import yaml

    document = {**BASE, "trial": {**BASE["trial"], "time_zone": time_zone},
                "rules": [bayes(), {**CLOCKS, **clock_fields}]}  # fmt: skip
    return Run(parse_plan(yaml.safe_dump(document)))


def clock_events(run: Run) -> list[tuple[str, dict[str, Any]]]:
    return [
        (d.kind, d.details) for d in run.repository.derived.values() if d.rule_id == "expedited"
    ]


def trial_with_patient() -> Trial:
    trial = Trial()
    trial.enrol("P1", 0)
    trial.treat("P1", "chemotherapy", 0)
    return trial


def test_a_deadline_is_the_end_of_a_calendar_day_in_the_trial_time_zone() -> None:
    aware = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai on day 0
    due = calendar_due(aware, 15, SHANGHAI)
    assert due.astimezone(SHANGHAI).isoformat() == "2026-03-16T23:59:59.999999+08:00"
    # through the monitor: aware 09:00 on day 0, the report at 20:00 on day 15 is on time
    run = run_with("Asia/Shanghai")
    trial = trial_with_patient()
    sae = serious(trial, "P1", 1, hours=1)  # stored at 01:00 UTC = 09:00 in Shanghai
    trial.add("ae.safety_report_submitted", "P1", 16, hours=12, ae_id=sae,
              report_reference="IND-1")  # 20:00 in Shanghai on calendar day 15  # fmt: skip
    run.post(trial.events)
    (_, due_event), (_, closed) = clock_events(run)
    assert due_event["aware_at"] == (T0 + timedelta(days=1, hours=1)).isoformat()
    assert closed["reason"] == "submitted" and closed["on_time"] is True
    late = run_with("Asia/Shanghai")
    trial = trial_with_patient()
    sae = serious(trial, "P1", 1, hours=1)
    trial.add("ae.safety_report_submitted", "P1", 16, hours=17, ae_id=sae,
              report_reference="IND-1")  # 01:00 in Shanghai on day 16: late  # fmt: skip
    late.post(trial.events)
    kinds = [kind for kind, _ in clock_events(late)]
    assert kinds == ["report.due", "report.overdue", "report.closed"]
    assert clock_events(late)[-1][1]["on_time"] is False


def test_a_correction_that_removes_unexpectedness_closes_the_clock_as_not_reportable() -> None:
    run = run_with()
    trial = trial_with_patient()
    sae = serious(trial, "P1", 1)
    trial.update("P1", 4, sae, expectedness="expected")  # in the reference safety information
    trial.enrol("P2", 30)  # the log passes the deadline: no overdue
    run.post(trial.events)
    kinds = [(kind, details.get("reason")) for kind, details in clock_events(run)]
    assert kinds == [
        ("report.due", None),
        ("report.closed", "no longer reportable: expected (listed in the reference safety "
                          "information)"),
    ]  # fmt: skip
    assert run.status("expedited").clocks[0].state == "closed"
    trial.events.clear()
    trial.update("P1", 31, sae, expectedness="unexpected")  # corrected back: reportable again
    run.post(trial.events)
    (clock,) = run.status("expedited").clocks
    assert clock.state == "open" and clock.aware_at == T0 + timedelta(days=31)


def test_a_case_that_turns_fatal_after_its_report_needs_a_follow_up() -> None:
    run = run_with()
    trial = trial_with_patient()
    sae = serious(trial, "P1", 1)
    trial.submit_report("P1", 5, sae)  # the initial 15-day report, on time
    trial.update("P1", 9, sae, grade=5, grade_change="worsened", seriousness=["death"])
    trial.enrol("P2", 20)  # day 20: past the follow-up's 7 days
    run.post(trial.events)
    events = clock_events(run)
    assert [(k, d["stage"]) for k, d in events] == [
        ("report.due", "initial"), ("report.closed", "initial"),
        ("report.due", "follow-up"), ("report.overdue", "follow-up"),
    ]  # fmt: skip
    assert (
        events[2][1]["days"] == 7
        and events[2][1]["aware_at"] == (T0 + timedelta(days=9)).isoformat()
    )


def test_a_seven_day_report_is_followed_by_a_complete_report_by_day_fifteen() -> None:
    run = run_with()
    trial = trial_with_patient()
    sae = serious(
        trial,
        "P1",
        1,
    )
    trial.update("P1", 2, sae, seriousness=["hospitalisation", "life_threatening"])
    trial.submit_report("P1", 6, sae)  # the initial report within 7 days
    trial.submit_report("P1", 15, sae)  # the complete report by day 15 (of the first awareness)
    run.post(trial.events)
    events = clock_events(run)
    stages = [(k, d["stage"]) for k, d in events]
    assert stages == [
        ("report.due", "initial"), ("report.due", "initial"), ("report.closed", "initial"),
        ("report.due", "complete"), ("report.closed", "complete"),
    ]  # fmt: skip
    assert events[3][1]["due"] == (T0 + timedelta(days=2 + 16, microseconds=-1)).isoformat()
    assert all(d.get("on_time") in (None, True) for _, d in events)


def test_radiotherapy_alone_makes_no_susar_when_the_drugs_are_the_suspected_products() -> None:
    run = run_with(suspected_products=["immunotherapy", "chemotherapy"])
    trial = trial_with_patient()
    trial.ae("P1", 3, *DIARRHEA, 3, rt="probable", seriousness=["hospitalisation"],
             expectedness="unexpected")  # fmt: skip
    run.post(trial.events)
    assert clock_events(run) == []
    anything = run_with()  # without the list, any modality's suspicion counts
    anything.post(trial.events)
    assert [k for k, _ in clock_events(anything)] == ["report.due"]


def test_a_site_that_sends_an_sae_more_than_a_day_after_recording_it_is_late() -> None:
    """21 CFR 312.64(b): the investigator reports an SAE to the sponsor immediately."""
    run = run_with()
    trial = trial_with_patient()
    trial.enrol("P2", 10)  # the server has reached day 10
    late = trial.ae("P1", 3, *DIARRHEA, 3, ct="possible", seriousness=["hospitalisation"])
    trial.ae("P1", 4, *DIARRHEA, 2, ct="possible")  # not serious: no obligation
    trial.enrol("P3", 10)
    trial.add("lab.resulted", "P3", 10, "S1", 12, test="ALT", value=20.0, unit="U/L", uln=40.0)
    on_time = trial.ae("P3", 10, *DIARRHEA, 3, ct="possible", seriousness=["hospitalisation"],
                       hours=6)  # recorded 6 h before the server got it  # fmt: skip
    run.post(trial.events)
    flagged = [d for d in run.repository.derived.values() if d.kind == "report.site_late"]
    assert [d.details["ae_id"] for d in flagged] == [late] and on_time not in str(flagged)
    assert flagged[0].details["hours_late"] == 7 * 24.0
    assert flagged[0].severity == "warning" and "P1" not in flagged[0].summary
