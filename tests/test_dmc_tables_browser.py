"""The DMC tables page in a real browser (Debian's Chromium, Playwright) against
``safety-stream serve`` with a simulated trial posted by its sites: reached from the board's
page navigation, every table a captioned <table>, a CSV downloaded by keyboard, and a site's
login seeing only its own patients (404 on another site's tables by URL).

Screenshots go to test-artifacts/board/ (dmc-tables-*.png)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import REPO
from playwright.sync_api import Browser, Page, expect, sync_playwright
from realservers import require_binary
from serve_process import ServeProcess, start_safety_stream
from test_board_browser import CHROMIUM_ARGS, add_credential

from safety_stream.review.dmc import TABLE_NAMES
from safety_stream.simulate.generator import simulate
from safety_stream.simulate.rates import scenario

SITES = ("SITE-01", "SITE-02")
ARTIFACTS = REPO / "test-artifacts" / "board"


@dataclass
class Served:
    server: ServeProcess
    tokens: dict[str, str]
    patients: dict[str, set[str]]  # site -> its patients


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    require_binary("chromium")
    workdir: Path = tmp_path_factory.mktemp("dmc")
    db = f"sqlite:///{workdir / 'trial.db'}"
    tokens = {"officer": add_credential(db, "readers", "add", "officer", "--role", "dsmb")}
    for site in SITES:
        tokens[site] = add_credential(db, "sites", "add", site)
    server = start_safety_stream(db, workdir)
    try:
        records = simulate(scenario("default", patients=16, seed=4, sites=2))
        patients: dict[str, set[str]] = {s: set() for s in SITES}
        for site in SITES:
            mine = [r for r in records if r.site_id == site]
            body = b"\n".join(r.body for r in mine)
            answer = httpx.post(
                f"{server.url}/v1/events", content=body, timeout=60,
                headers={"Authorization": f"Bearer {tokens[site]}",
                         "Content-Type": "application/x-ndjson"},
            )  # fmt: skip
            assert answer.status_code in (201, 422)
            patients[site] = {
                o["patient_id"]
                for o in _enrolments(server, tokens["officer"])
                if o["site_id"] == site
            }
        yield Served(server, tokens, patients)
    finally:
        server.stop()


def _enrolments(server: ServeProcess, token: str) -> list[dict[str, str]]:
    answer = httpx.get(
        f"{server.url}/v1/exposure", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    answer.raise_for_status()
    return list(answer.json()["patients"])


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=require_binary("chromium"), args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def log_in(browser: Browser, served: Served, who: str, errors: list[str]) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{served.server.url}/board/tables")
    expect(page).to_have_url(re.compile(r"/board/login"))
    page.fill("#token", served.tokens[who])
    page.press("#token", "Enter")
    expect(page).to_have_url(re.compile(r"/board/tables$"))
    return page


def test_a_dsmb_member_reads_every_table_and_downloads_one_by_keyboard(
    served: Served, browser: Browser
) -> None:
    errors: list[str] = []
    page = log_in(browser, served, "officer", errors)
    tables = page.locator("table")
    expect(tables).to_have_count(len(TABLE_NAMES))
    for index in range(len(TABLE_NAMES)):
        caption = tables.nth(index).locator("caption")
        expect(caption).to_be_visible()
        assert tables.nth(index).locator("thead th:not([scope=col])").count() == 0
    overview = page.locator("#table-teae-overview tbody tr").first
    expect(overview.locator("th[scope=row]")).to_have_text("Any AE")
    treated = sum(  # the safety population: patients with a dose (the percentages' base)
        1
        for patient in served.patients["SITE-01"] | served.patients["SITE-02"]
        if httpx.get(
            f"{served.server.url}/v1/patients/{patient}/profile",
            headers={"Authorization": f"Bearer {served.tokens['officer']}"},
            timeout=30,
        ).json()["administrations"]
    )
    assert overview.locator("td").nth(0).inner_text() != ""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dmc-tables-dsmb.png"), full_page=True)
    page.screenshot(path=str(ARTIFACTS / "dmc-tables-dsmb-top.png"))
    for name in ("incidence-related", "exposure", "incidence-rates", "deaths"):
        page.locator(f"#table-{name}").screenshot(path=str(ARTIFACTS / f"dmc-table-{name}.png"))

    link = page.locator('a[href="/board/tables/teae-overview.csv"]')
    link.focus()
    with page.expect_download() as waiting:
        page.keyboard.press("Enter")
    download = waiting.value
    assert download.suggested_filename == "teae-overview.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text())))
    assert rows[0][:3] == ["category", "all_n", "all_pct"]
    assert rows[1][0] == "Any AE"
    # the page and the CSV agree, and the denominator is the treated patients
    assert overview.locator("td").nth(0).inner_text() == rows[1][1]
    assert float(rows[1][2]) == pytest.approx(round(100 * int(rows[1][1]) / treated, 1))

    page.goto(f"{served.server.url}/board")  # the board's page navigation leads here
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Tables").click()
    expect(page).to_have_url(re.compile(r"/board/tables$"))
    page.context.close()
    assert errors == []


def test_a_site_sees_only_its_own_patients_and_404_for_another_site(
    served: Served, browser: Browser
) -> None:
    errors: list[str] = []
    page = log_in(browser, served, "SITE-01", errors)
    text = page.locator("main").inner_text()
    assert "SITE-02" not in text
    for patient in served.patients["SITE-02"]:
        assert patient not in text
    enrolment = page.locator("#table-enrolment tbody th[scope=row]").all_inner_texts()
    assert set(enrolment) <= {"All sites", "SITE-01"}
    page.screenshot(path=str(ARTIFACTS / "dmc-tables-site.png"), full_page=True)
    answer = page.goto(f"{served.server.url}/board/tables?site=SITE-02")
    assert answer is not None and answer.status == 404
    answer = page.goto(f"{served.server.url}/board/tables/deaths.csv?site=SITE-02")
    assert answer is not None and answer.status == 404
    page.context.close()
    assert [e for e in errors if "404" not in e] == []
