"""The drill-down API through the production path: GET /v1/adverse-events with every filter,
paged; one AE with every version; a patient's profile; what a site may see.

Every expected answer is recomputed here from the events as submitted (a naive fold of the raw
documents, not the projection or the review dataset), with the log positions the ingest
reported for them.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_read_snapshot import submit
from trial_builder import (
    ALT_INCREASED,
    ASCITES,
    CHEMO_CROSSES,
    DIARRHEA,
    HEPATIC_FAILURE,
    NAUSEA,
    SPARKLE_L,
    Trial,
    crossing_trial,
)

from safety_stream.api.app import create_app
from safety_stream.events import ATTRIBUTION_RANK
from safety_stream.runtime import Runtime, build_memory_runtime

SH, BJ = "CN-SH-01", "CN-BJ-02"
RELATED = ATTRIBUTION_RANK[SPARKLE_L.related_means_at_least.value]


@dataclass
class Naive:
    """Each AE's current fields folded by hand from the submitted documents."""

    aes: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # first reported first

    def fold(self, document: dict[str, Any], position: int) -> None:
        kind = document["event_type"]
        if kind == "ae.reported":
            ae = {k: document[k] for k in ("patient_id", "site_id", "ctcae_term", "onset_date")}
            ae |= {
                "ae_id": document["event_id"],
                "grade": document["grade"],
                "grades": [document["grade"]],
                "attribution": dict(document["attribution"]),
                "serious": bool(document["seriousness"]),
                "immune_related": document["immune_related"],
                "status": "open",
                "fatal": False,
                "versions": 1,
                "last_position": position,
            }
            self.aes[document["event_id"]] = ae
            self.order.append(document["event_id"])
            return
        if not kind.startswith("ae."):
            return
        ae = self.aes[document["ae_id"]]
        ae["versions"] += 1
        ae["last_position"] = position
        if kind == "ae.updated":
            if document.get("grade") is not None:
                ae["grade"] = document["grade"]
                ae["grades"].append(document["grade"])  # no corrections in these trials
            if document.get("attribution") is not None:
                ae["attribution"] = dict(document["attribution"])
            if document.get("seriousness") is not None:
                ae["serious"] = bool(document["seriousness"])
            if document.get("immune_related") is not None:
                ae["immune_related"] = document["immune_related"]
        elif kind == "ae.resolved":
            ae["status"] = "resolved"
            ae["fatal"] = document["outcome"] == "fatal"
        elif kind == "ae.retracted":
            ae["status"] = "retracted"

    @staticmethod
    def worst(ae: dict[str, Any]) -> int:
        return 5 if ae["fatal"] else max(ae["grades"])


@dataclass
class Served:
    runtime: Runtime
    client: TestClient
    tokens: dict[str, str]
    naive: Naive
    ids: dict[str, str]  # name -> AE id
    between: datetime  # after the first batch was stored, before the second
    first_batch_head: int

    def get(self, who: str, path: str) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.tokens[who]}"})

    def listing(self, who: str, query: str = "") -> list[dict[str, Any]]:
        """Every page of the listing, walked with the cursor."""
        rows: list[dict[str, Any]] = []
        after = 0
        while True:
            answer = self.get(who, f"/v1/adverse-events?limit=3&after={after}&{query}")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            rows += body["adverse_events"]
            assert body["matching"] == len(rows) or body["next_after"] is not None
            if body["next_after"] is None:
                return rows
            after = body["next_after"]


def first_batch() -> tuple[Trial, dict[str, str]]:
    trial = crossing_trial(CHEMO_CROSSES, site=SH, prefix="SH-")
    ids: dict[str, str] = {}
    trial.enrol("BJ-1", 0, BJ)
    trial.treat("BJ-1", "immunotherapy", 1, BJ)
    trial.treat("BJ-1", "radiotherapy", 2, BJ)
    trial.lab("BJ-1", 8, "ALT", 3.5, BJ)
    trial.lab("BJ-1", 15, "bilirubin_total", 1.5, BJ)
    trial.child_pugh("BJ-1", 9, 7, BJ)
    ids["alt"] = trial.ae("BJ-1", 10, *ALT_INCREASED, 2, it="probable", site=BJ,
                          immune_related=True)  # fmt: skip
    ids["nausea"] = trial.ae("BJ-1", 12, *NAUSEA, 1, site=BJ)
    ids["liver"] = trial.ae(
        "BJ-1", 20, *HEPATIC_FAILURE, 4, rt="definite", site=BJ,
        seriousness=["life_threatening"], expectedness="unexpected",
    )  # fmt: skip
    trial.enrol("BJ-2", 0, BJ)
    trial.treat("BJ-2", "chemotherapy", 1, BJ)
    ids["diarrhea"] = trial.ae("BJ-2", 5, *DIARRHEA, 2, ct="possible", site=BJ)
    ids["ascites"] = trial.ae("BJ-2", 6, *ASCITES, 3, site=BJ)
    return trial, ids


