"""CSV downloads of the liver page's tables (GET /board/liver/{table}.csv), through the
production path: the histories of tests/liver_histories.py posted to an in-memory runtime, read
with a reader's and with each site's token. Each CSV holds the figures of the page's table (read
back from the page's HTML), a site's CSV only its own patients, the Excel-safe file neutralises
a formula-like cell, and the stamp follows /board/tables (position and chain head for readers).
"""

from __future__ import annotations

import csv
import html as html_lib
import io
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from liver_histories import S1, S2, child_pugh_trial, competing_trial, liver_trial
from test_read_snapshot import submit
from trial_builder import T0

from safety_stream.api.app import create_app
from safety_stream.review.liver_tables import LIVER_TABLE_NAMES
from safety_stream.runtime import Runtime, build_memory_runtime

SHIFTS = {
    "shift-alt": "ALT",
    "shift-ast": "AST",
    "shift-alp": "ALP",
    "shift-bilirubin-total": "bilirubin_total",
}


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    runtime = build_memory_runtime()
    submit(runtime, liver_trial())
    submit(runtime, child_pugh_trial())
    submit(runtime, competing_trial()[0])
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), follow_redirects=False)


@pytest.fixture(scope="module")
def tokens(runtime: Runtime) -> dict[str, str]:
    return {
        "officer": runtime.credentials.add("officer", "safety_officer", None),
        S1: runtime.credentials.add(S1, "site", S1),
        S2: runtime.credentials.add(S2, "site", S2),
    }


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def page(client: TestClient, token: str) -> str:
    response = client.get("/board/liver", headers=auth(token))
    assert response.status_code == 200, response.text
    return str(response.text)


