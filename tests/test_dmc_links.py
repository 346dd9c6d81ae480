"""Links from the DMC tables' patient counts to the AE listing of the AEs behind them: following
a linked cell (the board page's href, GET with a bearer token, or the listing function with the
parsed query) gives AEs whose distinct patients are exactly the cell's count; a site's links stay
within its site. The listing's new filters (``treatment_emergent``, ``patient_worst_grade``)
are checked through the API against a recount from the stored events."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from dmc_hand_trial import hand_trial_with_pre_dose
from dmc_recount import fold_raw, treatment_emergent
from fastapi.testclient import TestClient
from test_dmc_tables import stored_simulation
from test_read_snapshot import ADMIN, submit

from safety_stream.api.app import create_app
from safety_stream.application.listing_query import query_from_strings
from safety_stream.review.dataset import ReviewData
from safety_stream.review.dmc import dmc_tables
from safety_stream.review.listing import select
from safety_stream.review.table import DmcTable
from safety_stream.review.table_links import cell_queries
from safety_stream.runtime import Runtime, build_memory_runtime, default_plan

LINK = re.compile(r'<a href="(/board/aes\?[^"]*)">(\d+)</a>')
SECTION = re.compile(r'<section aria-labelledby="title-([a-z0-9-]+)">(.*?)</section>', re.S)
LINKED = {"teae-overview", "incidence-all-causality", "incidence-related", "aesi"}


class Client:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.http = TestClient(create_app(runtime), follow_redirects=False)
        self.tokens = {
            "S1": runtime.credentials.add("S1", "site", "S1"),
            "S2": runtime.credentials.add("S2", "site", "S2"),
            "officer": runtime.credentials.add("officer", "safety_officer", None),
        }

    def get(self, who: str, path: str) -> httpx.Response:
        answer: httpx.Response = self.http.get(
            path, headers={"Authorization": f"Bearer {self.tokens[who]}"}
        )
        return answer

    def listed(self, who: str, query: str) -> list[dict[str, Any]]:
        """Every AE the API lists for ``query`` (all pages)."""
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            answer = self.get(who, f"/v1/adverse-events?{query}&limit=100&after={after}")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            found += body["adverse_events"]
            if body["next_after"] is None:
                return found
            after = body["next_after"]


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    runtime = build_memory_runtime()
    submit(runtime, hand_trial_with_pre_dose())  # with AEs before the first dose: left out
    yield Client(runtime)
    runtime.close()


def page_links(client: Client, who: str, path: str) -> dict[str, list[tuple[str, int]]]:
    """Per table on the board's tables page: its linked counts (href, the count shown)."""
    answer = client.get(who, path)
    assert answer.status_code == 200, answer.text
    assert "their distinct patients are the count" in answer.text
    return {
        name: [(unescape(href), int(n)) for href, n in LINK.findall(body)]
        for name, body in SECTION.findall(answer.text)
    }


def follow(client: Client, who: str, href: str) -> set[str]:
    """GET the link on the board (it answers), and its query from the API: the patients."""
    assert client.get(who, href).status_code == 200
    query = urlsplit(href).query
    return {ae["patient_id"] for ae in client.listed(who, query)}


# -- the hand trial, through the board ------------------------------------------------------


def test_every_linked_count_lists_exactly_its_patients(client: Client) -> None:
    links = page_links(client, "officer", "/board/tables")
    assert set(name for name, found in links.items() if found) == LINKED
    for name, found in links.items():
        for href, count in found:
            assert len(follow(client, "officer", href)) == count, (name, href)


def test_hand_cells_link_to_the_aes_a_person_would_pick(client: Client) -> None:
    links = dict(page_links(client, "officer", "/board/tables")["incidence-all-causality"])
    # Gastrointestinal disorders, all terms, grade 3: P1 (diarrhoea worsened to 3; nausea 1)
    gi = [h for h in links if "soc=Gastrointestinal" in h and "term=" not in h]
    grade3 = [h for h in gi if "patient_worst_grade=3" in h]
    assert len(grade3) == 1
    listed = client.listed("officer", urlsplit(grade3[0]).query)
    assert [(a["patient_id"], a["ctcae_term"]) for a in listed] == [("P1", "Diarrhea")]
    # no grade 1 column link: P1's nausea is grade 1 but P1's worst on the row is 3, and P3's
    # diarrhoea (grade 1) began before its first dose: the count is 0, so no link
    assert not [h for h in gi if "patient_worst_grade=1" in h]
    # the same row without the treatment-emergent filter would list P3's pre-dose diarrhoea
    every = client.listed("officer", "soc=Gastrointestinal+disorders&patient_worst_grade=1")
    assert {a["patient_id"] for a in every} == {"P3"}