def second_batch(ids: dict[str, str]) -> Trial:
    trial = Trial()
    trial.update("BJ-1", 14, ids["alt"], BJ, grade=4, grade_change="worsened")
    attribution = {
        "radiotherapy": "unlikely",
        "chemotherapy": "unrelated",
        "immunotherapy": "definite",
    }
    trial.update("BJ-1", 15, ids["alt"], BJ, attribution=attribution)
    trial.add("ae.resolved", "BJ-2", 12, BJ, ae_id=ids["diarrhea"], outcome="recovered",
              end_date="2026-01-13")  # fmt: skip
    trial.retract("BJ-1", 16, ids["nausea"], BJ)
    ids["late"] = trial.ae("BJ-1", 30, *DIARRHEA, 3, it="possible", site=BJ, immune_related=True)
    trial.add("patient.withdrawn", "BJ-2", 40, BJ, reason="adverse_event", details="ascites")
    return trial


def _fold(naive: Naive, trial: Trial, runtime: Runtime) -> int:
    report = submit(runtime, trial)
    positions = {o.event_id: o.position for o in report.outcomes}
    for event in trial.events:
        position = positions[str(event.event_id)]
        assert position is not None
        naive.fold(event.model_dump(mode="json"), position)
    return max(p for p in positions.values() if p is not None)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    runtime = build_memory_runtime()
    naive = Naive()
    trial, ids = first_batch()
    head = _fold(naive, trial, runtime)
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    _fold(naive, second_batch(ids), runtime)
    tokens = {
        "officer": runtime.credentials.add("officer", "safety_officer", None),
        SH: runtime.credentials.add(SH, "site", SH),
        BJ: runtime.credentials.add(BJ, "site", BJ),
    }
    yield Served(runtime, TestClient(create_app(runtime)), tokens, naive, ids, between, head)
    runtime.close()


def _related(ae: dict[str, Any], modality: str | None, rank: int) -> bool:
    given = [ae["attribution"][modality]] if modality else list(ae["attribution"].values())
    return any(ATTRIBUTION_RANK[a] >= rank for a in given)


Predicate = Callable[[dict[str, Any], "Served"], bool]
FILTERS: list[tuple[str, Predicate]] = [
    ("", lambda a, s: True),
    (f"site={BJ}", lambda a, s: a["site_id"] == BJ),
    ("patient=BJ-1", lambda a, s: a["patient_id"] == "BJ-1"),
    ("modality=chemotherapy", lambda a, s: _related(a, "chemotherapy", RELATED)),
    ("modality=immunotherapy&attribution=definite",
     lambda a, s: _related(a, "immunotherapy", ATTRIBUTION_RANK["definite"])),
    ("attribution=probable", lambda a, s: _related(a, None, ATTRIBUTION_RANK["probable"])),
    ("grade=3", lambda a, s: a["grade"] >= 3),
    ("worst_grade=4", lambda a, s: Naive.worst(a) >= 4),
    ("soc=gastrointestinal%20DISORDERS",
     lambda a, s: a["ctcae_term"] in (DIARRHEA[0], NAUSEA[0], ASCITES[0])),
    ("term=diarrhea", lambda a, s: a["ctcae_term"] == DIARRHEA[0]),
    ("serious=true", lambda a, s: a["serious"]),
    ("serious=false", lambda a, s: not a["serious"]),
    ("irae=true", lambda a, s: a["immune_related"]),
    ("irae=false", lambda a, s: not a["immune_related"]),
    ("status=open", lambda a, s: a["status"] == "open"),
    ("status=resolved", lambda a, s: a["status"] == "resolved"),
    ("status=retracted", lambda a, s: a["status"] == "retracted"),
    ("onset_from=2026-01-08&onset_to=2026-01-21",
     lambda a, s: "2026-01-08" <= a["onset_date"] <= "2026-01-21"),
    ("onset_from=2026-01-07", lambda a, s: a["onset_date"] >= "2026-01-07"),
    ("grade=2&site=CN-BJ-02&serious=false",
     lambda a, s: a["grade"] >= 2 and a["site_id"] == BJ and not a["serious"]),
]  # fmt: skip


def expected(served: Served, keep: Predicate, status_given: bool = False) -> list[str]:
    return [
        i
        for i in served.naive.order
        if keep(served.naive.aes[i], served)
        and (status_given or served.naive.aes[i]["status"] != "retracted")
    ]