def download(
    client: TestClient, token: str, name: str, excel_safe: bool = False
) -> list[list[str]]:
    query = "?excel_safe=true" if excel_safe else ""
    response = client.get(f"/board/liver/{name}.csv{query}", headers=auth(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert f'filename="liver-{name}.csv"' in response.headers["content-disposition"]
    return list(csv.reader(io.StringIO(response.text)))


def table_rows(html: str, table_id: str) -> list[list[str]]:
    """The body and footer rows of the page's table ``table_id``, each cell's text."""
    start = html.index(f'id="{table_id}"')
    table = html[start : html.index("</table>", start)]
    body = table[table.index("</thead>") :]
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        rows.append([html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return rows


# -- the page's links ----------------------------------------------------------------------


def test_the_page_links_each_table_to_its_csv_and_excel_safe_csv(
    client: TestClient, tokens: dict[str, str]
) -> None:
    html = page(client, tokens["officer"])
    for name in LIVER_TABLE_NAMES:
        assert (
            f'Download <a href="/board/liver/{name}.csv" download>CSV</a> · '
            f'<a href="/board/liver/{name}.csv?excel_safe=true" download>Excel-safe CSV</a>'
        ) in html
    assert html.count("Excel-safe CSV</a>") == len(LIVER_TABLE_NAMES) == 8


# -- the same figures as the page ----------------------------------------------------------


@pytest.mark.parametrize("who", ["officer", S1, S2])
def test_the_shift_csvs_hold_the_page_tables(
    client: TestClient, tokens: dict[str, str], who: str
) -> None:
    html = page(client, tokens[who])
    for name, test in SHIFTS.items():
        header, *rows = download(client, tokens[who], name)
        assert header[:2] == ["test", "baseline grade"] and header[-1] == "total"
        assert [r[1:] for r in rows] == table_rows(html, f"shift-{test}")


def test_a_shift_table_by_hand(client: TestClient, tokens: dict[str, str]) -> None:
    # site 2's ALT: L3 normal at baseline (1.0 x ULN) then 25 x ULN (grade 4); L4 never dosed:
    # baseline missing, worst 3.0 x ULN (grade 1); C3 and C4 have no ALT value
    _, *rows = download(client, tokens[S2], "shift-alt")
    assert rows == [
        ["ALT", "0", "0", "0", "0", "0", "1", "0", "1"],
        ["ALT", "1", "0", "0", "0", "0", "0", "0", "0"],
        ["ALT", "2", "0", "0", "0", "0", "0", "0", "0"],
        ["ALT", "3", "0", "0", "0", "0", "0", "0", "0"],
        ["ALT", "4", "0", "0", "0", "0", "0", "0", "0"],
        ["ALT", "missing", "0", "1", "0", "0", "0", "2", "3"],
        ["ALT", "Total", "0", "1", "0", "0", "1", "2", "4"],
    ]


def edish_as_page(row: list[str]) -> list[str]:
    patient, site, test, peak, peak_on, bilirubin, bilirubin_on, quadrant, pair = row
    return [
        patient,
        site,
        f"{test} {float(peak):.2f}",
        peak_on,
        f"{float(bilirubin):.2f}",
        bilirubin_on,
        quadrant,
        {"true": "yes", "false": "no"}[pair],
    ]


@pytest.mark.parametrize("who", ["officer", S1, S2])
def test_the_edish_csvs_hold_the_page_tables(
    client: TestClient, tokens: dict[str, str], who: str
) -> None:
    html = page(client, tokens[who])
    _, *rows = download(client, tokens[who], "edish")
    assert [edish_as_page(r) for r in rows] == table_rows(html, "edish-table")
    _, *quadrants = download(client, tokens[who], "edish-quadrants")
    start = html.index('class="edish-counts"')
    counts_id = 'class="edish-counts"'
    shown = table_rows(html[start - len("<table ") :].replace(counts_id, 'id="q"', 1), "q")
    assert quadrants[:-1] == shown
    not_plotted = re.search(r"(\d+) without post-baseline values of both", html)
    assert not_plotted is not None and quadrants[-1] == ["Not plotted", not_plotted.group(1)]


def test_the_edish_csv_by_hand(client: TestClient, tokens: dict[str, str]) -> None:
    _, *rows = download(client, tokens["officer"], "edish")
    on = {n: (T0 + timedelta(days=n)).date().isoformat() for n in (5, 10, 20, 40, 60, 80)}
    assert rows == [
        # L1: ALT 6.0 on day 20, bilirubin 2.5 on day 10; ALT 3.5 and bilirubin 2.5 same draw
        ["L1", S1, "ALT", "6", on[20], "2.5", on[10], "Potential Hy's law", "true"],
        # L2: AST 4.0 on day 5, bilirubin 2.5 on day 60: 55 days apart
        ["L2", S1, "AST", "4", on[5], "2.5", on[60], "Potential Hy's law", "false"],
        # L3: ALT 25 on day 40, bilirubin 2.2 on day 80
        ["L3", S2, "ALT", "25", on[40], "2.2", on[80], "Potential Hy's law", "false"],
    ]


def child_pugh_as_page(row: list[str]) -> list[str]:
    patient, _, fractions, first, last, scores, baseline, rise, change, rose = row
    return [
        patient,
        f"{fractions} fractions, {first} to {last}",
        scores or "none",
        baseline or "-",
        "-" if not rise else f"{int(rise):+d}",
        change or "-",
        {"true": "yes", "false": "no"}[rose],
    ]


@pytest.mark.parametrize("who", ["officer", S1, S2])
def test_the_child_pugh_csvs_hold_the_page_tables(
    client: TestClient, tokens: dict[str, str], who: str
) -> None:
    html = page(client, tokens[who])
    header, *rows = download(client, tokens[who], "child-pugh")
    assert header[:2] == ["patient", "site"]
    assert [child_pugh_as_page(r) for r in rows] == table_rows(html, "child-pugh-table")


def cif_as_page(row: list[str]) -> list[str]:
    label, kind, day_, patients, at_risk, events, deaths, censored, cif, low, high = row
    if kind == "total":
        return [label, f"{patients} patients", events, deaths, censored, ""]
    interval = "-" if not low else f"{float(low) * 100:.1f}-{float(high) * 100:.1f}%"
    return [
        label,
        f"{float(day_):g}",
        at_risk,
        events,
        deaths,
        censored,
        f"{float(cif) * 100:.1f}%",
        interval,
    ]


@pytest.mark.parametrize("who", ["officer", S1, S2])
def test_the_cumulative_incidence_csvs_hold_the_page_tables(
    client: TestClient, tokens: dict[str, str], who: str
) -> None:
    html = page(client, tokens[who])
    _, *rows = download(client, tokens[who], "cumulative-incidence")
    assert [cif_as_page(r) for r in rows] == table_rows(html, "cif-table")
    assert any(r[1] == "day" for r in rows) == (who != S2)


# -- site scoping, neutralising, stamps, errors --------------------------------------------


def test_a_sites_csvs_hold_only_its_own_patients(
    client: TestClient, tokens: dict[str, str]
) -> None:
    for site, edish_patients, irradiated in (
        (S1, {"L1", "L2"}, {"C1", "C2", "PT-5"}),
        (S2, {"L3"}, {"C3"}),
    ):
        _, *edish = download(client, tokens[site], "edish")
        assert {r[0] for r in edish} == edish_patients and {r[1] for r in edish} == {site}
        _, *trajectories = download(client, tokens[site], "child-pugh")
        assert {r[0] for r in trajectories} == irradiated
        assert {r[1] for r in trajectories} == {site}


def test_the_excel_safe_csv_neutralises_a_score_list_starting_with_a_minus(
    client: TestClient, tokens: dict[str, str]
) -> None:
    # C1's first score is 10 days before its first fraction: the cell starts with "-10:",
    # which a spreadsheet would read as a formula; a negative plain number would stay as it is
    plain = download(client, tokens[S1], "child-pugh")
    safe = download(client, tokens[S1], "child-pugh", excel_safe=True)
    c1 = next(r for r in plain if r[0] == "C1")
    assert c1[5] == "-10: 5 A; 30: 7 B; 140: 9 B"
    assert next(r for r in safe if r[0] == "C1")[5] == "'-10: 5 A; 30: 7 B; 140: 9 B"
    changed = [
        (a, b)
        for row_a, row_b in zip(plain, safe, strict=True)
        for a, b in zip(row_a, row_b, strict=True)
        if a != b
    ]
    assert changed and all(b == "'" + a and a.startswith("-") for a, b in changed)
    assert plain[0] == safe[0]  # the header has nothing to neutralise


def test_the_stamp_gives_readers_the_position_and_a_site_only_the_time(
    client: TestClient, tokens: dict[str, str], runtime: Runtime
) -> None:
    reader = client.get("/board/liver/edish.csv", headers=auth(tokens["officer"]))
    assert reader.headers["x-log-position"] == str(runtime.store.head())
    assert re.fullmatch(r"[0-9a-f]{64}", reader.headers["x-chain-head"])
    assert "x-as-of" in reader.headers
    site = client.get("/board/liver/edish.csv", headers=auth(tokens[S1]))
    assert "x-log-position" not in site.headers and "x-chain-head" not in site.headers
    assert "x-as-of" in site.headers


def test_an_unknown_table_is_404_naming_the_known_ones(
    client: TestClient, tokens: dict[str, str]
) -> None:
    response = client.get("/board/liver/patients.csv", headers=auth(tokens["officer"]))
    assert response.status_code == 404
    assert response.text == ("no liver table 'patients': one of " + ", ".join(LIVER_TABLE_NAMES))
    assert "shift-bilirubin-total" in response.text and "cumulative-incidence" in response.text


def test_without_credentials_a_download_sends_people_to_log_in(client: TestClient) -> None:
    for name in ("edish", "no-such-table"):
        response = client.get(f"/board/liver/{name}.csv?excel_safe=true")
        assert response.status_code == 303
        assert response.headers["location"] == f"/board/login?next=/board/liver/{name}.csv"
