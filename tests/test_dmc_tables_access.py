"""The DMC tables where people read them: the board's /board/tables page and its CSV, the API's
/v1/tables (JSON and CSV), and the DSMB report. A site sees its own patients only and gets 404
for another site's tables; the open report names no patient and no site."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser

import httpx
import pytest
from dmc_hand_trial import day, hand_trial
from fastapi.testclient import TestClient
from test_read_snapshot import submit
from trial_builder import Trial

from safety_stream.api.app import create_app
from safety_stream.report.model import build_report
from safety_stream.report.render import render_html
from safety_stream.report.snapshot import snapshot_as_of
from safety_stream.review.dmc import TABLE_NAMES
from safety_stream.runtime import Runtime, build_memory_runtime

S1_PATIENTS, S2_PATIENTS = ("P1", "P2"), ("P3", "P4", "P5")


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


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    runtime = build_memory_runtime()
    submit(runtime, hand_trial())
    yield Client(runtime)
    runtime.close()


def ids_in(text: str) -> set[str]:
    return set(re.findall(r"\b(P[1-5]|S[12])\b", text))


class Tables(HTMLParser):
    """Each <table>'s caption and the scope of each <th>."""

    def __init__(self) -> None:
        super().__init__()
        self.captions: list[str] = []
        self.scopes: list[str | None] = []
        self.in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "caption":
            self.in_caption = True
            self.captions.append("")
        elif tag == "th":
            self.scopes.append(dict(attrs).get("scope"))

    def handle_endtag(self, tag: str) -> None:
        self.in_caption = self.in_caption and tag != "caption"

    def handle_data(self, data: str) -> None:
        if self.in_caption:
            self.captions[-1] += data


def test_readers_see_every_table_with_captions_and_header_scopes(client: Client) -> None:
    page = client.get("officer", "/board/tables")
    assert page.status_code == 200, page.text
    html = page.text
    parsed = Tables()
    parsed.feed(html)
    assert len(parsed.captions) == len(TABLE_NAMES)
    assert "Treatment-emergent AE overview: patients with at least one AE (n, %)" in parsed.captions
    assert parsed.scopes and set(parsed.scopes) == {"col", "row"}
    assert ids_in(html) >= {"P2", "P3", "P4", "S1", "S2"}  # the listings and per-site rows
    for name in TABLE_NAMES:
        assert f'href="/board/tables/{name}.csv"' in html
        assert f'href="/board/tables/{name}.csv?excel_safe=true"' in html
    assert 'href="/board/tables" aria-current="page"' in html  # the page navigation
    assert client.get("officer", "/board").text.count('href="/board/tables"') >= 1


def test_a_site_sees_only_its_own_tables_and_404_for_another_sites(client: Client) -> None:
    html = client.get("S1", "/board/tables").text
    assert ids_in(html) == {"P2", "S1"}  # P2's discontinuation; P1 is in no listing
    assert 'id="site-filter"' not in html  # no other site to choose
    for path in ("/board/tables?site=S2", "/board/tables/deaths.csv?site=S2"):
        assert client.get("S1", path).status_code == 404
    assert client.get("S1", "/board/tables?site=S1").status_code == 200
    narrowed = client.get("officer", "/board/tables?site=S2").text
    choice, tables = narrowed.split('<nav aria-label="Tables on this page">')
    assert re.findall(r"<option( selected)?>(S\d)</option>", choice) == [
        ("", "S1"),
        (" selected", "S2"),
    ]
    assert ids_in(tables) == {"P3", "P4", "S2"}
    assert client.get("officer", "/board/tables?site=NOWHERE").status_code == 404
    assert client.get("officer", "/board/tables/nonsense.csv").status_code == 404
    login = client.http.get("/board/tables")
    assert login.status_code == 303 and login.headers["location"].startswith("/board/login")


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_every_table_downloads_as_csv_with_its_columns(client: Client) -> None:
    for name in TABLE_NAMES:
        api = client.get("officer", f"/v1/tables/{name}").json()
        got = client.get("officer", f"/board/tables/{name}.csv")
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("text/csv")
        assert f'filename="{name}.csv"' in got.headers["content-disposition"]
        rows = _csv_rows(got.text)
        assert rows[0] == api["columns"]
        assert len(rows) == 1 + len(api["rows"])
        same = client.get("officer", f"/v1/tables/{name}?format=csv").text
        assert same == got.text
    overview = _csv_rows(client.get("officer", "/board/tables/teae-overview.csv").text)
    assert overview[1][:3] == ["Any AE", "3", "75"]  # 75.0 % (3 of 4 treated) as printed


