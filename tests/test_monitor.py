"""The monitor, rule kind by rule kind: what is counted, when boundaries are crossed and cleared,
sentinels, report clocks, and that replay and restart derive nothing new."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from conftest import REPO
from trial_builder import ALT_INCREASED, ASCITES, DIARRHEA, NEUTROPENIA, T0, Trial

from safety_stream.boundaries import bayes_boundary, bayes_table, posterior_above
from safety_stream.cli import main
from safety_stream.events import EventBase
from safety_stream.events.derived import DerivedEvent
from safety_stream.monitoring.monitor import Monitor
from safety_stream.monitoring.status import rule_statuses
from safety_stream.plan import MonitoringPlan, parse_plan
from safety_stream.projections.projector import Projector, replay
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.store.projection_memory import InMemoryProjectionRepository
from safety_stream.store.sql import SqlEventStore

BASE = yaml.safe_load((REPO / "deploy" / "plans" / "sparkle-l.yaml").read_text())


def plan_with(*rules: dict[str, Any]) -> MonitoringPlan:
    return parse_plan(yaml.safe_dump({**BASE, "rules": list(rules)}))


def bayes(rule_id: str = "chemo", **overrides: Any) -> dict[str, Any]:
    rule = {
        "id": rule_id, "title": f"{rule_id} rule", "kind": "bayesian", "illustrative": True,
        "population": {"exposed_to": "chemotherapy"},
        "counts": {"min_grade": 3, "related_to": ["chemotherapy"]},
        "prior": [1, 1], "theta": 0.30, "cutoff": 0.90, "min_n": 1, "max_n": 10,
    }  # fmt: skip
    rule.update(overrides)
    return rule


SENTINELS = [
    {"id": "death", "title": "Treatment-related death", "kind": "sentinel", "illustrative": False,
     "match": {"min_grade": 5, "related_to": "any", "min_attribution": "possible"}},
    {"id": "ir-hepatitis", "title": "Grade >= 4 immune-related liver injury", "kind": "sentinel",
     "illustrative": False,
     "match": {"terms": ["Alanine aminotransferase increased", "Hepatic failure"], "min_grade": 4,
               "immune_related": True, "related_to": ["immunotherapy"]}},
]  # fmt: skip
CLOCKS = {
    "id": "expedited", "title": "Expedited reports", "kind": "expedited_report",
    "illustrative": False, "fatal_or_life_threatening_days": 7, "other_serious_days": 15,
}  # fmt: skip


class Run:
    """A store, a projector with a monitor, and the derived events they stored."""

    def __init__(self, plan: MonitoringPlan) -> None:
        self.plan = plan
        self.now = [T0]  # the server's clock: each event arrives when it was recorded
        self.store = InMemoryEventStore(clock=lambda: self.now[0])
        self.repository = InMemoryProjectionRepository()
        self.monitor = Monitor(plan)
        self.projector = Projector(self.store, self.repository, self.monitor)

    def post(self, events: list[EventBase]) -> list[DerivedEvent]:
        before = len(self.repository.derived)
        for event in events:
            self.now[0] = max(self.now[0], event.recorded_at)
            with self.store.write() as session:
                session.append(event)
            self.projector.catch_up()
        return list(self.repository.derived.values())[before:]

    def kinds(self, rule_id: str | None = None) -> list[str]:
        return [
            d.kind
            for d in self.repository.derived.values()
            if rule_id is None or d.rule_id == rule_id
        ]

    def status(self, rule_id: str) -> Any:
        return next(s for s in rule_statuses(self.monitor) if s.rule_id == rule_id)


def exposed_trial(patients: int, modality: str = "chemotherapy") -> Trial:
    trial = Trial()
    for number in range(1, patients + 1):
        trial.enrol(f"P{number}")
        trial.treat(f"P{number}", modality, 1)
    return trial


def test_approached_crossed_and_cleared_by_a_downgrade() -> None:
    table = bayes_table(10, 0.30, 0.90, (1.0, 1.0))
    assert [table.at(n) for n in (4, 5)] == [3, 3]  # the numbers this scenario relies on
    run = Run(plan_with(bayes()))
    trial = exposed_trial(4)
    run.post(trial.events)
    assert run.status("chemo").n == 4 and run.kinds() == []
    trial.events.clear()
    first = trial.ae("P1", 5, *NEUTROPENIA, 3, ct="possible")
    assert run.post(trial.events) == []  # 1 of 4: one more would make 2 < 3
    trial.events.clear()
    second = trial.ae("P2", 6, *DIARRHEA, 3, ct="probable")
    assert [d.kind for d in run.post(trial.events)] == ["boundary.approached"]
    trial.events.clear()
    third = trial.ae("P3", 7, *NEUTROPENIA, 4, ct="definite")
    (crossed,) = run.post(trial.events)
    assert crossed.kind == "boundary.crossed" and crossed.severity == "critical"
    assert crossed.details["n"] == 4 and crossed.details["x"] == 3
    assert crossed.details["boundary"] == 3
    assert crossed.details["posterior_probability"] == pytest.approx(
        posterior_above(0.30, 3, 4, (1, 1))
    )
    assert sorted(crossed.details["counted_ae_ids"]) == sorted([first, second, third])
    assert crossed.plan_version == run.plan.version and crossed.rule_id == "chemo"
    assert "P3" not in crossed.summary  # no patient identifier in what becomes an alert title
    trial.events.clear()
    trial.update("P3", 9, third, grade=2)
    assert run.post(trial.events) == []  # latched: a correction does not clear a crossing ...
    latched = run.status("chemo")
    assert (latched.status, latched.awaiting_decision, latched.x) == ("crossed", True, 2)
    trial.events.clear()
    trial.decide(10, "chemo")  # ... until the DSMB has decided on it
    (cleared,) = run.post(trial.events)
    assert cleared.kind == "boundary.cleared" and cleared.details["status"] == "approached"
    assert not run.status("chemo").awaiting_decision
    trial.events.clear()
    trial.retract("P2", 10, second)
    assert run.post(trial.events) == []  # approached -> ok is not news
    assert run.status("chemo").x == 1 and run.status("chemo").status == "ok"


def test_a_posterior_exactly_at_the_cutoff_does_not_cross() -> None:
    # theta 0.5, Beta(1, 1): after 1 of 1, P(p > 0.5) = 0.75 = cutoff (strict: no stop)
    run = Run(plan_with(bayes(theta=0.5, cutoff=0.75, max_n=3)))
    trial = exposed_trial(1)
    trial.ae("P1", 3, *NEUTROPENIA, 3, ct="definite")
    run.post(trial.events)
    status = run.status("chemo")
    assert status.x == 1 and status.posterior_probability == pytest.approx(0.75)
    assert status.status == "approached"  # a second counted patient (2 of 2) would stop
    assert "boundary.crossed" not in run.kinds()


def test_nothing_stops_before_the_minimum_n() -> None:
    run = Run(plan_with(bayes(min_n=3)))
    trial = exposed_trial(2)
    trial.ae("P1", 3, *NEUTROPENIA, 3, ct="definite")
    trial.ae("P2", 3, *NEUTROPENIA, 3, ct="definite")
    run.post(trial.events)
    assert run.status("chemo").x == 2 and run.status("chemo").boundary is None
    assert run.kinds() == ["boundary.approached"]  # the third patient, if counted, would stop
    extra = Trial()
    extra.enrol("P3")
    extra.treat("P3", "chemotherapy", 4)
    assert [d.kind for d in run.post(extra.events)] == ["boundary.crossed"]  # 2 of 3 >= b_3
    assert bayes_table(10, 0.30, 0.90, (1.0, 1.0), 3).at(3) == 2


def test_unrelated_low_grade_and_retracted_aes_are_not_counted() -> None:
    run = Run(plan_with(bayes()))
    trial = exposed_trial(3)
    trial.ae("P1", 3, *NEUTROPENIA, 4, ct="unlikely")  # not related enough
    trial.ae("P2", 3, *NEUTROPENIA, 2, ct="definite")  # grade too low
    gone = trial.ae("P3", 3, *NEUTROPENIA, 3, ct="definite")
    trial.retract("P3", 4, gone)
    trial.ae("P3", 5, *NEUTROPENIA, 3, rt="definite")  # related to another modality
    run.post(trial.events)
    assert run.status("chemo").x == 0


def test_an_ae_related_to_two_modalities_counts_for_both_rules() -> None:
    radio = bayes(
        "radio",
        population={"exposed_to": "radiotherapy"},
        counts={"min_grade": 3, "related_to": ["radiotherapy"]},
    )
    run = Run(plan_with(bayes("chemo"), radio))
    trial = exposed_trial(2)
    trial.treat("P1", "radiotherapy", 2)
    trial.ae("P1", 3, *DIARRHEA, 3, rt="possible", ct="probable")
    run.post(trial.events)
    assert (run.status("chemo").x, run.status("chemo").n) == (1, 2)
    assert (run.status("radio").x, run.status("radio").n) == (1, 1)


def test_patients_become_evaluable_when_their_window_has_been_followed() -> None:
    """Having the event does not make a patient evaluable sooner (that would bias the first
    looks toward events): everyone enters n when their window has fully elapsed."""
    windowed = bayes(population={"exposed_to": "chemotherapy", "window": "chemo_first_4_cycles"})
    run = Run(plan_with(windowed))
    trial = exposed_trial(3)  # chemo on day 1: window ends on day 57
    trial.ae("P1", 10, *NEUTROPENIA, 3, ct="definite")  # in the window
    trial.ae("P2", 70, *NEUTROPENIA, 3, ct="definite")  # after the window: not counted
    run.post(trial.events[:-1])
    status = run.status("chemo")
    assert (status.exposed, status.n, status.x) == (3, 0, 0)  # nobody has been followed yet
    run.post(trial.events[-1:])  # its recorded_at (day 70) moves the clock past day 57
    status = run.status("chemo")
    assert (status.n, status.x) == (3, 1)


def test_sentinels_raise_once_per_ae_and_only_when_they_match() -> None:
    run = Run(plan_with(bayes(), *SENTINELS))
    trial = exposed_trial(3)
    trial.treat("P2", "immunotherapy", 2)
    trial.treat("P3", "immunotherapy", 2)
    death = trial.ae("P1", 5, *NEUTROPENIA, 5, ct="possible")
    trial.ae("P2", 6, *NEUTROPENIA, 5, ct="unrelated")  # unrelated death: no sentinel
    liver = trial.ae("P2", 7, *ALT_INCREASED, 3, it="probable", immune_related=True)
    trial.ae("P3", 7, *ALT_INCREASED, 4, it="probable", immune_related=False)  # not an irAE
    run.post(trial.events)
    raised = [d for d in run.repository.derived.values() if d.kind == "sentinel.raised"]
    assert [(d.rule_id, d.details["ae_id"]) for d in raised] == [("death", death)]
    trial.events.clear()
    trial.update("P2", 9, liver, grade=4)  # upgraded: now it matches
    trial.update("P2", 10, liver, grade=4)  # the same again: already raised
    run.post(trial.events)
    raised = [d for d in run.repository.derived.values() if d.kind == "sentinel.raised"]
    assert [(d.rule_id, d.details["ae_id"]) for d in raised] == [
        ("death", death),
        ("ir-hepatitis", liver),
    ]
    assert run.status("death").raised == 1 and run.status("death").status == "crossed"


def rild_plan() -> MonitoringPlan:
    rild = next(r for r in BASE["rules"] if r["id"] == "rild")
    return plan_with({**rild, "max_n": 10, "looks": None})


@pytest.mark.parametrize(
    ("history", "counted"),
    [
        ([("lab", 20, "ALT", 6.0)], True),  # non-classic: ALT > 5 x ULN within 90 d of SBRT
        ([("lab", -10, "ALT", 6.0)], False),  # before SBRT: not RILD
        ([("lab", 130, "AST", 7.0)], False),  # after the 90-day window
        ([("cp", -5, 5), ("cp", 30, 7)], True),  # Child-Pugh rise of 2
        ([("cp", -5, 5), ("cp", 30, 6)], False),  # a rise of 1
        ([("ae", 30, ASCITES, 2)], False),  # classic needs ALP > 2 x ULN too
        ([("ae", 30, ASCITES, 2), ("lab", 31, "ALP", 2.5)], True),
        # baseline already > 5 x ULN: only CTCAE grade 4 levels (> 20 x baseline) count
        ([("lab", -10, "ALT", 6.0), ("lab", 20, "ALT", 7.0)], False),
        ([("lab", -10, "ALT", 6.0), ("lab", 20, "ALT", 130.0)], True),
        ([("lab", -10, "ALT", 1.5), ("lab", 20, "ALT", 5.5)], True),  # a normal-ish baseline
        # ALP with an abnormal baseline: twice the baseline
        ([("lab", -10, "ALP", 2.5), ("ae", 30, ASCITES, 2), ("lab", 31, "ALP", 3.0)], False),
        ([("lab", -10, "ALP", 2.5), ("ae", 30, ASCITES, 2), ("lab", 31, "ALP", 5.5)], True),
        ([("cp", 10, 5)], False),  # no assessment before SBRT: no rise to judge
        # liver injury the investigator puts down to the PD-1 antibody alone, immune-related,
        # is immune hepatitis, not RILD; related to SBRT too, or not immune-related, it is RILD
        ([("lab", 20, "ALT", 6.0), ("irae", 20, ALT_INCREASED, 3, "unrelated", True)], False),
        ([("lab", 20, "ALT", 6.0), ("irae", 20, ALT_INCREASED, 3, "possible", True)], True),
        ([("lab", 20, "ALT", 6.0), ("irae", 20, ALT_INCREASED, 3, "unrelated", False)], True),
        ([("lab", 20, "ALT", 6.0), ("irae", 140, ALT_INCREASED, 3, "unrelated", True)], True),
    ],
)
def test_rild_composite_counts_within_three_months_of_sbrt(
    history: list[tuple[Any, ...]], counted: bool
) -> None:
    run = Run(rild_plan())
    trial = Trial()
    trial.enrol("P1")
    sbrt_day = 20  # history days are relative to the (last) SBRT fraction
    entries = sorted((day + sbrt_day, kind, rest) for kind, day, *rest in history)
    for day, kind, rest in entries:
        if day >= sbrt_day and not any(
            e.event_type == "treatment.administered" for e in trial.events
        ):
            trial.treat("P1", "radiotherapy", sbrt_day)
        _add(trial, kind, day, rest)
    if not any(e.event_type == "treatment.administered" for e in trial.events):
        trial.treat("P1", "radiotherapy", sbrt_day)
    run.post(trial.events)
    trial.events.clear()
    trial.lab("P1", sbrt_day + 160, "ALT", 1.0)  # moves the clock past the 90-day window
    run.post(trial.events)
    assert (run.status("rild").n, run.status("rild").x) == (1, 1 if counted else 0)


def test_the_child_pugh_baseline_is_the_last_assessment_before_sbrt_however_logged() -> None:
    run = Run(rild_plan())
    trial = Trial()
    trial.enrol("P1")
    trial.child_pugh("P1", 2, 6)  # screening
    trial.treat("P1", "radiotherapy", 20)
    trial.child_pugh("P1", 50, 7)  # one point above the last pre-SBRT score (5, logged below)
    trial.child_pugh("P1", 15, 5)  # the pre-SBRT assessment, logged late
    trial.lab("P1", 160, "ALT", 1.0)  # the clock passes the 90-day window
    run.post(trial.events)
    # baseline 5 (day 15, the last before SBRT), not 6 (the first) nor 7 (the first logged
    # after SBRT): a rise of 2
    assert (run.status("rild").n, run.status("rild").x) == (1, 1)


def _add(trial: Trial, kind: str, day: int, rest: list[Any]) -> None:
    if kind == "lab":
        trial.lab("P1", day, rest[0], rest[1])
    elif kind == "cp":
        trial.child_pugh("P1", day, rest[0])
    elif kind == "irae":  # an AE related to the PD-1 antibody; to SBRT as rest[2] says
        (term, code), grade, rt, immune = rest
        trial.ae("P1", day, term, code, grade, rt=rt, it="probable", immune_related=immune)
    else:
        term, code = rest[0]
        trial.ae("P1", day, term, code, rest[1], rt="possible")


def serious(trial: Trial, patient: str, day: int, **fields: Any) -> str:
    return trial.ae(
        patient, day, *DIARRHEA, 3, ct="possible", seriousness=["hospitalisation"],
        expectedness="unexpected", **fields,
    )  # fmt: skip


def end_of_day(day: int) -> str:
    """The last instant of calendar day ``day`` after T0 in the plan's time zone (SPARKLE-L:
    Asia/Shanghai, where T0, midnight UTC, is 08:00), in UTC."""
    zone = ZoneInfo(BASE["trial"]["time_zone"])
    local_day = (T0 + timedelta(days=day)).astimezone(zone).date() + timedelta(days=1)
    last = datetime.combine(local_day, time.min, zone) - timedelta(microseconds=1)
    return last.astimezone(UTC).isoformat()


def test_report_clock_due_overdue_and_closed() -> None:
    run = Run(plan_with(bayes(), CLOCKS))
    trial = exposed_trial(2)
    late = serious(trial, "P1", 3)
    on_time = serious(trial, "P2", 4)
    trial.ae("P2", 4, *DIARRHEA, 3, ct="possible", seriousness=["hospitalisation"])  # expected
    run.post(trial.events)
    dues = [d for d in run.repository.derived.values() if d.kind == "report.due"]
    assert [d.details["ae_id"] for d in dues] == [late, on_time]
    assert dues[0].details["due"] == end_of_day(3 + 15)  # the end of calendar day 15
    trial.events.clear()
    trial.submit_report("P2", 10, on_time)
    trial.enrol("P3", 19)  # any event moves the clock: day 19 is past P1's due (day 18)
    derived = run.post(trial.events)
    assert [d.kind for d in derived] == ["report.closed", "report.overdue"]
    assert derived[0].details["on_time"] is True
    assert derived[1].details["ae_id"] == late
    clocks = {c.ae_id: c.state for c in run.status("expedited").clocks}
    assert clocks == {late: "overdue", on_time: "closed"}


def test_a_fatal_turn_shortens_the_clock_to_seven_days() -> None:
    run = Run(plan_with(bayes(), CLOCKS))
    trial = exposed_trial(1)
    ae = serious(trial, "P1", 3)
    trial.update("P1", 5, ae, seriousness=["hospitalisation", "life_threatening"])
    run.post(trial.events)
    dues = [d for d in run.repository.derived.values() if d.kind == "report.due"]
    assert [d.details["days"] for d in dues] == [15, 7]
    assert dues[1].details["due"] == end_of_day(5 + 7)


def test_replay_and_restart_derive_nothing_new() -> None:
    plan = plan_with(bayes(), *SENTINELS, CLOCKS)
    run = Run(plan)
    trial = exposed_trial(4)
    aes = [trial.ae(f"P{i}", 5 + i, *NEUTROPENIA, 3, ct="definite") for i in (1, 2, 3)]
    trial.update("P3", 12, aes[2], grade=2)  # under the boundary, but latched ...
    trial.decide(12, "chemo")  # ... until the DSMB decides: cleared
    trial.update("P3", 13, aes[2], grade=4)  # crossed again: a second, distinct crossing
    serious(trial, "P4", 14)
    trial.ae("P4", 15, *NEUTROPENIA, 5, ct="definite")
    run.post(trial.events)
    stored = list(run.repository.derived)
    kinds = run.kinds("chemo")
    assert kinds.count("boundary.crossed") == 2 and "boundary.cleared" in kinds
    # a full replay into the same repository, with a fresh monitor: same ids, nothing added
    replay(run.store, run.repository, observer=Monitor(plan))
    assert list(run.repository.derived) == stored
    # a restart: the monitor is rebuilt from the log and carries on where it was
    restarted = Projector(run.store, run.repository, Monitor(plan))
    assert restarted.catch_up() == 0
    more = Trial()
    more.update("P3", 20, aes[2], grade=2)
    more.update("P1", 20, aes[0], grade=2)  # 2 of 4 counted: back under b_4 = 3
    more.decide(21, "chemo")
    with run.store.write() as session:
        for event in more.events:
            session.append(event)
    restarted.catch_up()
    new = list(run.repository.derived)[len(stored) :]
    assert [run.repository.derived[i].kind for i in new] == ["boundary.cleared"]
    assert run.repository.derived[new[0]].derived_id not in stored


def test_whatif_lists_when_each_plan_would_have_alerted(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqlEventStore.create(sqlite_url)
    trial = exposed_trial(4)
    trial.ae("P1", 5, *NEUTROPENIA, 3, ct="possible")
    trial.ae("P2", 6, *NEUTROPENIA, 3, ct="possible")
    with store.write() as session:
        for event in trial.events:
            session.append(event)
    store.close()
    stricter = dict(BASE)
    stricter["rules"] = [
        bayes("chemotherapy-related-g3", theta=0.15, cutoff=0.80, max_n=40)
        if rule["id"] == "chemotherapy-related-g3"
        else rule
        for rule in BASE["rules"]
    ]
    new_plan = tmp_path / "stricter.yaml"
    new_plan.write_text(yaml.safe_dump(stricter))
    assert main(["whatif", "--plan", str(new_plan), "--db", sqlite_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    chemo = report["rules"]["chemotherapy-related-g3"]
    assert chemo["current"] == []  # Pocock at p0 0.40: 2 of 4 is no signal
    # Beta(1, 1), theta 0.15: 1 of 4 gives P(p > 0.15) = P(Bin(5, 0.15) <= 1) = 0.835 > 0.80
    assert [a["kind"] for a in chemo["new"]] == ["boundary.crossed"]
    assert (chemo["new"][0]["details"]["x"], chemo["new"][0]["details"]["n"]) == (1, 4)
    assert main(["whatif", "--plan", str(new_plan), "--db", sqlite_url]) == 0
    text = capsys.readouterr().out
    assert "chemotherapy-related-g3:" in text and "current  never" in text


def test_a_late_report_is_due_from_when_the_server_received_it() -> None:
    """Day 0 is the sponsor's awareness: when the server received the report, not the date
    the site recorded it (21 CFR 312.32(c)); a late site report is the site's lateness."""
    run = Run(plan_with(bayes(), CLOCKS))
    trial = exposed_trial(2)
    trial.enrol("P3", 20)  # the server has reached day 20
    late = serious(trial, "P2", 1)  # the site recorded it on day 1, sent it after day 20
    run.post(trial.events)
    clocks = [d for d in run.repository.derived.values() if d.rule_id == "expedited"]
    # and the site was late: 19 days between recording the SAE and sending it
    assert [(d.kind, d.details["ae_id"]) for d in clocks] == [
        ("report.due", late), ("report.site_late", late)
    ]  # fmt: skip
    assert clocks[0].details["aware_at"] == (T0 + timedelta(days=20)).isoformat()
    assert clocks[0].details["due"] == end_of_day(20 + 15)


