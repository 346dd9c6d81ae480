"""DSMB e-mail through a real SMTP server (aiosmtpd, its own process): STARTTLS, auth, bodies,
and a server killed in the middle of a delivery."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from realservers import free_port, wait_for
from trial_builder import BOTH_CROSS, CHEMO_CROSSES, crossing_trial

from safety_stream.alerts.dispatcher import Dispatcher
from safety_stream.events import EventBase
from safety_stream.runtime import Runtime, build_runtime
from safety_stream.settings import Settings

SINK = Path(__file__).with_name("smtp_sink.py")


@contextmanager
def smtp_server(
    spool: Path, port: int, *extra: str, hold: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    spool.mkdir(exist_ok=True)
    (spool / "ready").unlink(missing_ok=True)
    command = [sys.executable, str(SINK), "--port", str(port), "--spool", str(spool), *extra]
    process = subprocess.Popen([*command, *(["--hold"] if hold else [])])
    try:
        wait_for(lambda: (spool / "ready").exists(), timeout=20, interval=0.05)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def messages(spool: Path) -> list[EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(spool.glob("*.eml"))
    ]


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def runtime_with_email(db: str, tmp_path: Path, port: int, **smtp: object) -> Runtime:
    config = {
        "board_url": "https://board.example/board",
        "smtp": {"host": "127.0.0.1", "port": port, "starttls": False, **smtp},
        "groups": [
            {
                "name": "dsmb",
                "severities": ["critical"],
                "channels": [{"type": "email", "to": ["dsmb@example.org", "chair@example.org"]}],
            }
        ],
        "retry": {"first_seconds": 1, "max_seconds": 4, "lease_seconds": 30},
    }
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(config))
    return build_runtime(Settings(db=db, alerts=path))


def post(runtime: Runtime, events: list[EventBase]) -> None:
    for event in events:
        with runtime.store.write() as session:
            session.append(event)
    runtime.projector.catch_up()


def test_dsmb_email_over_starttls_with_auth_has_text_html_and_no_patient_in_the_subject(
    sqlite_url: str, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    port, spool = free_port(), tmp_path / "spool"
    tls = ("--tls", str(cert), str(key), "--user", "alerts:pa55")
    runtime = runtime_with_email(
        sqlite_url, tmp_path, port,
        starttls=True, username="alerts", password="pa55", ca_file=str(cert),
    )  # fmt: skip
    try:
        post(runtime, crossing_trial(CHEMO_CROSSES).events)
        with smtp_server(spool, port, *tls):
            assert runtime.dispatcher.run_once().delivered == 1
        (message,) = messages(spool)
    finally:
        runtime.close()
    subject = str(message["Subject"])
    assert subject.startswith("[SPARKLE-L] CRITICAL: STOPPING BOUNDARY CROSSED")
    assert "chemotherapy-related-g3" in subject
    patients = range(1, CHEMO_CROSSES + 1)
    assert not any(f"P{i}" in subject for i in patients)  # patient ids never in a subject
    assert message["To"] == "dsmb@example.org, chair@example.org"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    plain = text.get_content()
    n = CHEMO_CROSSES  # every patient counted: the boundary at n is n
    assert f"counted patients: {n}" in plain and f"stopping boundary at this n: {n}" in plain
    assert "https://board.example/board/alerts/" in plain
    assert "<table>" in html.get_content()


def test_wrong_smtp_password_is_a_failed_delivery_that_is_kept(
    sqlite_url: str, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    port, spool = free_port(), tmp_path / "spool"
    runtime = runtime_with_email(
        sqlite_url, tmp_path, port,
        starttls=True, username="alerts", password="wrong", ca_file=str(cert), timeout_seconds=3,
    )  # fmt: skip
    try:
        post(runtime, crossing_trial(CHEMO_CROSSES).events)
        with smtp_server(spool, port, "--tls", str(cert), str(key), "--user", "alerts:pa55"):
            result = runtime.dispatcher.run_once()
        assert result.failed == 1 and result.delivered == 0  # authentication failed
        (view,) = [v for v in runtime.outbox.alerts() if v.alert.severity == "critical"]
        assert view.deliveries[0].state == "pending" and view.deliveries[0].attempts == 1
    finally:
        runtime.close()
    assert messages(spool) == []


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_smtp_server_killed_during_delivery_gets_the_alert_once_it_is_back(
    sqlite_url: str, tmp_path: Path
) -> None:
    port, spool = free_port(), tmp_path / "spool"
    runtime = runtime_with_email(sqlite_url, tmp_path, port, timeout_seconds=20)
    clock = Clock()
    dispatcher = Dispatcher(runtime.outbox, runtime.derived, "SPARKLE-L", clock)
    try:
        post(runtime, crossing_trial(BOTH_CROSS).events)  # two crossings: two critical alerts
        results = []
        with smtp_server(spool, port, hold=True) as server:
            attempt = threading.Thread(target=lambda: results.append(dispatcher.run_once()))
            attempt.start()
            wait_for(lambda: (spool / "holding").exists(), timeout=20, interval=0.05)
            os.kill(server.pid, signal.SIGKILL)  # dies with the first message half sent
            attempt.join(timeout=30)
        assert not attempt.is_alive()
        (first,) = results
        assert first.delivered == 0 and first.failed == 2
        assert messages(spool) == []
        (spool / "holding").unlink()
        clock.now += timedelta(seconds=1)
        assert dispatcher.run_once().failed == 2  # still down: retried, kept
        clock.now += timedelta(seconds=30)
        with smtp_server(spool, port):
            assert dispatcher.run_once().delivered == 2
            clock.now += timedelta(hours=1)
            assert dispatcher.run_once().delivered == 0
            time.sleep(0.2)
        received = messages(spool)
    finally:
        runtime.close()
    assert len(received) == 2  # each alert exactly once
    assert len({m["Message-ID"] for m in received}) == 2
    assert {m["X-Safety-Stream-Alert"] for m in received} == {
        str(v.alert.derived_id) for v in runtime.outbox.alerts() if v.alert.severity == "critical"
    }
    attempts = [d.attempts for v in runtime.outbox.alerts() for d in v.deliveries]
    assert attempts == [3, 3]


def test_an_email_channel_without_smtp_settings_is_refused() -> None:
    from pydantic import ValidationError

    from safety_stream.alerts.config import AlertConfig

    with pytest.raises(ValidationError, match="an email channel needs the 'smtp' section"):
        AlertConfig.model_validate(
            {"groups": [{"name": "dsmb", "channels": [{"type": "email", "to": ["a@b.org"]}]}]}
        )
