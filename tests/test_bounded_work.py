"""Cheap requests cannot make expensive work: records per request are capped, long batches
commit in parts (another site's POST is not held up), dead letters are listed truncated, and
as-of reads are cached, rate-limited per credential and never hold the projector's lock."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from serve_process import ServeProcess, start_safety_stream
from trial_builder import Trial

from safety_stream.api import as_of as as_of_module
from safety_stream.api.app import create_app
from safety_stream.auth import Role
from safety_stream.events import encode_json
from safety_stream.projections.projector import fold as real_fold
from safety_stream.runtime import Runtime, build_memory_runtime
from safety_stream.settings import Settings


def site_token(db: str, site: str) -> str:
    executable = str(Path(sys.executable).with_name("safety-stream"))
    added = subprocess.run(
        [executable, "sites", "add", site, "--db", db], check=True, capture_output=True, text=True
    )
    return added.stdout.splitlines()[-1]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServeProcess, dict[str, str]]]:
    db = f"sqlite:///{tmp_path / 'bounded.db'}"
    tokens = {site: site_token(db, site) for site in ("S1", "S2")}
    server = start_safety_stream(
        db, tmp_path, env=os.environ | {"SAFETY_STREAM_MAX_RECORDS": str(CAP)}
    )
    try:
        yield server, tokens
    finally:
        server.stop()


CAP = 30_000  # records per request: at one transaction, a batch this long held the lock ~5 s


def enrolments(site: str, count: int) -> bytes:
    trial = Trial()
    for number in range(count):
        trial.enrol(f"{site}-{number:05d}", day=0, site=site)
    return "\n".join(encode_json(e) for e in trial.events).encode()


def post(url: str, token: str, body: bytes, timeout: float = 300) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/events",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
        timeout=timeout,
    )


def test_more_records_than_the_cap_is_a_413_before_anything_is_stored(
    served: tuple[ServeProcess, dict[str, str]],
) -> None:
    server, tokens = served
    started = time.perf_counter()
    refused = post(server.url, tokens["S1"], b"{}\n" * 100_000)
    assert refused.status_code == 413 and str(CAP) in refused.json()["detail"]
    assert time.perf_counter() - started < 5
    listed = httpx.get(
        f"{server.url}/v1/rejections",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    ).json()
    assert listed == []  # refused as a whole: nothing of it taken


def test_a_long_batch_does_not_hold_up_another_sites_post(
    served: tuple[ServeProcess, dict[str, str]],
) -> None:
    server, tokens = served
    big = enrolments("S1", CAP)
    answers: dict[str, Any] = {}

    def send_big() -> None:
        answers["big"] = post(server.url, tokens["S1"], big)

    sender = threading.Thread(target=send_big)
    sender.start()
    time.sleep(1.0)  # the batch is being stored
    waits = []
    for number in range(3):
        started = time.perf_counter()
        one = enrolments("S2", 1).replace(b"S2-00000", f"S2-x{number}".encode())
        small = post(server.url, tokens["S2"], one)
        waits.append(time.perf_counter() - started)
        assert small.status_code == 201
    sender.join()
    assert answers["big"].status_code == 201 and answers["big"].json()["stored"] == CAP
    assert "big" in answers and max(waits) < 2.0, waits


class Api:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.client = TestClient(create_app(runtime))
        who: list[tuple[str, Role, str | None]] = [
            ("CN-SH-01", "site", "CN-SH-01"),
            ("officer", "safety_officer", None),
            ("dsmb", "dsmb", None),
        ]
        self.tokens = {name: runtime.credentials.add(name, role, site) for name, role, site in who}

    def get(self, who: str, path: str) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.tokens[who]}"})


T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def api() -> Iterator[Api]:
    """Ten patients, each stored a minute after the last (the server's clock)."""
    now = [T0]
    runtime = build_memory_runtime(Settings(), clock=lambda: now[0])
    trial = Trial()
    for number in range(10):
        trial.enrol(f"P{number}", day=0, site="CN-SH-01")
    for number, event in enumerate(trial.events):
        now[0] = T0 + timedelta(minutes=number)
        with runtime.store.write() as session:
            session.append(event)
    yield Api(runtime)
    runtime.close()


def test_dead_letters_are_listed_truncated_and_kept_whole_up_to_64_kib(api: Api) -> None:
    huge = b'{"event_type": "ae.reported", "reporter": "' + b"x" * (200 * 1024) + b'"}'
    response = api.client.post(
        "/v1/events",
        content=huge,
        headers={
            "Authorization": f"Bearer {api.tokens['CN-SH-01']}",
            "Content-Type": "application/x-ndjson",
        },
    )
    assert response.status_code == 422
    [listed] = api.get("CN-SH-01", "/v1/rejections").json()
    assert (len(listed["raw"]), listed["raw_size"], listed["raw_truncated"]) == (
        4096,
        len(huge),
        True,
    )
    one = api.get("CN-SH-01", f"/v1/rejections/{listed['id']}").json()
    assert len(one["raw"]) == 64 * 1024 and one["raw_sha256"] == listed["raw_sha256"]
    assert api.get("CN-SH-01", "/v1/rejections/999").status_code == 404


def minute(number: int) -> str:
    return (T0 + timedelta(minutes=number, seconds=30)).isoformat().replace("+00:00", "Z")


def test_as_of_reads_are_cached_and_fold_outside_the_projector_lock(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    folds: list[bool] = []
    lock = api.runtime.projector.lock

    def watched_fold(*args: Any, **kwargs: Any) -> Any:
        taken: list[bool] = []

        def take() -> None:
            taken.append(lock.acquire(timeout=2))
            if taken[0]:
                lock.release()

        other = threading.Thread(target=take)
        other.start()
        other.join()
        folds.append(taken[0])  # another thread took the lock: this fold does not hold it
        return real_fold(*args, **kwargs)

    monkeypatch.setattr(as_of_module, "fold", watched_fold)
    for _ in range(3):  # the same time thrice, then another time with nothing stored between
        assert api.get("officer", f"/v1/exposure?as_of={minute(4)}").json()["enrolled"] == 5
    later = (T0 + timedelta(minutes=4, seconds=50)).isoformat().replace("+00:00", "Z")
    assert api.get("officer", f"/v1/exposure?as_of={later}").json()["enrolled"] == 5
    assert folds == [True]  # one fold, outside the projector's lock


def test_as_of_folds_are_rate_limited_per_credential(api: Api) -> None:
    allowed = as_of_module.FOLDS_PER_MINUTE
    answers = [api.get("officer", f"/v1/exposure?as_of={minute(n)}") for n in range(allowed + 1)]
    assert [a.status_code for a in answers] == [200] * allowed + [429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    newest = minute(allowed - 1)
    assert api.get("officer", f"/v1/exposure?as_of={newest}").status_code == 200  # cached
    assert api.get("dsmb", f"/v1/exposure?as_of={minute(9)}").status_code == 200  # another