# -- evaluability that does not depend on the outcome ------------------------------------------


def windowed_run(**overrides: Any) -> Run:
    population = {"exposed_to": "chemotherapy", "window": "chemo_first_4_cycles"}
    return Run(plan_with(bayes(population=population, **overrides)))


@pytest.mark.parametrize(
    ("leaving", "event_day", "evaluable", "counted"),
    [
        ("patient.withdrawn", None, False, False),  # left on day 30 without the event
        ("patient.lost_to_follow_up", None, False, False),
        ("patient.died", None, False, False),  # died of an unrelated cause
        ("patient.withdrawn", 20, True, True),  # had the event before leaving: an event
        ("patient.died", 20, True, True),
        ("patient.withdrawn", 40, False, False),  # an event after leaving is not seen
        (None, None, True, False),  # followed to the end of the window: event-free
    ],
)
def test_a_patient_who_leaves_early_without_the_event_is_not_counted_as_event_free(
    leaving: str | None, event_day: int | None, evaluable: bool, counted: bool
) -> None:
    run = windowed_run()
    trial = exposed_trial(1)  # chemo on day 1: the window ends on day 57
    if event_day is not None and event_day < 30:
        trial.ae("P1", event_day, *NEUTROPENIA, 3, ct="definite")
    if leaving == "patient.withdrawn":
        trial.add(leaving, "P1", 30, reason="consent_withdrawn")
    elif leaving == "patient.lost_to_follow_up":
        trial.add(leaving, "P1", 30, last_contact_date=(T0 + timedelta(days=30)).date().isoformat())
    elif leaving == "patient.died":
        trial.add(leaving, "P1", 30, death_date=(T0 + timedelta(days=30)).date().isoformat(),
                  primary_cause="disease progression")  # fmt: skip
    run.post(trial.events)
    assert run.status("chemo").n == 0  # nobody is evaluable before the window ends
    run.monitor.advance(run.projector.state, T0 + timedelta(days=60), 99)
    status = run.status("chemo")
    assert (status.n, status.x) == ((1, 1) if counted else (1, 0) if evaluable else (0, 0))
    assert status.not_evaluable_left_early == (0 if evaluable or leaving is None else 1)


