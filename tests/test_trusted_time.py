"""Time the sites do not control: no event may be dated after the server received it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import example
from test_api import Api
from trial_builder import NEUTROPENIA, T0, Trial

from safety_stream.events import encode_json
from safety_stream.monitoring.monitor import Monitor
from safety_stream.projections.projector import replay
from safety_stream.projections.repositories import InMemoryProjectionRepository
from safety_stream.runtime import build_memory_runtime
from safety_stream.settings import Settings
from safety_stream.ticking import tick


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
        now[0] += timedelta(days=15, hours=1)  # no new data; the deadline passes
        assert tick(runtime)
        (clock,) = expedited(api)
        assert clock["state"] == "overdue"
        page = api.client.get(
            "/board", headers={"Authorization": f"Bearer {api.tokens['officer']}"}
        )
        assert '<span class="big">1</span>reports overdue' in page.text
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
