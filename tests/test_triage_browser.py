"""Alert triage in a real browser (Debian's Chromium driven by Playwright, as
test_board_browser.py), against ``safety-stream serve`` in a child process: the board lists a
Critical alert above a newer Info one, and a safety officer moves the Critical alert new ->
under review -> escalated to the DSMB -> closed with a disposition and note, by keyboard
(Tab, Enter, Space, typing) for some steps and by mouse for others; each step is then read
back from the API and from the log itself (the store's events table) with the reader's name.

Screenshots go to test-artifacts/board/ (and /tmp/shots/ when it exists).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from realservers import require_binary, wait_for
from serve_process import ServeProcess, start_safety_stream
from test_board_browser import ARTIFACTS, CHROMIUM_ARGS, add_credential
from trial_builder import CHEMO_CROSSES, crossing_trial

from safety_stream.events import encode_json

SITE = "CN-SH-01"
RULE = "chemotherapy-related-g3"
SHOTS = Path("/tmp/shots")


@dataclass
class Served:
    server: ServeProcess
    tokens: dict[str, str]
    db_file: Path

    def call(self, method: str, path: str, who: str = "officer", **kwargs: Any) -> Any:
        response = httpx.request(
            method, f"{self.server.url}{path}",
            headers={"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})},
            timeout=30, **kwargs,
        )  # fmt: skip
        assert response.status_code < 300, response.text
        return response.json()

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/alerts?limit=1000"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The chemotherapy rule crosses (a boundary.crossed, Critical); two grades are then
    corrected and the DSMB's decision releases the latch: the rule is back under its boundary
    (a boundary.cleared, Info, raised after the Critical one)."""
    require_binary("chromium")
    workdir = tmp_path_factory.mktemp("triage")
    db_file = workdir / "trial.db"
    db = f"sqlite:///{db_file}"
    tokens = {
        "officer": add_credential(db, "readers", "add", "officer", "--role", "safety_officer"),
        SITE: add_credential(db, "sites", "add", SITE),
    }
    server = start_safety_stream(db, workdir)
    try:
        running = Served(server, tokens, db_file)
        trial = crossing_trial(CHEMO_CROSSES, site=SITE)
        body = "\n".join(encode_json(e) for e in trial.events).encode()
        headers = {"Content-Type": "application/x-ndjson"}
        running.call("POST", "/v1/events", SITE, content=body, headers=headers)
        reports = [e for e in trial.events if e.event_type == "ae.reported"][:2]
        trial.events.clear()
        for report in reports:
            trial.update(report.patient_id, 60, str(report.event_id), site=SITE, grade=2)
        body = "\n".join(encode_json(e) for e in trial.events).encode()
        running.call("POST", "/v1/events", SITE, content=body, headers=headers)
        running.call("POST", "/v1/decisions", json={
            "answers": [RULE], "outcome": "continue_unchanged",
            "rationale": "Two grades were corrected at source verification.",
        })  # fmt: skip
        wait_for(
            lambda: {a["alert"]["kind"] for a in running.alerts()}
            >= {"boundary.crossed", "boundary.cleared"},
            timeout=60, interval=0.5, what="the crossing and its clearing alerted",
        )  # fmt: skip
        yield running
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=require_binary("chromium"), args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def officer_page(served: Served, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{served.server.url}/board")
    page.fill("#token", served.tokens["officer"])
    page.press("#token", "Enter")
    expect(page).to_have_url(re.compile(r"/board$"))
    yield page
    context.close()
    assert errors == []


def shoot_alerts(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    page.locator('section[aria-labelledby="alerts"]').screenshot(path=str(target))
    if SHOTS.is_dir():
        shutil.copy(target, SHOTS / target.name)


def row(page: Page, alert: str) -> Any:
    return page.locator(f'tr[data-alert="{alert}"]')


def test_a_critical_alert_is_listed_above_a_newer_info_one(
    served: Served, officer_page: Page
) -> None:
    by_kind = {a["alert"]["kind"]: a for a in served.alerts()}
    crossed, cleared = by_kind["boundary.crossed"], by_kind["boundary.cleared"]
    assert (crossed["alert"]["severity"], cleared["alert"]["severity"]) == ("critical", "info")
    assert cleared["number"] > crossed["number"]  # the Info one is the newer
    listed = officer_page.locator("#alert-list tbody tr")
    order = [listed.nth(i).get_attribute("data-alert") for i in range(listed.count())]
    critical_at = order.index(crossed["alert"]["derived_id"])
    info_at = order.index(cleared["alert"]["derived_id"])
    assert critical_at < info_at
    severities = [listed.nth(i).get_attribute("data-severity") for i in range(listed.count())]
    rank = {"critical": 0, "warning": 1, "info": 2}
    assert [rank[s or ""] for s in severities] == sorted(rank[s or ""] for s in severities)
    expect(
        row(officer_page, crossed["alert"]["derived_id"]).locator(".badge.critical")
    ).to_have_text("Critical")


def test_an_officer_triages_a_critical_alert_by_keyboard_and_mouse(
    served: Served, officer_page: Page
) -> None:
    page = officer_page
    alert = next(
        a["alert"]["derived_id"]
        for a in served.alerts()
        if a["alert"]["kind"] == "boundary.crossed"
    )
    state = row(page, alert).locator('[data-field="triage-state"]')
    expect(state).to_have_text("New")
    expect(row(page, alert).locator('[data-field="review"]')).to_have_text("● new")
    shoot_alerts(page, "officer-triage-new")

    # 1. keyboard: from the Acknowledge button, Tab to "Start review" and press Enter
    page.focus(f"#ack-{alert}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == f"triage-{alert}-under_review"
    page.keyboard.press("Enter")
    expect(state).to_have_text("Under review")
    expect(page.locator("#live")).to_contain_text("under review (recorded as officer)")
    # focus stays with the alert: its triage note field, ready for the next step
    assert page.evaluate("document.activeElement.id") == f"tnote-{alert}"

    # 2. mouse: type a note, click "Escalate to DSMB"
    page.click(f"#tnote-{alert}")
    page.fill(f"#tnote-{alert}", "crossing confirmed; for the DSMB chair")
    page.click(f"#triage-{alert}-escalated_to_dsmb")
    expect(state).to_have_text("Escalated to DSMB")
    shoot_alerts(page, "officer-triage-escalated")

    # 3. keyboard only: type the note, Tab to the disposition (arrow keys pick one), Tab to
    #    "Close", press Space
    assert page.evaluate("document.activeElement.id") == f"tnote-{alert}"
    page.keyboard.type("DSMB decided: continue unchanged, grades corrected")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == f"disp-{alert}"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # the second disposition: addressed by DSMB decision
    assert page.evaluate("document.activeElement.value") == "addressed_by_dsmb_decision"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == f"triage-{alert}-closed"
    page.keyboard.press(" ")
    closed_row = page.locator(f'#closed-alerts tr[data-alert="{alert}"]')
    expect(closed_row.locator('[data-field="triage-state"]')).to_have_text("Closed")
    expect(closed_row.locator('[data-field="disposition"]')).to_have_text(
        "addressed by DSMB decision"
    )
    expect(page.locator(f'#alert-list tr[data-alert="{alert}"]')).to_have_count(0)
    expect(closed_row.locator('[data-field="review"]')).to_have_count(0)  # reviewed by its steps
    page.locator("#closed-alerts > summary").click()
    closed_row.locator("details.history summary").click()
    expect(closed_row.locator("details.history li")).to_have_count(3)
    shoot_alerts(page, "officer-triage-closed")

    # the API and the log itself hold each step with the reader's name
    listed = next(a for a in served.alerts() if a["alert"]["derived_id"] == alert)
    steps = listed["triage"]["steps"]
    assert [(s["from_state"], s["to_state"], s["by"]) for s in steps] == [
        ("new", "under_review", "officer"),
        ("under_review", "escalated_to_dsmb", "officer"),
        ("escalated_to_dsmb", "closed", "officer"),
    ]
    assert steps[2]["disposition"] == "addressed_by_dsmb_decision"
    assert listed["acknowledged_by"] == "officer"  # starting the review acknowledged it
    with sqlite3.connect(f"file:{served.db_file}?mode=ro", uri=True) as log:
        stored = log.execute(
            "SELECT position, payload FROM events WHERE event_type = 'alert.triaged' "
            "ORDER BY position"
        ).fetchall()
    events = [(position, json.loads(payload)) for position, payload in stored]
    assert [p for p, _ in events] == [s["position"] for s in steps]
    assert [(e["alert_id"], e["to_state"], e["triaged_by"], e["reporter"]) for _, e in events] == [
        (alert, "under_review", "officer", "officer"),
        (alert, "escalated_to_dsmb", "officer", "officer"),
        (alert, "closed", "officer", "officer"),
    ]
    assert [e["note"] for _, e in events] == [
        None,
        "crossing confirmed; for the DSMB chair",
        "DSMB decided: continue unchanged, grades corrected",
    ]


def test_a_site_sees_its_own_view_and_no_alerts(served: Served, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{served.server.url}/board")
        page.fill("#token", served.tokens[SITE])
        page.press("#token", "Enter")
        expect(page).to_have_url(re.compile(r"/board$"))
        own = page.locator('section[aria-labelledby="site-own"]')
        expect(own.locator("h2")).to_have_text(f"What {SITE} must fix")
        posted = crossing_trial(CHEMO_CROSSES, site=SITE).events  # what the fixture posted
        reported = sum(e.event_type == "ae.reported" for e in posted)  # none retracted
        expect(own.locator('[data-field="site-aes"]')).to_have_text(str(reported))
        expect(own.locator('[data-field="site-patients"]')).to_have_text(str(CHEMO_CROSSES))
        for absent in ("#alerts", "#alert-list", "form.triage", "form.mark"):
            expect(page.locator(absent)).to_have_count(0)
        page.keyboard.press("f")  # the key shortcut to what the site must fix
        assert page.evaluate("document.activeElement.id") == "site-own"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        target = ARTIFACTS / "site-own-view.png"
        own.screenshot(path=str(target))
        if SHOTS.is_dir():
            shutil.copy(target, SHOTS / target.name)
    finally:
        context.close()