def test_a_fatal_outcome_counts_as_grade_5_and_raises_the_death_sentinel() -> None:
    deaths = bayes(
        "deaths",
        population={"exposed_to": "chemotherapy"},
        counts={"min_grade": 5, "related_to": ["chemotherapy"]},
    )
    run = Run(plan_with(deaths, *SENTINELS))
    trial = exposed_trial(2)
    fatal = trial.ae("P1", 5, *NEUTROPENIA, 4, ct="probable")
    cited = trial.ae("P2", 5, *DIARRHEA, 4, ct="possible")
    run.post(trial.events)
    assert run.status("deaths").x == 0 and run.kinds("death") == []
    trial.events.clear()
    trial.add("ae.resolved", "P1", 9, ae_id=fatal, outcome="fatal",
              end_date=(T0 + timedelta(days=9)).date().isoformat())  # fmt: skip
    trial.add("patient.died", "P2", 10, death_date=(T0 + timedelta(days=10)).date().isoformat(),
              primary_cause="diarrhoea", related_ae_id=cited)  # fmt: skip
    run.post(trial.events)
    assert run.status("deaths").x == 2
    raised = [d.details["ae_id"] for d in run.repository.derived.values() if d.rule_id == "death"]
    assert raised == [fatal, cited]


def pocock_rule(**overrides: Any) -> dict[str, Any]:
    rule = {
        "id": "gs", "title": "group-sequential", "kind": "pocock", "illustrative": True,
        "population": {"exposed_to": "chemotherapy", "window": "chemo_first_4_cycles"},
        "counts": {"min_grade": 3, "related_to": ["chemotherapy"]},
        "p0": 0.2, "p1": 0.5, "alpha": 0.1, "max_n": 8, "looks": [4, 8],
    }  # fmt: skip
    rule.update(overrides)
    return rule


