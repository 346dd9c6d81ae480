"""Drill-down in a real browser (Debian's Chromium via Playwright, against ``safety-stream serve``
in a child process, the simulated trial of test_board_browser posted by its sites):

- a safety officer follows a Critical crossing alert to the AEs the rule counted, one of them
  to its patient's profile, and from there to that AE's amendment history;
- a site sees only its own AEs, patients and report clocks, and another site's AE and patient
  ids by URL are 404, as an id that does not exist.

Screenshots go to /tmp/shots/ (looked at, not committed).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import test_board_browser as board
from playwright.sync_api import Page, expect
from test_board_browser import SITES, Trial

# the served trial, the browser and the logged-in pages of the board's own browser tests
trial, browser, page_for = board.trial, board.browser, board.page_for

SHOTS = Path("/tmp/shots")


def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def listing(trial: Trial, who: str, query: str = "") -> list[dict[str, Any]]:
    body = trial.get(f"/v1/adverse-events?limit=1000&{query}", who)
    assert body["next_after"] is None
    return list(body["adverse_events"])


def test_an_officer_walks_from_a_crossing_alert_to_an_aes_history(
    trial: Trial, page_for: Any
) -> None:
    page = page_for("officer")
    crossing = page.locator("#alerts ~ table tbody tr", has=page.locator(".badge.critical")).filter(
        has_text=re.compile("stopping boundary crossed", re.IGNORECASE)
    )
    expect(crossing.first).to_be_visible()
    crossing.first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "board-alert-links.png"))
    rule_link = crossing.first.locator('a[href^="/board/aes?rule="]')
    rule_id = rule_link.inner_text()
    rule = next(r for r in trial.get("/v1/rules")["rules"] if r["rule_id"] == rule_id)
    assert rule["status"] == "crossed"
    rule_link.click()

    expect(page).to_have_url(re.compile(r"/board/aes\?rule="))
    counted = listing(trial, "officer", f"rule={quote(rule_id)}")
    assert len({a["patient_id"] for a in counted}) == rule["x"]  # the patients behind x
    rows = page.locator("#ae-listing tbody tr")
    expect(rows).to_have_count(len(counted))
    assert [rows.nth(i).get_attribute("data-ae") for i in range(rows.count())] == [
        a["ae_id"] for a in counted
    ]
    expect(page.locator('[data-field="rule"]')).to_contain_text(rule["title"])
    shoot(page, "ae-listing-rule")

    amended = next(a for a in counted if a["amendments"] > 0)
    row = page.locator(f'#ae-listing tr[data-ae="{amended["ae_id"]}"]')
    expect(row.locator("th a code")).to_have_text(amended["ae_id"][:8])  # short id stays
    row.locator(f'a[href="/board/patients/{amended["patient_id"]}"]').click()

    expect(page).to_have_url(re.compile(rf"/board/patients/{amended['patient_id']}$"))
    profile = trial.get(f"/v1/patients/{amended['patient_id']}/profile")
    expect(page.locator("svg.patient-timeline")).to_have_count(1)
    expect(page.locator("svg.patient-timeline line.dose")).to_have_count(
        len(profile["administrations"])
    )
    expect(page.locator("#administrations tbody tr")).to_have_count(len(profile["administrations"]))
    expect(page.locator("#labs tbody tr")).to_have_count(len(profile["labs"]))
    expect(page.locator("#patient-aes tbody tr")).to_have_count(len(profile["adverse_events"]))
    shoot(page, "patient-profile")
    page.locator(f'#patient-aes tr[data-ae="{amended["ae_id"]}"] th a').click()

    expect(page).to_have_url(re.compile(rf"/board/aes/{amended['ae_id']}$"))
    history = trial.get(f"/v1/adverse-events/{amended['ae_id']}")
    expect(page.locator('[data-field="ae-id"]')).to_have_text(amended["ae_id"])  # the full id
    versions = page.locator("#ae-history tbody tr")
    expect(versions).to_have_count(len(history["versions"]))
    for i, version in enumerate(history["versions"]):
        expect(versions.nth(i)).to_have_attribute("data-event-type", version["event_type"])
        expect(versions.nth(i).locator('[data-field="reporter"]')).to_have_text(version["reporter"])
        expect(versions.nth(i).locator('[data-field="reason"]')).to_have_text(
            version["reason"] or "—"
        )
    shoot(page, "ae-history")


def test_the_listing_filters_by_form_and_exports_csv(trial: Trial, page_for: Any) -> None:
    page = page_for("officer")
    page.goto(f"{trial.server.url}/board/aes")
    page.select_option("#f-worst_grade", "3")
    page.select_option("#f-modality", "chemotherapy")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"worst_grade=3"))
    expected = listing(trial, "officer", "worst_grade=3&modality=chemotherapy")
    assert page.locator('[data-field="matching"]').inner_text().startswith(f"{len(expected)} AE")
    shown = page.locator("#ae-listing tbody tr")
    expect(shown).to_have_count(min(len(expected), 50))
    shoot(page, "ae-listing-filtered")
    csv = page.request.get(f"{trial.server.url}/board/aes.csv?worst_grade=3&modality=chemotherapy")
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text().strip().split("\r\n")
    assert len(lines) == len(expected) + 1 and lines[0].startswith("ae_id,patient_id")
    refused = page.request.get(f"{trial.server.url}/board/aes?grade=9")  # no console noise
    assert refused.status == 400 and "Filter <strong>grade</strong>" in refused.text()


def test_a_site_sees_only_its_own_records_and_404_for_others(trial: Trial, page_for: Any) -> None:
    own, other = SITES[0], SITES[1]
    page = page_for(own)
    for link in page.locator("#clocks ~ table a[href^='/board/aes/']").all()[:3]:
        answer = page.request.get(f"{trial.server.url}{link.get_attribute('href')}")
        assert answer.status == 200  # its own report clocks lead to its own AEs
    page.goto(f"{trial.server.url}/board/aes")
    mine = listing(trial, own)
    rows = page.locator("#ae-listing tbody tr")
    expect(rows).to_have_count(min(len(mine), 50))
    assert {rows.nth(i).get_attribute("data-site") for i in range(rows.count())} == {own}
    assert other not in page.content()
    shoot(page, "site-ae-listing")
    patient = mine[0]["patient_id"]
    page.goto(f"{trial.server.url}/board/patients/{patient}")
    expect(page.locator("svg.patient-timeline")).to_have_count(1)

    theirs = listing(trial, other)[0]
    for path in (f"/board/aes/{theirs['ae_id']}", f"/board/patients/{theirs['patient_id']}"):
        answer = page.request.get(f"{trial.server.url}{path}")
        assert answer.status == 404 and other not in answer.text()
        assert theirs["patient_id"] not in answer.text()
    nothing = page.request.get(f"{trial.server.url}/board/patients/NO-SUCH-PATIENT")
    assert nothing.status == 404
    # the rule filter and position cursor are trial-wide: refused for a site, not answered
    refused = page.request.get(f"{trial.server.url}/board/aes?rule=chemotherapy-related-g3")
    assert refused.status == 400


def test_a_toxicity_cell_leads_to_the_aes_behind_it(trial: Trial, page_for: Any) -> None:
    """Related grade >= 3 of a modality: its count is the patients of the AEs listed."""
    page = page_for("officer")
    chemo = next(
        m for m in trial.get("/v1/toxicity")["modalities"] if m["modality"] == "chemotherapy"
    )
    page.locator('#toxicity tr[data-modality="chemotherapy"] td[data-field="g3-count"] a').click()
    expect(page).to_have_url(re.compile(r"/board/aes\?modality=chemotherapy&worst_grade=3$"))
    behind = listing(trial, "officer", "modality=chemotherapy&worst_grade=3")
    assert len({a["patient_id"] for a in behind}) == chemo["grade3_or_worse"]["count"]
    expect(page.locator('[data-field="matching"]')).to_have_text(f"{len(behind)} AEs match")


def test_a_lab_sentinel_leads_to_the_patients_whose_labs_raised_it(
    trial: Trial, page_for: Any
) -> None:
    """Raised by lab results, not AEs: the listing names the patients; each one's profile has an
    ALT above 5 x ULN after their first PD-1 antibody dose (the sentinel's condition)."""
    rule = next(
        r for r in trial.get("/v1/rules")["rules"] if r["rule_id"] == "immune-hepatitis-g3-lab"
    )
    assert rule["raised"]
    page = page_for("officer")
    page.locator('#sentinels a[href="/board/aes?rule=immune-hepatitis-g3-lab"]').click()
    banner = page.locator('[data-field="rule"]')
    expect(banner).to_contain_text(rule["title"])
    patients = [a.inner_text() for a in banner.locator('a[href^="/board/patients/"]').all()]
    assert len(patients) == rule["raised"]
    for patient in patients:
        profile = trial.get(f"/v1/patients/{patient}/profile")
        first_dose = min(
            a["given_at"] for a in profile["administrations"] if a["modality"] == "immunotherapy"
        )
        assert any(
            lab["test"] == "ALT" and lab["times_uln"] > 5 and lab["collected_at"] >= first_dose
            for lab in profile["labs"]
        )
