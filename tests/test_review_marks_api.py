"""The review marks over the API: a reader marks AEs and alerts reviewed at the position they
read (required: never defaulted to the log's head) and reads their own marks back, page by
page; marks are per reader; a site gets 403; the board shows the same marks (one store
behind both)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from test_alert_triage import filled
from test_api import Api

from safety_stream.runtime import build_memory_runtime, build_runtime
from safety_stream.settings import Settings


@pytest.fixture(params=["memory", "sqlite"])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    if request.param == "memory":
        runtime = build_memory_runtime()
    else:
        runtime = build_runtime(Settings(db=request.getfixturevalue("sqlite_url")))
    client = filled(Api(runtime))
    client.tokens["dsmb"] = runtime.credentials.add("dsmb-chair", "dsmb", None)
    yield client
    runtime.close()


def post(api: Api, who: str, **body: Any) -> Any:
    return api.client.post(
        "/v1/review-marks", json=body, headers={"Authorization": f"Bearer {api.tokens[who]}"}
    )


def test_a_reader_marks_aes_and_alerts_and_reads_their_own_marks(api: Api) -> None:
    stored = [json.loads(s.payload) for s in api.runtime.store.read()]
    aes = [e["event_id"] for e in stored if e["event_type"] == "ae.reported"][:3]
    alert = api.get("officer", "/v1/alerts").json()[0]["alert"]["derived_id"]
    head = api.runtime.store.head()
    done = post(api, "officer", kind="ae", item_ids=aes, position=head)
    assert done.status_code == 200 and done.json() == {"marked": 3, "position": head}
    assert post(api, "officer", kind="alert", item_ids=[alert], position=2).json()["marked"] == 1
    assert post(api, "officer", kind="ae", item_ids=aes[:1], position=1).json()["marked"] == 0
    mine = api.get("officer", "/v1/review-marks").json()
    assert mine["reader"] == "officer"
    assert sorted((m["kind"], m["item_id"], m["position"]) for m in mine["marks"]) == sorted(
        [("ae", a, head) for a in aes] + [("alert", alert, 2)]
    )
    only = api.get("officer", "/v1/review-marks?kind=alert").json()["marks"]
    assert [(m["item_id"], m["position"]) for m in only] == [(alert, 2)]
    assert api.get("dsmb", "/v1/review-marks").json() == {
        "reader": "dsmb-chair", "marks": [], "next_after": None,
    }  # fmt: skip
    # page by page: by kind ("ae" < "alert"), then item id
    walked: list[tuple[str, str]] = []
    after = ""
    while True:
        page = api.get("officer", f"/v1/review-marks?limit=1&after={after}").json()
        walked += [(m["kind"], m["item_id"]) for m in page["marks"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert walked == sorted([("ae", a) for a in aes] + [("alert", alert)])
    # the board reads the same store: the alert shows as changed only if it changed after 2
    assert (
        api.runtime.marks.review_marks(
            api.runtime.credentials.authenticate(api.tokens["officer"])  # type: ignore[arg-type]
        )[("alert", alert)]
        == 2
    )


def test_bad_marks_and_sites_are_refused(api: Api) -> None:
    beyond = post(api, "officer", kind="ae", item_ids=["x"], position=10**9)
    assert beyond.status_code == 400 and "beyond the log's head" in beyond.json()["detail"]
    assert post(api, "officer", kind="patient", item_ids=["x"], position=1).status_code == 422
    assert post(api, "officer", kind="ae", item_ids=[], position=1).status_code == 422
    assert post(api, "officer", kind="ae", item_ids=["x" * 65], position=1).status_code == 422
    assert post(api, "officer", kind="ae", item_ids=["x"], position=False).status_code == 422
    assert post(api, "officer", kind="ae", item_ids=["x"], position="3").status_code == 422
    assert post(api, "CN-SH-01", kind="ae", item_ids=["x"], position=1).status_code == 403
    assert api.get("CN-SH-01", "/v1/review-marks").status_code == 403
    assert api.get("officer", "/v1/review-marks").json()["marks"] == []


def test_a_mark_without_the_position_read_at_is_refused(api: Api) -> None:
    """Defaulting to the log's head would mark as reviewed what arrived after the reader's
    page was read: an AE reported since then would never show as new."""
    aes = [
        json.loads(s.payload)["event_id"]
        for s in api.runtime.store.read()
        if json.loads(s.payload)["event_type"] == "ae.reported"
    ]
    missing = post(api, "officer", kind="ae", item_ids=aes[:1])
    assert missing.status_code == 422
    assert [e["loc"] for e in missing.json()["detail"]] == [["body", "position"]]
    assert post(api, "officer", kind="ae", item_ids=aes[:1], position=None).status_code == 422
    assert api.get("officer", "/v1/review-marks").json()["marks"] == []


def test_paging_walks_every_mark_once_whatever_the_ids(api: Api) -> None:
    """Ids in an order a linguistic collation would sort differently; ids holding the cursor's
    separator; pages of one and of three; one kind."""
    ids = ["b-2", "B-1", "a_3", "A-4", "_x", "-y", "Z", "é", "x:y", "10", "9", "a b"]
    head = api.runtime.store.head()
    assert post(api, "officer", kind="alert", item_ids=ids, position=head).json()["marked"] == 12
    assert post(api, "officer", kind="ae", item_ids=ids[:4], position=head).status_code == 200
    expected = sorted([("ae", i) for i in ids[:4]] + [("alert", i) for i in ids])
    for limit, kind in ((1, ""), (3, ""), (5, "alert")):
        walked: list[tuple[str, str]] = []
        after = ""
        while True:
            page = api.client.get(
                "/v1/review-marks",
                params={"limit": limit, "after": after, **({"kind": kind} if kind else {})},
                headers={"Authorization": f"Bearer {api.tokens['officer']}"},
            ).json()
            assert len(page["marks"]) <= limit
            walked += [(m["kind"], m["item_id"]) for m in page["marks"]]
            if page["next_after"] is None:
                break
            after = page["next_after"]
        assert walked == [k for k in expected if kind in ("", k[0])], (limit, kind)