@pytest.mark.parametrize(("query", "keep"), FILTERS, ids=[q or "none" for q, _ in FILTERS])
def test_each_filter_returns_exactly_the_aes_recomputed_from_the_events(
    served: Served, query: str, keep: Predicate
) -> None:
    rows = served.listing("officer", query)
    assert [r["ae_id"] for r in rows] == expected(served, keep, "status=" in query)
    for row in rows:  # every row's fields as folded by hand
        ae = served.naive.aes[row["ae_id"]]
        assert (row["grade"], row["worst_grade"], row["status"]) == (
            ae["grade"], Naive.worst(ae), ae["status"]
        )  # fmt: skip
        assert row["attribution"] == ae["attribution"]
        assert row["amendments"] == ae["versions"] - 1
        assert row["last_changed_position"] == ae["last_position"]


def test_changed_since_a_position_or_a_time(served: Served) -> None:
    head = served.first_batch_head
    later = expected(served, lambda a, s: a["last_position"] > head)
    assert later and len(later) < len(expected(served, lambda a, s: True))
    assert [r["ae_id"] for r in served.listing("officer", f"changed_since={head}")] == later
    moment = served.between.isoformat().replace("+00:00", "Z")
    assert [r["ae_id"] for r in served.listing("officer", f"changed_since={moment}")] == later
    # a site filters by time; it gets its own AEs changed since then
    own = [i for i in later if served.naive.aes[i]["site_id"] == BJ]
    assert [r["ae_id"] for r in served.listing(BJ, f"changed_since={moment}")] == own


def test_a_rule_lists_the_aes_it_counted(served: Served) -> None:
    """By hand: each of the CHEMO_CROSSES Shanghai patients has one chemotherapy-related grade
    3 neutropenia in the window, evaluable after the day-200 lab: those and nothing else (BJ-2's
    diarrhoea is grade 2, its ascites unrelated)."""
    rules = served.get("officer", "/v1/rules").json()["rules"]
    chemo = next(r for r in rules if r["rule_id"] == "chemotherapy-related-g3")
    rows = served.listing("officer", "rule=chemotherapy-related-g3")
    neutropenia = [i for i in served.naive.order if served.naive.aes[i]["patient_id"][:3] == "SH-"]
    assert [r["ae_id"] for r in rows] == neutropenia
    assert len({r["patient_id"] for r in rows}) == chemo["x"] == CHEMO_CROSSES


def test_pages_walk_every_match_once_in_order(served: Served) -> None:
    whole = served.get("officer", "/v1/adverse-events?limit=1000").json()
    assert whole["next_after"] is None and whole["position"] == served.runtime.store.head()
    assert whole["chain_head"]
    # numbered among every AE in the order first reported (the retracted one keeps its number)
    numbers = [r["number"] for r in whole["adverse_events"]]
    order = served.naive.order
    assert numbers == [
        n for n, i in enumerate(order, 1) if served.naive.aes[i]["status"] != "retracted"
    ]
    for limit in (1, 2, 5):
        walked, after = [], 0
        while True:
            body = served.get("officer", f"/v1/adverse-events?limit={limit}&after={after}").json()
            assert len(body["adverse_events"]) <= limit
            assert body["matching"] == len(whole["adverse_events"])
            walked += body["adverse_events"]
            if body["next_after"] is None:
                break
            after = body["next_after"]
        assert walked == whole["adverse_events"]


BAD = [
    ("modality=chemo", "modality"),
    ("attribution=maybe", "attribution"),
    ("grade=0", "grade"),
    ("grade=6", "grade"),
    ("worst_grade=three", "worst_grade"),
    ("status=closed", "status"),
    ("serious=perhaps", "serious"),
    ("irae=2", "irae"),
    ("onset_from=2026-13-01", "onset_from"),
    ("onset_from=2026-02-01&onset_to=2026-01-01", "onset_to"),
    ("onset_to=0", "onset_to"),  # not 1970-01-01
    ("onset_from=20260101", "onset_from"),
    ("changed_since=\u00b2", "changed_since"),  # a superscript two: a digit to isdigit()
    ("changed_since=0001-01-01T00:00:00%2B01:00", "changed_since"),  # before year 1 in UTC
    ("changed_since=9999-12-31T23:00:00-05:00", "changed_since"),  # after 9999 in UTC
    ("changed_since=yesterday", "changed_since"),
    ("changed_since=2026-01-01T00:00:00", "changed_since"),  # no offset: which zone?
    ("rule=no-such-rule", "rule"),
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("after=-1", "after"),
]


