"""Time the sites do not control: no event may be dated after the server received it."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import example
from test_api import Api
from trial_builder import NEUTROPENIA, T0, Trial

from safety_stream.events import encode_json
from safety_stream.ingest import ingest
from safety_stream.monitoring.monitor import Monitor
from safety_stream.projections.projector import replay
from safety_stream.runtime import build_memory_runtime
from safety_stream.settings import Settings
from safety_stream.simulate import simulate
from safety_stream.simulate.rates import scenario
from safety_stream.store.projection_memory import InMemoryProjectionRepository
from safety_stream.ticking import tick
from safety_stream.validation.records import InputFormat, RawRecord


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def dated(kind: str, moment: datetime, **fields: Any) -> dict[str, Any]:
    document = dict(example(kind), event_id=str(uuid.uuid4()), **fields)
    document.update(occurred_at=stamp(moment), recorded_at=stamp(moment))
    if kind == "ae.reported":
        document["onset_date"] = moment.date().isoformat()
    return document


def tables(api: Api) -> Any:
    answer = api.get("officer", "/v1/toxicity").json()
    return {key: value for key, value in answer.items() if key != "as_of"}


def test_a_future_dated_ae_is_rejected_kept_and_moves_nothing() -> None:
    runtime = build_memory_runtime(Settings(clock_skew_seconds=300))
    api = Api(runtime)
    try:
        assert api.post("CN-SH-01", example("patient.enrolled")).status_code == 201
        assert api.post("CN-SH-01", example("ae.reported")).status_code == 201
        clock, toxicity = runtime.monitor.clock, tables(api)
        now = datetime.now(UTC)

        future = dated("ae.reported", now + timedelta(days=183))  # the site typed 2027
        answer = api.post("CN-SH-01", future)
        assert answer.status_code == 422
        problems = answer.json()["results"][0]["problems"]
        assert {p["code"] for p in problems} == {"time.in_the_future"}
        assert {p["path"] for p in problems} == {"occurred_at", "recorded_at"}
        assert "the server received this at" in problems[0]["message"]
        assert "tolerance 5 min" in problems[0]["message"]
        # kept as a dead letter, and nothing moved: not the clock, not the tables
        [kept] = [
            r for r in api.get("CN-SH-01", "/v1/rejections").json()
            if json.loads(r["raw"])["event_id"] == future["event_id"]
        ]  # fmt: skip
        assert kept["problems"][0]["code"] == "time.in_the_future"
        assert runtime.monitor.clock == clock
        assert tables(api) == toxicity

        # a site clock a little ahead of the server's is tolerated; beyond the tolerance not
        ahead = dated("ae.reported", datetime.now(UTC) + timedelta(minutes=3))
        assert api.post("CN-SH-01", ahead).status_code == 201
        too_far = dated("ae.reported", datetime.now(UTC) + timedelta(minutes=10))
        assert api.post("CN-SH-01", too_far).status_code == 422
    finally:
        runtime.close()


def test_a_report_turns_overdue_with_no_new_data_and_a_replay_sees_the_same() -> None:
    """The server's clock runs the deadlines: a tick recorded in the log when one falls due."""
    now = [T0 + timedelta(days=10)]
    runtime = build_memory_runtime(clock=lambda: now[0])
    api = Api(runtime)
    try:
        trial = Trial()
        trial.enrol("P1", 0, "CN-SH-01")
        trial.treat("P1", "chemotherapy", 1, "CN-SH-01")
        sae = trial.ae("P1", 3, *NEUTROPENIA, 3, ct="probable", site="CN-SH-01",
                       seriousness=["hospitalisation"], expectedness="unexpected")  # fmt: skip
        body = "\n".join(encode_json(e) for e in trial.events).encode()
        assert api.post("CN-SH-01", body, "application/x-ndjson").status_code == 201
        (clock,) = expedited(api)
        assert clock["state"] == "open" and clock["ae_id"] == sae
        # Day 0 is when the server received it, not the site's recorded_at (day 3)
        assert clock["aware_at"].startswith((T0 + timedelta(days=10)).date().isoformat())
        assert not tick(runtime)  # nothing has fallen due yet
        now[0] += timedelta(days=16)  # no new data; calendar day 15 ends
        assert tick(runtime)
        (clock,) = expedited(api)
        assert clock["state"] == "overdue"
        page = api.client.get(
            "/board", headers={"Authorization": f"Bearer {api.tokens['officer']}"}
        )
        assert '<span class="big">1</span>reports overdue' in page.text
        # the site sees its own clock on its board, another site does not
        own = api.client.get(
            "/board", headers={"Authorization": f"Bearer {api.tokens['CN-SH-01']}"}
        )
        other = api.client.get(
            "/board", headers={"Authorization": f"Bearer {api.tokens['CN-BJ-02']}"}
        )
        assert f'href="/board/aes/{sae}" title="AE {sae}"' in own.text and "Overdue" in own.text
        # recorded on day 3, received on day 10: the site was late with its SAE
        assert '<td class="num" data-field="late_saes">1</td>' in own.text
        assert sae not in other.text and "No report clock is running." in other.text
        ticks = [e for e in runtime.store.read() if e.event_type == "clock.ticked"]
        assert len(ticks) == 1 and ticks[0].stored_at == now[0]
        # a replay of the log, tick included, derives exactly what the live system did
        live = [(d.event.derived_id, d.event.kind) for d in runtime.derived.derived_events()]
        replayed = InMemoryProjectionRepository()
        replay(runtime.store, replayed, observer=Monitor(runtime.plan))
        assert [(d.event.derived_id, d.event.kind) for d in replayed.derived_events()] == live
        assert "report.overdue" in {kind for _, kind in live}
        # only the server ticks
        forged = dict(json.loads(ticks[0].payload), event_id=str(uuid.uuid4()))
        assert api.post("admin", forged).status_code == 403
    finally:
        runtime.close()


