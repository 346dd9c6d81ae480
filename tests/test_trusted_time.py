"""Time the sites do not control: no event may be dated after the server received it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import example
from test_api import Api

from safety_stream.runtime import build_memory_runtime
from safety_stream.settings import Settings


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
