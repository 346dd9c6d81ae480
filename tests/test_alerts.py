"""The alert outbox: routing, delivery once, retries with backoff, leases, acks, escalation."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from realservers import WebhookReceiver
from sqlalchemy import delete
from trial_builder import BOTH_CROSS, CHEMO_CROSSES, crossing_trial

from safety_stream.alerts.channels import SIGNATURE_HEADER, Delivery, DeliveryError, sign
from safety_stream.alerts.dispatcher import Dispatcher
from safety_stream.alerts.outbox import CURSOR
from safety_stream.api.app import create_app
from safety_stream.cli import main
from safety_stream.errors import UsageError
from safety_stream.events import EventBase
from safety_stream.monitoring.monitor import Monitor
from safety_stream.projections.projector import replay
from safety_stream.runtime import Runtime, build_runtime
from safety_stream.settings import Settings
from safety_stream.store.projection_sql import SqlProjectionRepository
from safety_stream.store.sql import SqlEventStore
from safety_stream.store.tables import ProjectionPositionRow

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class Recorder:
    """A channel that records what it was asked to send, failing the first ``fail`` times."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.sent: list[Delivery] = []
        self.calls = 0

    def send(self, delivery: Delivery) -> None:
        self.calls += 1
        if self.calls <= self.fail:
            raise DeliveryError(f"receiver down (call {self.calls})")
        self.sent.append(delivery)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def write_config(path: Path, **extra: Any) -> Path:
    config = {
        "board_url": "https://board.example/board",
        "groups": [
            {
                "name": "dsmb",
                "severities": ["critical"],
                "channels": [{"type": "webhook", "url": "http://127.0.0.1:9/dsmb"}],
            },
            {
                "name": "officers",
                "channels": [{"type": "file", "path": str(path.parent / "alerts.ndjson")}],
            },
            {
                "name": "chair",
                "kinds": ["boundary.crossed"],
                "severities": ["critical"],
                "channels": [{"type": "webhook", "name": "pager", "url": "http://127.0.0.1:9/"}],
            },
        ],
        "retry": {"first_seconds": 1, "max_seconds": 8, "lease_seconds": 60},
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def runtime(db: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = build_runtime(Settings(db=db, alerts=write_config(tmp_path / "alerts.yaml")))
    yield runtime
    runtime.close()


def post(runtime: Runtime, events: list[EventBase]) -> None:
    for event in events:
        with runtime.store.write() as session:
            session.append(event)
    runtime.projector.catch_up()


def dispatcher(runtime: Runtime, clock: Clock, **senders: Recorder) -> Dispatcher:
    channels = {"dsmb/webhook": Recorder(), "officers/file": Recorder(), "chair/pager": Recorder()}
    channels.update({key.replace("__", "/"): sender for key, sender in senders.items()})
    return Dispatcher(runtime.outbox, runtime.derived, "SPARKLE-L", clock, senders=channels)  # type: ignore[arg-type]


def sent(d: Dispatcher, channel: str) -> list[str]:
    recorder = d.senders[channel]
    assert isinstance(recorder, Recorder)
    return [x.alert.kind for x in recorder.sent]


def test_alerts_are_routed_by_severity_and_delivered_once(runtime: Runtime) -> None:
    post(runtime, crossing_trial(BOTH_CROSS).events)
    d = dispatcher(runtime, Clock())
    result = d.run_once()
    assert (result.planned, result.delivered, result.failed) == (4, 4 + 2 + 2, 0)
    assert sorted(sent(d, "officers/file")) == sorted(
        ["boundary.approached"] * 2 + ["boundary.crossed"] * 2
    )
    assert sent(d, "dsmb/webhook") == ["boundary.crossed"] * 2
    assert sent(d, "chair/pager") == ["boundary.crossed"] * 2
    assert d.run_once().delivered == 0  # nothing is sent twice
    # Rebuilding the projection by replay re-derives the same events: no new alert.
    assert isinstance(runtime.store, SqlEventStore)
    replay(
        runtime.store, SqlProjectionRepository(runtime.store.engine), None, Monitor(runtime.plan)
    )
    assert d.run_once().planned == 0 and len(d.senders["dsmb/webhook"].sent) == 2  # type: ignore[attr-defined]
    views = runtime.outbox.alerts()
    assert all(x.state == "delivered" for v in views for x in v.deliveries)


def test_a_failing_channel_is_retried_with_backoff_and_delivered_exactly_once(
    runtime: Runtime,
) -> None:
    post(runtime, crossing_trial(CHEMO_CROSSES).events)  # chemotherapy crossed: one critical alert
    clock = Clock()
    flaky = Recorder(fail=3)
    d = dispatcher(runtime, clock, dsmb__webhook=flaky)
    waits = []
    for _ in range(3):
        assert d.run_once().failed == 1
        due = runtime.outbox.next_due()
        assert due is not None
        waits.append((due - clock.now).total_seconds())
        assert d.run_once().delivered == 0  # not yet due: no attempt
        clock.now = due
    assert waits == [1.0, 2.0, 4.0]  # exponential backoff from retry.first_seconds
    assert d.run_once().delivered == 1
    assert [x.alert.kind for x in flaky.sent] == ["boundary.crossed"]
    clock.advance(hours=1)
    d.run_once()
    assert flaky.calls == 4 and len(flaky.sent) == 1
    (crossed,) = [v for v in runtime.outbox.alerts() if v.alert.kind == "boundary.crossed"]
    webhook = next(x for x in crossed.deliveries if x.channel == "dsmb/webhook")
    assert (webhook.state, webhook.attempts, webhook.last_error) == ("delivered", 4, None)


def test_a_sender_that_died_mid_delivery_is_retried_after_its_lease(runtime: Runtime) -> None:
    post(runtime, crossing_trial(CHEMO_CROSSES).events)
    clock = Clock()
    runtime.outbox.plan(runtime.derived, clock.now)
    claimed = runtime.outbox.claim(clock.now)  # ... and then the process died
    # 2 alerts to the officers (chemotherapy approached, then crossed), the crossing to the
    # dsmb and the chair
    assert len(claimed) == 4
    assert runtime.outbox.claim(clock.now) == []  # leased: no one else takes them
    d = dispatcher(runtime, clock)
    clock.advance(seconds=59)
    assert d.run_once().delivered == 0
    clock.advance(seconds=2)
    assert d.run_once().delivered == 4
    assert all(x.attempts == 2 for v in runtime.outbox.alerts() for x in v.deliveries)


def test_planning_again_from_the_start_plans_nothing_twice(runtime: Runtime) -> None:
    post(runtime, crossing_trial(BOTH_CROSS).events)
    clock = Clock()
    assert runtime.outbox.plan(runtime.derived, clock.now) == 4
    assert isinstance(runtime.store, SqlEventStore)
    with runtime.store.engine.begin() as connection:  # as if the cursor had never moved
        connection.execute(
            delete(ProjectionPositionRow).where(ProjectionPositionRow.name == CURSOR)
        )
    assert runtime.outbox.plan(runtime.derived, clock.now) == 4  # seen again ...
    views = runtime.outbox.alerts()
    assert len(views) == 4  # ... but stored once
    assert sum(len(v.deliveries) for v in views) == 8


def test_acknowledge_by_api_and_cli_and_escalate_the_rest(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path / "alerts.yaml", escalation={"after_minutes": 30, "groups": ["chair"]}
    )
    runtime = build_runtime(Settings(db=db, alerts=config))
    try:
        post(runtime, crossing_trial(BOTH_CROSS).events)
        clock = Clock()
        d = dispatcher(runtime, clock)
        d.run_once()
        client = TestClient(create_app(runtime))
        officer = runtime.credentials.add("officer", "safety_officer", None)
        site = runtime.credentials.add("S1", "site", "S1")
        crossed = [v for v in runtime.outbox.alerts() if v.alert.kind == "boundary.crossed"]
        first, second = (str(v.alert.derived_id) for v in crossed)

        def ack(token: str, alert_id: str, note: str) -> Any:
            return client.post(
                f"/v1/alerts/{alert_id}/acknowledge",
                json={"note": note},
                headers={"Authorization": f"Bearer {token}"},
            )

        assert ack(site, first, "x").status_code == 403
        assert ack(officer, "00000000-0000-0000-0000-000000000000", "x").status_code == 404
        answer = ack(officer, first, "DSMB chair informed")
        assert answer.status_code == 200 and answer.json()["acknowledged_by"] == "officer"
        again = ack(officer, first, "second click")
        assert again.json()["acknowledged_at"] == answer.json()["acknowledged_at"]
        listed = client.get(
            "/v1/alerts?unacknowledged=true", headers={"Authorization": f"Bearer {officer}"}
        ).json()
        assert {a["alert"]["derived_id"] for a in listed} == {
            str(v.alert.derived_id)
            for v in runtime.outbox.alerts()
            if str(v.alert.derived_id) != first
        }
        clock.advance(minutes=29)
        assert d.run_once().escalated == 0
        clock.advance(minutes=2)
        result = d.run_once()
        assert result.escalated == 1  # the other crossing; warnings never escalate
        pager = d.senders["chair/pager"]
        assert isinstance(pager, Recorder)
        assert [(x.alert.derived_id, x.reason) for x in pager.sent][-1:] == [
            (crossed[1].alert.derived_id, "escalation")
        ]
        clock.advance(hours=2)
        assert d.run_once().escalated == 0  # escalated once
    finally:
        runtime.close()
    assert main(["alerts", "ack", second[:8], "--by", "dsmb-chair", "--db", db]) == 0
    assert f"alert {second} acknowledged by dsmb-chair" in capsys.readouterr().out
    assert main(["alerts", "ack", second, "--by", "someone-else", "--db", db]) == 1
    repeated = capsys.readouterr().err
    assert repeated.startswith(f"safety-stream alerts ack: alert {second[:8]} was already ")
    assert "acknowledged by dsmb-chair at " in repeated and "not recorded" in repeated
    assert main(["alerts", "--unacknowledged", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "2 alert(s)" in out  # the two approached; both crossings are acknowledged
    assert first not in out and second not in out
    assert main(["alerts", "--json", "--db", db]) == 0
    listed = json.loads(capsys.readouterr().out)
    by_id = {a["alert"]["derived_id"]: a for a in listed}
    assert by_id[second]["acknowledged_by"] == "dsmb-chair"
    assert by_id[second]["escalated_at"] is not None
    assert main(["alerts", "ack", "not-a-uuid", "--by", "x", "--db", db]) == 2


def test_the_webhook_is_signed_so_the_receiver_can_verify_it(
    runtime: Runtime, tmp_path: Path
) -> None:
    post(runtime, crossing_trial(CHEMO_CROSSES).events)
    with WebhookReceiver() as receiver:
        config = write_config(tmp_path / "signed.yaml")
        document = yaml.safe_load(config.read_text())
        document["groups"][0]["channels"][0].update(url=receiver.url + "/dsmb", secret="s3cret")
        config.write_text(yaml.safe_dump(document))
        signed = build_runtime(Settings(db=str(runtime.settings.db), alerts=config))
        try:
            result = signed.dispatcher.run_once()
            assert result.delivered == 3  # officers' file x2 and the dsmb webhook
            assert len(result.errors) == 1 and "127.0.0.1:9/" in result.errors[0]  # the chair
        finally:
            signed.close()
        (request,) = receiver.wait_for_count(1)
    body = json.dumps(request.body, sort_keys=True, separators=(",", ":")).encode()
    timestamp = request.headers["X-Safety-Stream-Timestamp"]
    assert request.headers[SIGNATURE_HEADER] == sign(b"s3cret", timestamp, body)
    assert request.headers[SIGNATURE_HEADER] != sign(b"wrong", timestamp, body)
    assert request.body["alert"]["kind"] == "boundary.crossed"
    assert request.body["alert"]["details"]["x"] == CHEMO_CROSSES
    assert request.body["link"].startswith("https://board.example/board/alerts/")
    assert "P1" not in request.body["title"]


def test_the_deploy_alert_routing_loads_with_its_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conftest import REPO

    from safety_stream.alerts.config import load_alert_config

    path = REPO / "deploy" / "alerts" / "sparkle-l-alerts.yaml"
    with pytest.raises(UsageError, match="SAFETY_STREAM_SMTP_PASSWORD is not set"):
        load_alert_config(path)
    monkeypatch.setenv("SAFETY_STREAM_SMTP_PASSWORD", "pw")
    monkeypatch.setenv("SAFETY_STREAM_DSMB_WEBHOOK_SECRET", "hook")
    config = load_alert_config(path)
    assert set(config.channels()) == {
        "dsmb/email", "dsmb/webhook", "safety-officers/email", "safety-officers/alertmanager",
        "dsmb-chair/pager",
    }  # fmt: skip
    wanting = {g.name for g in config.groups if g.wants("event.quarantined", "critical")}
    assert wanting == {"safety-officers"}  # the monitor's own integrity: not the DSMB's to act on
    assert {g.name for g in config.groups if g.wants("boundary.crossed", "critical")} == {
        "dsmb", "safety-officers", "dsmb-chair",
    }  # fmt: skip
    assert config.smtp is not None and config.smtp.password is not None
    assert config.smtp.password.get_secret_value() == "pw"
    assert "pw" not in repr(config)  # secrets never printed


def test_acknowledging_with_a_body_that_is_not_json_is_a_documented_400(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime))
    officer = runtime.credentials.add("officer", "safety_officer", None)
    answer = client.post(
        "/v1/alerts/03c602f1-41e3-26a8-a8cd-1f4cdebcce9e/acknowledge",
        content=b"\xff>z",
        headers={"Authorization": f"Bearer {officer}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    documented = client.get("/openapi.json").json()["paths"]
    assert "400" in documented["/v1/alerts/{alert_id}/acknowledge"]["post"]["responses"]


def test_an_idle_dispatch_pass_takes_no_write_lock(sqlite_url: str, tmp_path: Path) -> None:
    """Ingest holds SQLite's write lock while it commits; an idle pass must not wait for it."""
    runtime = build_runtime(Settings(db=sqlite_url, alerts=write_config(tmp_path / "a.yaml")))
    try:
        post(runtime, crossing_trial(CHEMO_CROSSES).events)
        d = dispatcher(runtime, Clock())
        assert d.run_once().delivered == 4
        results: list[Any] = []
        with runtime.store.write():  # a long ingest transaction holds the write lock
            idle = threading.Thread(target=lambda: results.append(d.run_once()))
            idle.start()
            idle.join(timeout=5)
            assert not idle.is_alive(), "an idle pass waited for the write lock"
        assert results[0].planned == results[0].delivered == 0
    finally:
        runtime.close()