def expedited(api: Api) -> list[dict[str, Any]]:
    rules = api.get("officer", "/v1/rules").json()["rules"]
    return next(r for r in rules if r["kind"] == "expedited_report")["clocks"]  # type: ignore[no-any-return]


def test_the_same_trial_posted_timely_in_bulk_or_shuffled_reaches_the_same_conclusions() -> None:
    """Arrival speed and order (per patient kept) change when things are seen, not what: the
    same crossings (rule, n, x, clinical date), sentinels, clock lengths and final state; and
    each log's replay derives exactly what its live run derived."""
    records = [r for r in simulate(scenario("chemotherapy-toxicity", patients=30, seed=4))]
    timely = [(r.sent_at, [r]) for r in records]  # each record when the site sent it
    later = records[-1].sent_at + timedelta(days=30)
    bulk = [(later, records)]  # everything at once, a month after the last one
    by_patient: dict[str, list[Any]] = {}
    for record in records:
        by_patient.setdefault(json.loads(record.body).get("patient_id", ""), []).append(record)
    shuffled_order: list[Any] = []
    queues = [list(q) for q in by_patient.values()]
    rng = random.Random(7)
    while queues:  # interleave patients at random, each patient's records in order
        queue = rng.choice(queues)
        shuffled_order.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    shuffled = [(later, shuffled_order[i : i + 50]) for i in range(0, len(shuffled_order), 50)]
    outcomes = [conclusions(schedule, later) for schedule in (timely, bulk, shuffled)]
    assert outcomes[0]["crossings"], "the scenario crosses a boundary"
    assert outcomes[0] == outcomes[1] == outcomes[2]


def crossing(counter: Any) -> tuple[str, int, int, str]:
    """(rule, n, x, clinical date) of a rule's first crossing."""
    n = counter.crossed_at
    return counter.rule.id, n, counter.counted_among_first(n), str(counter.crossing_time().date())


def conclusions(schedule: list[tuple[datetime, list[Any]]], end: datetime) -> dict[str, Any]:
    """Post on ``schedule`` (server time, records), then let the server's clock run to
    ``end`` with no new data (ticks): the same point in time for every schedule."""
    now = [schedule[0][0]]
    runtime = build_memory_runtime(clock=lambda: now[0])
    try:
        for moment, batch in schedule:
            now[0] = max(now[0], moment)
            records = [RawRecord(f"r{i}", r.body) for i, r in enumerate(batch)]
            report = ingest(runtime.store, records, InputFormat.NDJSON, runtime.ctcae, "t", None)
            runtime.projector.follow(report.appended)
        now[0] = end
        while tick(runtime):
            pass
        monitor = runtime.monitor
        live = [(d.event.derived_id, d.event.kind) for d in runtime.derived.derived_events()]
        replayed = InMemoryProjectionRepository()
        replay(runtime.store, replayed, observer=Monitor(runtime.plan))
        assert [(d.event.derived_id, d.event.kind) for d in replayed.derived_events()] == live
        return {
            "crossings": sorted(crossing(c) for c in monitor.counting if c.crossed_at is not None),
            "final": sorted((c.rule.id, c.n, c.x) for c in monitor.counting),
            "sentinels": {rule: sorted(raised) for rule, raised in monitor.raised.items()},
            "clocks": sorted(
                (str(k.ae_id), (k.due - k.opened_at).days, k.severe)
                for k in monitor.clocks.values()
            ),
            "state": (runtime.projector.state.patients, runtime.projector.state.aes),
        }
    finally:
        runtime.close()