@pytest.mark.parametrize(("query", "parameter"), BAD, ids=[q for q, _ in BAD])
def test_a_bad_filter_is_a_422_naming_it(served: Served, query: str, parameter: str) -> None:
    answer = served.get("officer", f"/v1/adverse-events?{query}")
    assert answer.status_code == 422
    problem = answer.json()["detail"][0]
    assert problem["loc"] == ["query", parameter] and problem["msg"]


def test_a_rule_filter_names_the_rules_allowed(served: Served) -> None:
    message = served.get("officer", "/v1/adverse-events?rule=nope").json()["detail"][0]["msg"]
    assert "chemotherapy-related-g3" in message and "treatment-related-death" in message


def test_a_site_sees_its_own_aes_and_no_position(served: Served) -> None:
    for site in (SH, BJ):
        rows = served.listing(site)
        mine = [
            i for i in expected(served, lambda a, s: True) if served.naive.aes[i]["site_id"] == site
        ]
        assert [r["ae_id"] for r in rows] == mine
        assert {r["last_changed_position"] for r in rows} == {None}
        # numbered among its own AEs only (the retracted one keeps its number)
        own = [i for i in served.naive.order if served.naive.aes[i]["site_id"] == site]
        numbers = [n for n, i in enumerate(own, 1) if served.naive.aes[i]["status"] != "retracted"]
        assert [r["number"] for r in rows] == numbers
        body = served.get(site, "/v1/adverse-events").json()
        assert body["position"] is None and body["chain_head"] is None
    # another site's ids: the same 404 as an id that does not exist
    other = served.get(SH, f"/v1/adverse-events/{served.ids['alt']}")
    unknown = served.get(SH, "/v1/adverse-events/00000000-0000-4000-8000-000000000000")
    assert other.status_code == unknown.status_code == 404 and other.json() == unknown.json()
    other = served.get(SH, "/v1/patients/BJ-1/profile")
    unknown = served.get(SH, "/v1/patients/NOPE-1/profile")
    assert other.status_code == unknown.status_code == 404 and other.json() == unknown.json()
    assert served.get(SH, f"/v1/adverse-events?site={BJ}").json()["adverse_events"] == []
    assert served.get(BJ, "/v1/adverse-events?changed_since=3").status_code == 422
    assert served.get(BJ, "/v1/adverse-events?rule=chemotherapy-related-g3").status_code == 422
    # the existing per-patient read still answers as before
    assert served.get(BJ, "/v1/patients/BJ-1/adverse-events").status_code == 200
    assert served.get(SH, "/v1/patients/BJ-1/adverse-events").status_code == 404


def test_an_ae_comes_with_every_version(served: Served) -> None:
    body = served.get("officer", f"/v1/adverse-events/{served.ids['alt']}").json()
    versions = body["versions"]
    assert [v["event_type"] for v in versions] == ["ae.reported", "ae.updated", "ae.updated"]
    assert versions[1]["changes"] == {"grade": 4, "grade_change": "worsened"}
    assert versions[2]["changes"]["attribution"]["immunotherapy"] == "definite"
    assert {(v["reporter"], v["reason"]) for v in versions[1:]} == {("test", "review")}
    assert [v["position"] for v in versions] == sorted(v["position"] for v in versions)
    ae = served.naive.aes[served.ids["alt"]]
    assert body["adverse_event"]["worst_grade"] == 4 and body["adverse_event"]["amendments"] == 2
    assert versions[-1]["position"] == ae["last_position"]
    own = served.get(BJ, f"/v1/adverse-events/{served.ids['alt']}").json()
    assert {v["position"] for v in own["versions"]} == {None}
    assert served.get("officer", "/v1/adverse-events/not-a-uuid").status_code == 422


def test_a_patients_profile_has_everything_submitted(served: Served) -> None:
    body = served.get(BJ, "/v1/patients/BJ-1/profile").json()
    assert [a["modality"] for a in body["administrations"]] == ["immunotherapy", "radiotherapy"]
    assert [(lab["test"], lab["times_uln"]) for lab in body["labs"]] == [
        ("ALT", 3.5), ("bilirubin_total", 1.5)
    ]  # fmt: skip
    assert [(c["score"], c["child_pugh_class"]) for c in body["child_pugh"]] == [(7, "B")]
    expected_ids = [i for i in served.naive.order if served.naive.aes[i]["patient_id"] == "BJ-1"]
    assert [a["ae_id"] for a in body["adverse_events"]] == expected_ids  # retracted one too
    assert body["exit"] is None and body["status"] == "on_study"
    assert all("position" not in a for a in body["administrations"])
    two = served.get("officer", "/v1/patients/BJ-2/profile").json()
    assert two["exit"]["kind"] == "withdrawn" and two["exit"]["reason"] == "adverse_event"
    assert two["status"] == "withdrawn"