def staggered(patients: int, counted: set[int]) -> Trial:
    """Patient i starts chemotherapy on day i (their window ends on day i + 56)."""
    trial = Trial()
    for i in range(1, patients + 1):
        trial.enrol(f"P{i}", i - 1)
        trial.treat(f"P{i}", "chemotherapy", i)
        if i in counted:
            trial.ae(f"P{i}", i + 10, *NEUTROPENIA, 3, ct="definite")
    return trial


def test_a_group_sequential_rule_is_judged_at_its_looks_only() -> None:
    run = Run(plan_with(pocock_rule()))
    table = run.monitor.counting[0].table
    assert table.looks == (4, 8) and table.at(4) is not None and table.at(8) is not None
    bound_4 = table.at(4)
    assert bound_4 is not None and bound_4 >= 2
    # patients 1-3 are event-free, 4-6 have the event: at the look (n = 4) 1 counted, no stop;
    # between looks (n = 6) x = 3 would exceed the look-4 boundary, but nothing is judged there
    run.post(staggered(6, {4, 5, 6}).events)
    run.monitor.advance(run.projector.state, T0 + timedelta(days=6 + 57), 99)
    status = run.status("gs")
    assert (status.n, status.x) == (6, 3) and status.status != "crossed"
    assert status.next_look == 8
    assert "boundary.crossed" not in run.kinds("gs")