def test_api_tables_json_scoped_per_site(client: Client) -> None:
    assert client.get("S1", "/v1/tables").json() == {"tables": list(TABLE_NAMES)}
    officer = client.get("officer", "/v1/tables/deaths").json()
    assert officer["position"] == client.runtime.store.head() and officer["chain_head"]
    (death,) = officer["rows"]
    assert death["patient_id"] == "P4" and death["death_date"] == day(52).isoformat()
    assert death["within_30_days_of"] == "immunotherapy"
    site = client.get("S2", "/v1/tables/deaths").json()
    assert site["rows"] == officer["rows"] and site["position"] is None
    assert site["chain_head"] is None and site["site_id"] == "S2"
    assert client.get("S1", "/v1/tables/deaths").json()["rows"] == []
    overview = client.get("S1", "/v1/tables/teae-overview").json()
    assert overview["rows"][0] == {  # P1 and P2 of 2 enrolled at S1
        "category": "Any AE", "all_n": 2, "all_pct": 100.0, "related_n": 2, "related_pct": 100.0,
        "related_radiotherapy_n": 0, "related_radiotherapy_pct": 0.0,
        "related_chemotherapy_n": 1, "related_chemotherapy_pct": 50.0,
        "related_immunotherapy_n": 1, "related_immunotherapy_pct": 50.0,
    }  # fmt: skip
    assert client.get("S1", "/v1/tables/deaths?site=S2").status_code == 404
    assert client.get("S1", "/v1/tables/deaths?site=S1").status_code == 200
    # data currency as of today: the patients on study (P1, P2 at S1; P5 at S2) last had data
    # in January to March 2026, months before; none within ten years
    quiet = client.get("officer", "/v1/tables/data-currency").json()["rows"]
    assert [r["patients_without_recent_data"] for r in quiet] == [2, 1, 3]
    recent = client.get("officer", "/v1/tables/data-currency?quiet_days=3650").json()["rows"]
    assert [r["patients_without_recent_data"] for r in recent] == [0, 0, 0]
    assert client.get("officer", "/v1/tables/data-currency?quiet_days=0").status_code == 422
    missing = client.get("officer", "/v1/tables/nonsense")
    assert missing.status_code == 404 and "teae-overview" in missing.json()["detail"]
    assert client.http.get("/v1/tables/deaths").status_code == 401
    reader_csv = client.get("officer", "/v1/tables/enrolment?format=csv")
    assert reader_csv.headers["x-log-position"] == str(client.runtime.store.head())
    site_csv = client.get("S1", "/v1/tables/enrolment?format=csv")
    assert "x-log-position" not in site_csv.headers and "x-chain-head" not in site_csv.headers
    assert "x-as-of" in site_csv.headers


def test_excel_safe_csv_neutralises_a_formula_in_a_cause_of_death() -> None:
    runtime = build_memory_runtime()
    trial = Trial()
    trial.enrol("X1", 0)
    trial.treat("X1", "chemotherapy", 1)
    trial.add(
        "patient.died", "X1", 5, death_date=day(5).isoformat(),
        primary_cause="=HYPERLINK(\"http://x\")",
    )  # fmt: skip
    submit(runtime, trial)
    client = Client(runtime)
    plain = _csv_rows(client.get("officer", "/board/tables/deaths.csv").text)
    safe = _csv_rows(client.get("officer", "/board/tables/deaths.csv?excel_safe=true").text)
    assert plain[1][3] == '=HYPERLINK("http://x")'
    assert safe[1][3] == '\'=HYPERLINK("http://x")'
    api = client.get("officer", "/v1/tables/deaths?format=csv&excel_safe=true").text
    assert _csv_rows(api)[1][3] == safe[1][3]
    runtime.close()


def test_the_report_pools_the_open_version_and_lists_patients_in_the_closed(
    client: Client,
) -> None:
    now = datetime.now(UTC)
    snapshot = snapshot_as_of(client.runtime.store, client.runtime.plan, now)
    opened = render_html(build_report(snapshot, None, "open"))
    closed = render_html(build_report(snapshot, None, "closed"))
    section = closed[closed.index('<section id="dmc"') :]
    section = section[: section.index("</section>")]
    assert ids_in(section) == {"P2", "P3", "P4", "S1", "S2"}
    assert "AEs leading to discontinuation: patient listing" in section
    open_section = opened[opened.index('<section id="dmc"') :]
    open_section = open_section[: open_section.index("</section>")]
    assert "AEs leading to discontinuation: patients per term" in open_section
    assert "Deaths and their timing relative to the last dose (pooled)" in open_section
    assert ids_in(opened) == set()  # no patient and no site anywhere in the open report
    parsed = Tables()
    parsed.feed(open_section)
    assert len(parsed.captions) == len(TABLE_NAMES)
