"""The site client: retries reuse event ids, so lost responses never double-count."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import EXAMPLES
from fastapi.testclient import TestClient

from safety_stream.api.app import create_app
from safety_stream.client import PostError, SiteClient, post_path
from safety_stream.runtime import Runtime, build_memory_runtime


class FlakyTransport(httpx.BaseTransport):
    """Forwards to the app, but loses some responses after the server has committed them,
    and refuses some connections outright: what a bad network does to a site."""

    def __init__(self, app_client: TestClient, plan: list[str]) -> None:
        self._app = app_client
        self._plan = iter(plan)
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        step = next(self._plan, "ok")
        if step == "refuse":
            raise httpx.ConnectError("connection refused", request=request)
        response = self._app.request(
            request.method, request.url.path, content=request.read(), headers=request.headers
        )
        if step == "lose":  # the server committed; the site never hears back
            raise httpx.ReadTimeout("response lost", request=request)
        if step == "503":
            return httpx.Response(503, request=request)
        return httpx.Response(response.status_code, content=response.content, request=request)


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    runtime = build_memory_runtime()
    yield runtime
    runtime.close()


def client_for(runtime: Runtime, plan: list[str]) -> tuple[SiteClient, FlakyTransport]:
    token = runtime.credentials.add("admin", "admin", None)
    transport = FlakyTransport(TestClient(create_app(runtime)), plan)
    client = SiteClient("http://test", token, sleep=lambda _: None, transport=transport)
    return client, transport


def test_lost_responses_and_refusals_are_retried_without_double_counting(
    runtime: Runtime,
) -> None:
    client, transport = client_for(runtime, ["lose", "refuse", "503", "lose", "ok"] * 3)
    summary = post_path(client, str(EXAMPLES / "sparkle-l-sample.ndjson"), batch_size=20)
    assert runtime.store.head() == 50
    assert len({s.event_id for s in runtime.store.read()}) == 50
    # every batch was acknowledged in the end; the retries after lost responses saw duplicates
    assert summary.stored + summary.duplicates == 50
    assert summary.duplicates > 0
    assert transport.requests == summary.attempts


def test_giving_up_is_an_error_not_silence(runtime: Runtime) -> None:
    client, _ = client_for(runtime, ["refuse"] * 20)
    with pytest.raises(PostError, match="gave up after 9 attempts"):
        client.post_events(
            [
                json.loads(line)
                for line in (EXAMPLES / "sparkle-l-sample.ndjson").read_text().splitlines()
            ]
        )
    assert runtime.store.head() == 0


def test_csv_is_posted_as_csv_so_errors_name_columns(runtime: Runtime, tmp_path: Path) -> None:
    client, _ = client_for(runtime, [])
    post_path(client, str(EXAMPLES / "sparkle-l-sample.ndjson"))
    text = (
        (EXAMPLES / "edc-export-sample.csv")
        .read_text()
        .replace("Fatigue,10016256,2", "Fatigue,10016256,9")
    )
    path = tmp_path / "export.csv"
    path.write_text(text)
    summary = post_path(client, str(path), batch_size=2)
    assert (summary.stored, summary.rejected) == (5, 1)
    assert summary.problems[0]["path"] == "AETOXGR (grade)"