def test_past_its_planned_n_a_pocock_rule_is_beyond_it_and_never_crosses_afresh() -> None:
    run = Run(plan_with(pocock_rule(looks=None, max_n=4, alpha=0.2)))
    run.post(staggered(8, {5, 6, 7, 8}).events)
    run.monitor.advance(run.projector.state, T0 + timedelta(days=100), 99)
    status = run.status("gs")
    assert (status.n, status.x) == (8, 4)
    assert status.status == "beyond_planned_n" and "boundary.crossed" not in run.kinds("gs")


def test_past_its_planned_n_a_bayesian_rule_goes_on_with_the_same_posterior_rule() -> None:
    run = windowed_run(max_n=4, min_n=1, theta=0.3, cutoff=0.9)
    run.post(staggered(8, {6, 7, 8}).events)
    run.monitor.advance(run.projector.state, T0 + timedelta(days=100), 99)
    status = run.status("chemo")
    counter = run.monitor.counting[0]
    assert (status.n, status.x) == (8, 3)
    # the boundary at n = 4 (3) would call 3 of 8 a crossing; the rule's own boundary at 8 does not
    assert counter.table.at(4) == 3 and bayes_boundary(8, 0.3, 0.9, (1.0, 1.0)) == 4
    assert status.boundary == 4 and status.status == "beyond_planned_n"
    assert "boundary.crossed" not in run.kinds("chemo")
    trial = Trial()
    trial.ae("P5", 60, *NEUTROPENIA, 3, ct="definite")  # a late report: P5 counted, 4 of 8
    run.post(trial.events)
    assert run.status("chemo").status == "crossed"  # a real crossing, at n = 8


