"""The safety board in a real browser: Debian's Chromium, driven by Playwright, against
``safety-stream serve`` in a child process with a simulated trial posted through the API.

Screenshots go to test-artifacts/board/. Under CI a missing Chromium fails these tests.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import REPO, example
from playwright.sync_api import Browser, Page, expect, sync_playwright
from realservers import require_binary, wait_for
from serve_process import ServeProcess, start_safety_stream

from safety_stream.simulate.generator import simulate
from safety_stream.simulate.rates import scenario

# The machine's network is closed: without these Chromium keeps trying to reach Google.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SITES = ("SITE-01", "SITE-02", "SITE-03")
STATE_LABELS = {"ok": "OK", "approached": "Approached", "crossed": "Crossed"}
ARTIFACTS = REPO / "test-artifacts" / "board"


@dataclass
class Trial:
    server: ServeProcess
    tokens: dict[str, str]  # officer, each site
    stored: Counter[str]  # events each site posted that the simulator made valid
    rejected: Counter[str]  # and those it made invalid

    def get(self, path: str, who: str = "officer") -> Any:
        response = httpx.get(
            f"{self.server.url}{path}",
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def post(self, who: str, body: bytes) -> httpx.Response:
        return httpx.post(
            f"{self.server.url}/v1/events",
            content=body,
            headers={
                "Authorization": f"Bearer {self.tokens[who]}",
                "Content-Type": "application/x-ndjson",
            },
            timeout=60,
        )


def add_credential(db: str, *args: str) -> str:
    executable = str(Path(sys.executable).with_name("safety-stream"))
    done = subprocess.run(
        [executable, *args, "--db", db], check=True, capture_output=True, text=True
    )
    return done.stdout.splitlines()[-1]


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trial]:
    """A served trial whose chemotherapy is far too toxic: rules cross, alerts are raised."""
    require_binary("chromium")
    workdir = tmp_path_factory.mktemp("board")
    db = f"sqlite:///{workdir / 'trial.db'}"
    tokens = {
        "officer": add_credential(db, "readers", "add", "officer", "--role", "safety_officer")
    }
    for site in SITES:
        tokens[site] = add_credential(db, "sites", "add", site)
    server = start_safety_stream(db, workdir)
    try:
        records = simulate(scenario("chemotherapy-toxicity", patients=30, seed=3, sites=3))
        running = Trial(
            server,
            tokens,
            Counter(r.site_id for r in records if r.valid),
            Counter(r.site_id for r in records if not r.valid),
        )
        for site in SITES:  # each site posts its own records, in the order it sent them
            body = b"\n".join(r.body for r in records if r.site_id == site)
            assert running.post(site, body).status_code in (201, 422)
        counts: list[int] = []  # the alert count at each look
        wait_for(lambda: settled(running, counts), timeout=60, interval=0.5, what="alerts settled")
        yield running
    finally:
        server.stop()


def settled(trial: Trial, seen: list[int]) -> bool:
    """The projection has caught up and the alert count stayed the same since the last look
    (the dispatcher plans alerts after the projector commits): the board stops changing."""
    health = trial.get("/healthz")
    count = len(trial.get("/v1/alerts?limit=1000"))
    stable = bool(seen) and seen[-1] == count >= 3
    seen.append(count)
    return stable and health["projection_position"] == health["position"]


@pytest.fixture(scope="module")
def browser(trial: Trial) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=require_binary("chromium"), args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page_for(trial: Trial, browser: Browser) -> Iterator[Any]:
    """Log a fresh browser context in through the login form, as ``who``."""
    contexts = []
    errors: list[str] = []  # console errors, e.g. anything the page's CSP blocked

    def open_as(who: str) -> Page:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{trial.server.url}/board")
        expect(page).to_have_url(re.compile(r"/board/login$"))
        page.fill("#token", trial.tokens[who])
        page.press("#token", "Enter")
        expect(page).to_have_url(re.compile(r"/board$"))
        return page

    yield open_as
    for context in contexts:
        context.close()
    assert errors == []


def shoot(page: Page, name: str, full: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)


def shoot_sections(page: Page, prefix: str, *sections: str) -> None:
    """One picture per section, readable at full size (the whole page is very tall)."""
    for section in sections:
        page.locator(f'section[aria-labelledby="{section}"]').screenshot(
            path=str(ARTIFACTS / f"{prefix}-{section}.png")
        )


def cell(page: Page, modality: str, field: str) -> Any:
    return page.locator(f'#toxicity tr[data-modality="{modality}"] td[data-field="{field}"]')


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def new_patient_with_grade3(site: str) -> bytes:
    """A new patient at ``site``: enrolled, given chemotherapy, a related grade 3 neutropenia."""
    patient = f"{site}-9001"
    events = [example("patient.enrolled"), example("treatment.administered--chemotherapy")]
    events.append(
        dict(
            example("ae.reported"),
            ctcae_term="Neutrophil count decreased",
            meddra_code=10029366,
            grade=3,
            immune_related=False,
            attribution={
                "radiotherapy": "unrelated",
                "chemotherapy": "probable",
                "immunotherapy": "unrelated",
            },
            verbatim_term="ANC 0.8",
        )
    )
    days = ("2026-02-02", "2026-02-04", "2026-02-11")  # in the past of the server
    for event, day in zip(events, days, strict=True):
        event.update(
            event_id=str(uuid.uuid4()),
            site_id=site,
            patient_id=patient,
            occurred_at=f"{day}T02:00:00Z",
            recorded_at=f"{day}T06:00:00Z",
        )
    events[0]["consent_date"] = days[0]
    events[2]["onset_date"] = days[2]
    return "\n".join(json.dumps(e) for e in events).encode()


def test_the_board_shows_the_api_numbers_and_updates_live(trial: Trial, page_for: Any) -> None:
    page = page_for("officer")
    api = trial.get("/v1/toxicity")
    for modality in api["modalities"]:
        name, severe = modality["modality"], modality["grade3_or_worse"]
        expect(cell(page, name, "exposed")).to_have_text(str(modality["exposed"]))
        for grade in range(6):
            expected = str(modality["by_worst_grade"][str(grade)])
            expect(cell(page, name, f"grade-{grade}")).to_have_text(expected)
        expect(cell(page, name, "g3-count")).to_have_text(str(severe["count"]))
        expect(cell(page, name, "g3-rate")).to_have_text(pct(severe["rate"]))
        low, high = pct(severe["ci95_low"])[:-1], pct(severe["ci95_high"])
        expect(cell(page, name, "g3-ci")).to_have_text(f"{low}\N{EN DASH}{high}")
    rules = [r for r in trial.get("/v1/rules")["rules"] if r["kind"] in ("bayesian", "pocock")]
    assert any(r["status"] == "crossed" for r in rules)
    for rule in rules:
        card = page.locator(f"#rule-{rule['rule_id']}")
        latch = ", awaiting DSMB decision" if rule["awaiting_decision"] else ""
        expect(card.locator(".badge")).to_have_text(STATE_LABELS[rule["status"]] + latch)
        expect(card.locator('dd[data-field="x"]')).to_have_text(str(rule["x"]))
        expect(card.locator("svg.boundary-plot polyline.boundary")).to_have_count(1)
    assert "SITE-" not in page.title()
    shoot(page, "officer-board")
    shoot_sections(page, "officer", "alerts", "tables", "rules", "clocks", "sites", "dead-letters")

    chemo = next(m for m in api["modalities"] if m["modality"] == "chemotherapy")
    page.evaluate("window.notReloaded = true")
    assert trial.post("SITE-01", new_patient_with_grade3("SITE-01")).status_code == 201
    expect(cell(page, "chemotherapy", "exposed")).to_have_text(
        str(chemo["exposed"] + 1), timeout=10_000
    )
    expect(cell(page, "chemotherapy", "g3-count")).to_have_text(
        str(chemo["grade3_or_worse"]["count"] + 1)
    )
    assert page.evaluate("window.notReloaded") is True  # swapped in, not reloaded
    trial.stored["SITE-01"] += 3
    now = next(
        m for m in trial.get("/v1/toxicity")["modalities"] if m["modality"] == "chemotherapy"
    )
    expect(cell(page, "chemotherapy", "g3-rate")).to_have_text(pct(now["grade3_or_worse"]["rate"]))
    expect(page.locator("#live")).to_contain_text("Updated")
    page.locator("#tables").scroll_into_view_if_needed()
    shoot(page, "officer-board-after-new-event", full=False)


def acknowledged_by(trial: Trial, alert_id: str) -> str | None:
    alerts = trial.get("/v1/alerts?limit=1000")
    found = next(a["acknowledged_by"] for a in alerts if a["alert"]["derived_id"] == alert_id)
    return None if found is None else str(found)


def test_alerts_are_acknowledged_by_click_and_by_keyboard(trial: Trial, page_for: Any) -> None:
    page = page_for("officer")
    open_ids = [a["alert"]["derived_id"] for a in trial.get("/v1/alerts?unacknowledged=true")]
    assert len(open_ids) >= 2
    first, second = open_ids[-1], open_ids[-2]  # the board lists the newest first

    page.fill(f"#note-{first}", "seen; chair informed")
    page.click(f"#ack-{first}")
    expect(page.locator(f"#ack-{first}")).to_have_count(0)
    expect(page.locator("#live")).to_contain_text("acknowledged")
    assert acknowledged_by(trial, first) == "officer"

    page.focus(f"#note-{second}")
    page.keyboard.press("Tab")  # from the alert's note field to its button, by keyboard
    assert page.evaluate("document.activeElement.id") == f"ack-{second}"
    shoot(page, "officer-focus-on-acknowledge", full=False)
    page.keyboard.press("Enter")
    expect(page.locator(f"#ack-{second}")).to_have_count(0)
    assert acknowledged_by(trial, second) == "officer"
    # focus moved on to the next alert's button (or the section), not lost to <body>
    page.wait_for_function(
        "(() => { const id = document.activeElement && document.activeElement.id;"
        " return !!id && (id.startsWith('ack-') || id === 'alerts'); })()"
    )

    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("d")
    assert page.evaluate("document.activeElement.id") == "dead-letters"
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "rules"
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    shoot(page, "officer-keyboard-help", full=False)
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
    page.focus(f"#note-{open_ids[0]}")
    page.keyboard.type("a d r")  # typing a note does not jump around
    assert page.evaluate("document.activeElement.id") == f"note-{open_ids[0]}"
    page.goto(f"{trial.server.url}/board")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the safety data"


def test_a_site_sees_only_its_own_data(trial: Trial, page_for: Any) -> None:
    page = page_for("SITE-01")
    html = page.content()
    for other in SITES[1:]:
        assert other not in html
    for absent in ("#alerts", "#rules", "svg.boundary-plot", "form.ack", "form.decide"):
        expect(page.locator(absent)).to_have_count(0)
    # its own expedited-report clocks only (the clocks of other sites are not on the page)
    for row in page.locator("#clocks ~ table tbody tr").all():
        expect(row).to_contain_text(SITES[0])
    api = next(
        m
        for m in trial.get("/v1/toxicity", "SITE-01")["modalities"]
        if m["modality"] == "chemotherapy"
    )
    expect(cell(page, "chemotherapy", "exposed")).to_have_text(str(api["exposed"]))
    dead = page.locator("#dead-letter-list tbody tr")
    own = trial.get("/v1/rejections?limit=50", "SITE-01")
    assert own and dead.count() == len(own)
    assert {dead.nth(i).get_attribute("data-site") for i in range(dead.count())} == {"SITE-01"}
    health = page.locator("#submissions tbody tr")
    assert health.count() == 1
    expect(health.locator('td[data-field="events"]')).to_have_text(str(trial.stored["SITE-01"]))
    expect(health.locator('td[data-field="dead_letters"]')).to_have_text(
        str(trial.rejected["SITE-01"])
    )
    shoot(page, "site-01-board")
    shoot_sections(page, "site-01", "tables", "sites", "dead-letters")
    alert = trial.get("/v1/alerts?unacknowledged=true")[0]["alert"]["derived_id"]
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    response = page.request.post(  # with the site's own session cookie and CSRF token
        f"{trial.server.url}/board/alerts/{alert}/acknowledge",
        form={"csrf": csrf or ""},
        headers={"Origin": trial.server.url},
    )
    assert response.status == 403 and "sites see only their own data" in response.text()
    assert acknowledged_by(trial, alert) is None