def test_the_boards_csv_is_the_filtered_listing_excel_safe(served: Served) -> None:
    """/board/aes.csv: one row per AE of the listing with the same filters, every page; a
    verbatim term that a spreadsheet would run as a formula is neutralised."""
    extra = Trial()
    extra.add(
        "ae.reported", "BJ-2", 8, BJ, ctcae_version="5.0", ctcae_term=NAUSEA[0],
        meddra_code=NAUSEA[1], grade=2, onset_date="2026-01-09", seriousness=[],
        expectedness="expected", immune_related=False, action_taken="dose_not_changed",
        verbatim_term='=HYPERLINK("http://x","nausea")',
        attribution={"radiotherapy": "unrelated", "chemotherapy": "probable",
                     "immunotherapy": "unrelated"},
    )  # fmt: skip
    _fold(served.naive, extra, served.runtime)
    answer = served.get("officer", "/board/aes.csv?site=CN-BJ-02&grade=2")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["x-log-position"] == str(served.runtime.store.head())
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    listed = served.listing("officer", "site=CN-BJ-02&grade=2")
    assert [r["ae_id"] for r in rows] == [a["ae_id"] for a in listed]
    for row, ae in zip(rows, listed, strict=True):
        assert (row["grade"], row["worst_grade"]) == (str(ae["grade"]), str(ae["worst_grade"]))
        assert row["attribution_chemotherapy"] == ae["attribution"]["chemotherapy"]
    assert rows[-1]["verbatim_term"] == '\'=HYPERLINK("http://x","nausea")'
    site = served.get(BJ, "/board/aes.csv")
    assert "x-log-position" not in site.headers  # a site never sees the log position
    assert {r["site_id"] for r in csv.DictReader(io.StringIO(site.text))} == {BJ}


@pytest.mark.parametrize("cursor", ["\u00b2", "9" * 5000, "-1"])
def test_the_boards_listing_reads_a_malformed_cursor_as_the_first_page(
    served: Served, cursor: str
) -> None:
    answer = served.get("officer", f"/board/aes?after={cursor}")
    assert answer.status_code == 200
    first = served.get("officer", "/board/aes").text
    rows = re.findall(r'<tr data-ae="([^"]+)"', first)
    assert rows and re.findall(r'<tr data-ae="([^"]+)"', answer.text) == rows


def test_the_boards_csv_is_capped_says_so_and_is_written_after_the_review_lock(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond EXPORT_LIMIT rows (here 3) the CSV holds the first ones and says it is cut (a
    header, the file's name, the listing page's link); the CSV text is written after the
    review's lock is released (the rows are computed under it, nothing more)."""
    from safety_stream.board import review_pages
    from safety_stream.review.csv_export import write_csv

    listed = served.listing("officer")
    assert len(listed) > 3
    monkeypatch.setattr(review_pages, "EXPORT_LIMIT", 3)
    lock_held: list[bool] = []

    def write_and_see_the_lock(*args: Any, **kwargs: Any) -> str:
        lock_held.append(served.runtime.review._lock.locked())
        return write_csv(*args, **kwargs)

    monkeypatch.setattr(review_pages, "write_csv", write_and_see_the_lock)
    answer = served.get("officer", "/board/aes.csv")
    assert answer.status_code == 200 and lock_held == [False]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["ae_id"] for r in rows] == [a["ae_id"] for a in listed[:3]]
    assert answer.headers["x-export-truncated"] == f"first 3 of {len(listed)} rows"
    disposition = answer.headers["content-disposition"]
    assert disposition == f'attachment; filename="adverse-events-first-3-of-{len(listed)}.csv"'
    page = served.get("officer", "/board/aes").text
    assert f"Download CSV (Excel-safe: the first 3 of {len(listed)} AEs" in page
    monkeypatch.setattr(review_pages, "EXPORT_LIMIT", len(listed))  # all fit: not cut
    whole = served.get("officer", "/board/aes.csv")
    assert "x-export-truncated" not in whole.headers
    assert 'filename="adverse-events.csv"' in whole.headers["content-disposition"]
    assert len(list(csv.DictReader(io.StringIO(whole.text)))) == len(listed)
    assert "Download CSV (Excel-safe, all pages)" in served.get("officer", "/board/aes").text


def test_the_boards_csv_export_limit_is_bounded() -> None:
    from safety_stream.board import review_pages

    assert review_pages.EXPORT_LIMIT <= 100_000  # rows built while the review lock is held