def test_time_weighted_patients_add_their_follow_up_so_far() -> None:
    population = {
        "exposed_to": "chemotherapy", "window": "chemo_first_4_cycles",
        "evaluability": "time_weighted",
    }  # fmt: skip
    run = Run(plan_with(bayes(population=population, min_n=1)))
    trial = exposed_trial(2)  # chemo on day 1, window 56 days
    trial.ae("P1", 15, *NEUTROPENIA, 3, ct="definite")  # a counted event: weight 1
    run.post(trial.events)
    run.monitor.advance(run.projector.state, T0 + timedelta(days=29), 99)
    status = run.status("chemo")
    assert status.x == 1 and status.n == pytest.approx(1 + 28 / 56)  # P2: 28 of 56 days
    assert status.posterior_probability == pytest.approx(posterior_above(0.30, 1, 1.5, (1, 1)))


# -- lab-driven sentinels ------------------------------------------------------------------------


def lab_sentinels() -> list[dict[str, Any]]:
    return [r for r in BASE["rules"] if r["kind"] == "lab_sentinel"]


@pytest.mark.parametrize(
    ("draws", "raised"),
    [
        ([(10, "ALT", 4.0), (10, "bilirubin_total", 2.5), (10, "ALP", 1.0)], True),
        ([(10, "AST", 3.5), (10, "bilirubin_total", 2.1), (10, "ALP", 1.5)], True),
        # not one draw: the bilirubin came two days later
        ([(10, "ALT", 4.0), (10, "ALP", 1.0), (12, "bilirubin_total", 2.5), (12, "ALP", 1.0)],
         False),
        # cholestatic (ALP >= 2 x ULN): not Hy's law
        ([(10, "ALT", 4.0), (10, "bilirubin_total", 2.5), (10, "ALP", 3.0)], False),
        ([(10, "ALT", 2.9), (10, "bilirubin_total", 2.5), (10, "ALP", 1.0)], False),
    ],
)  # fmt: skip
def test_hys_law_needs_all_three_in_one_draw(
    draws: list[tuple[int, str, float]], raised: bool
) -> None:
    run = Run(plan_with(*lab_sentinels()))
    trial = exposed_trial(1)
    for day, test, times in draws + draws:  # drawn twice: raised once per patient at most
        trial.lab("P1", day, test, times)
    run.post(trial.events)
    signals = [d for d in run.repository.derived.values() if d.rule_id == "hys-law"]
    assert len(signals) == (1 if raised else 0)
    if raised:
        assert "P1" not in signals[0].summary and signals[0].severity == "critical"


def test_immune_hepatitis_counts_labs_from_the_first_pd1_dose_only() -> None:
    run = Run(plan_with(*lab_sentinels()))
    trial = exposed_trial(2)
    trial.lab("P1", 5, "ALT", 6.0)  # before any PD-1 antibody: not immune-mediated
    trial.treat("P1", "immunotherapy", 8)
    trial.treat("P2", "immunotherapy", 8)
    trial.lab("P2", 20, "ALT", 6.0)  # on the antibody, > 5 x ULN
    run.post(trial.events)
    raised = [d for d in run.repository.derived.values() if d.rule_id == "immune-hepatitis-g3-lab"]
    assert [d.details["site_id"] for d in raised] == ["S1"] and len(raised) == 1
    assert run.status("immune-hepatitis-g3-lab").raised == 1
