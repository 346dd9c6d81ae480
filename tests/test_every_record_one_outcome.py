"""Random garbage and random events posted together: every record gets exactly one outcome (a
stored or duplicate one has its position, a refused one says why), nothing is a 500, and the
server keeps answering /healthz."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import events_of

from safety_stream.api.app import create_app
from safety_stream.events import EVENT_MODELS, encode_json, wire_name
from safety_stream.runtime import Runtime, build_memory_runtime
from safety_stream.settings import Settings

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
KINDS = [wire_name(m) for m in EVENT_MODELS]


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(st.sampled_from(KINDS).flatmap(events_of))
    document: dict[str, Any] = json.loads(encode_json(event))
    return document


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with one field replaced by any JSON value (or a field added)."""
    document = draw(valid_events())
    field = draw(st.sampled_from([*document, "extra"]))
    document[field] = draw(json_values)
    return document


records = st.one_of(
    st.binary(max_size=60).map(lambda raw: raw.replace(b"\n", b" ")),  # not even JSON
    json_values.map(lambda value: json.dumps(value).encode()),
    valid_events().map(lambda doc: json.dumps(doc).encode()),
    mutated_events().map(lambda doc: json.dumps(doc).encode()),
)


class Server:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.client = TestClient(create_app(runtime), raise_server_exceptions=False)
        self.token = runtime.credentials.add("admin", "admin", None)

    def post(self, body: bytes, content_type: str) -> Any:
        return self.client.post(
            "/v1/events",
            content=body,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
        )


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    runtime = build_memory_runtime(Settings())
    yield Server(runtime)
    runtime.close()


def assert_one_outcome_each(response: Any, expected: int) -> None:
    assert response.status_code in (200, 201, 403, 409, 422), response.text
    results = response.json()["results"]
    assert len(results) == expected
    for result in results:
        if result["status"] in ("stored", "duplicate"):
            assert result["position"] is not None and not result["problems"]
        else:
            assert result["status"] in ("rejected", "forbidden", "conflict")
            assert result["position"] is None and result["problems"]
    body = response.json()
    assert body["stored"] + body["duplicates"] + body["rejected"] == expected


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(records, min_size=1, max_size=8))
def test_every_ndjson_line_has_exactly_one_outcome(server: Server, lines: list[bytes]) -> None:
    body = b"\n".join(lines)
    expected = sum(1 for line in lines if line and not line.isspace())
    if not expected:
        assert server.post(body, "application/x-ndjson").status_code == 400
    else:
        assert_one_outcome_each(server.post(body, "application/x-ndjson"), expected)
    assert server.client.get("/healthz").status_code == 200


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(st.one_of(json_values, valid_events(), mutated_events()), min_size=1, max_size=8)
)
def test_every_item_of_a_json_array_has_exactly_one_outcome(
    server: Server, items: list[Any]
) -> None:
    response = server.post(json.dumps(items).encode(), "application/json")
    assert_one_outcome_each(response, len(items))
    assert server.client.get("/healthz").status_code == 200
