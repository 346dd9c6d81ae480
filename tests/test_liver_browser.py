"""The liver-safety page in a real browser (Debian's Chromium via Playwright, against
``safety-stream serve`` with a simulated trial, as tests/test_board_browser.py): the eDISH
plot's points lead to the patient's profile by keyboard and mouse, the page runs clean under
its CSP, and a site sees only its own patients. Screenshots go to test-artifacts/board/."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect
from test_board_browser import (  # the served trial, the browser and the login, shared
    ARTIFACTS,
    SITES,
    Trial,
    browser,
    page_for,
    shoot,
    trial,
)

__all__ = ["browser", "page_for", "trial"]  # fixtures, used by name

PATIENT = re.compile(r"SITE-0\d-\d{4}")


def test_an_edish_point_opens_the_patients_profile(trial: Trial, page_for: Any) -> None:
    page = page_for("officer")
    page.get_by_role("link", name="Liver").first.click()
    expect(page).to_have_url(re.compile(r"/board/liver$"))
    expect(page.locator("#edish-title")).to_be_visible()
    plot = page.locator("svg.edish-plot")
    expect(plot).to_have_attribute("role", "img")
    points = plot.locator("a")
    rows = page.locator("#edish-table tbody tr")
    assert points.count() == rows.count() > 10  # every point has its table row
    shoot(page, "liver")
    page.locator("#edish").screenshot(path=str(ARTIFACTS / "liver-edish.png"))

    # by keyboard: the first point is a link; Enter follows it
    href = points.first.get_attribute("href")
    assert href is not None and href.startswith("/board/patients/")
    points.first.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(href) + "$"))
    expect(page.locator("body")).to_contain_text(href.rsplit("/", 1)[1])

    # by mouse: the table's link for the same patient
    page.go_back()
    link = page.locator("#edish-table a").nth(1)
    target = link.get_attribute("href")
    assert target is not None
    link.click()
    expect(page).to_have_url(re.compile(re.escape(target) + "$"))


def test_a_site_sees_only_its_own_patients_on_the_liver_page(trial: Trial, page_for: Any) -> None:
    site = SITES[1]
    page = page_for(site)
    page.goto(f"{trial.server.url}/board/liver")
    expect(page.locator(".asof")).to_contain_text(f"showing site {site} only")
    seen = set(PATIENT.findall(page.locator("main").inner_text()))
    assert seen and all(p.startswith(site) for p in seen)
    # a point's link is to the site's own patient
    for href in page.locator("svg.edish-plot a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    ):
        assert href.startswith(f"/board/patients/{site}-")