def test_a_sites_links_stay_within_its_site(client: Client) -> None:
    for who, own in (("S1", {"P1", "P2"}), ("S2", {"P3", "P4", "P5"})):
        links = page_links(client, who, "/board/tables")
        assert links["teae-overview"]
        for name, found in links.items():
            for href, count in found:
                assert dict(parse_qsl(urlsplit(href).query))["site"] == who
                patients = follow(client, who, href)
                assert patients <= own and len(patients) == count, (who, name, href)
    # a reader narrowed to one site: its links keep the site
    for name, found in page_links(client, "officer", "/board/tables?site=S2").items():
        for href, count in found:
            assert "site=S2" in href
            patients = follow(client, "officer", href)
            assert patients <= {"P3", "P4", "P5"} and len(patients) == count, (name, href)


# -- a simulated trial, through the listing function ----------------------------------------


def test_simulated_linked_cells_list_exactly_their_patients() -> None:
    events = stored_simulation(seed=5, patients=60)
    data = ReviewData()
    data.fold_payloads((e.position, e.payload, e.stored_at, e.chain_hash) for e in events)
    plan = default_plan()
    reads = build_memory_runtime().reads  # only a rule filter reads it: none here
    tables: dict[str, DmcTable] = {
        t.name: t for t in dmc_tables(data, plan, events[-1].stored_at.date(), True)
    }
    checked = 0
    for name in LINKED:
        table = tables[name]
        for (r, c), query in cell_queries(table, plan).items():
            chosen = query_from_strings(query).to_filter(plan, ADMIN, reads)
            patients = {x.ae.patient_id for x in select(data, chosen)}
            assert len(patients) == table.rows[r][c], (name, table.rows[r], query)
            checked += 1
    assert checked > 200
    grade_cells = [
        (r, c)
        for (r, c), q in cell_queries(tables["incidence-all-causality"], plan).items()
        if "patient_worst_grade" in q and tables["incidence-all-causality"].rows[r][c]
    ]
    assert len(grade_cells) > 20  # the exact-grade links are exercised with patients in them


# -- the new filters through the API, recounted from the stored events ---------------------


def test_treatment_emergent_filter_recounted(client: Client) -> None:
    raw = fold_raw(list(client.runtime.store.read()))
    emergent = {ae.ae_id for ae in treatment_emergent(raw)}
    every = {ae.ae_id for ae in raw.aes}
    assert {a["ae_id"] for a in client.listed("officer", "treatment_emergent=true")} == emergent
    later = {a["ae_id"] for a in client.listed("officer", "treatment_emergent=false")}
    assert later == every - emergent and len(later) == 2  # P3 before dosing, P5 never dosed
    assert {a["ae_id"] for a in client.listed("S2", "treatment_emergent=false")} == later


def test_patient_worst_grade_filter_recounted(client: Client) -> None:
    raw = fold_raw(list(client.runtime.store.read()))
    for grade in range(1, 6):
        worst: dict[str, int] = {}
        for ae in raw.aes:
            worst[ae.patient] = max(worst.get(ae.patient, 0), ae.worst)
        expected = {ae.ae_id for ae in raw.aes if ae.worst == grade == worst[ae.patient]}
        listed = client.listed("officer", f"patient_worst_grade={grade}")
        assert {a["ae_id"] for a in listed} == expected, grade


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("treatment_emergent=maybe", "treatment_emergent"),
        ("patient_worst_grade=7", "patient_worst_grade"),
        ("patient_worst_grade=three", "patient_worst_grade"),
    ],
)
def test_a_bad_value_of_a_new_filter_is_422_naming_it(
    client: Client, query: str, parameter: str
) -> None:
    answer = client.get("officer", f"/v1/adverse-events?{query}")
    assert answer.status_code == 422
    assert [e["loc"] for e in answer.json()["detail"]] == [["query", parameter]]
    board = client.get("officer", f"/board/aes?{query}")
    assert board.status_code == 400 and parameter in board.text
