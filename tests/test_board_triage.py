"""The board's triage, review marks and a site's own view, over the in-memory runtime:
alerts listed most severe first, triage steps by form post (CSRF as every board form, 403 for
a site, the refusal's reason), "new / changed since my last review" per reader, and a site's
overdue report, lateness record and what it must fix (and nothing of another site)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_board import BJ, SH, Board, csrf_of, history
from trial_builder import DIARRHEA, NEUTROPENIA, T0, Trial

from safety_stream.board.site_view import site_own
from safety_stream.events.derived import DerivedKind, derive
from safety_stream.monitoring.status import ReportClockOut
from safety_stream.projections.documents import StoredDerived
from safety_stream.projections.state import AeState
from safety_stream.runtime import build_memory_runtime

ORIGIN = {"Origin": "http://testserver"}


class Planted:
    """Derived events handed to the outbox's planner as a projection would (in this order)."""

    def __init__(self, *events: Any) -> None:
        self.events = list(events)

    def derived_events(
        self, rule_id: str | None = None, after: int = 0, limit: int | None = None
    ) -> list[StoredDerived]:
        found = [StoredDerived(n, e) for n, e in enumerate(self.events, 1) if n > after]
        return found if limit is None else found[:limit]


@pytest.fixture
def board() -> Iterator[Board]:
    runtime = build_memory_runtime()
    yield Board(runtime)
    runtime.close()


@pytest.fixture
def filled(board: Board) -> Board:
    board.post_trial(history())
    assert board.plan_alerts() > 0
    return board


def rows(html: str) -> list[tuple[str, str, str]]:
    """(alert id, severity, triage state) of the open alerts' rows, top to bottom."""
    table = html.split('id="alert-list"', 1)[1].split("</table>", 1)[0]
    return re.findall(
        r'<tr id="alert-[^"]+" data-alert="([^"]+)" data-severity="(\w+)" data-state="(\w+)"',
        table,
    )


def step(board: Board, alert: str, csrf: str, json: bool = False, **form: str) -> Any:
    headers = {**ORIGIN, **({"Accept": "application/json"} if json else {})}
    return board.client.post(
        f"/board/alerts/{alert}/triage", data={"csrf": csrf, **form}, headers=headers
    )


def test_a_critical_alert_is_listed_above_a_newer_info_one(board: Board) -> None:
    old_critical = derive("boundary.crossed", "r1", "v", "a", T0, 1, "crossed", {})
    newer_info = derive("boundary.cleared", "r1", "v", "b", T0, 2, "cleared", {})
    warning = derive("boundary.approached", "r2", "v", "c", T0, 3, "approaching", {})
    newest_critical = derive("sentinel.raised", "r3", "v", "d", T0, 4, "sentinel", {})
    board.runtime.outbox.plan(
        Planted(old_critical, newer_info, warning, newest_critical), datetime.now(UTC)
    )
    listed = rows(board.page("officer"))
    expected = [newest_critical, old_critical, warning, newer_info]  # by hand
    assert [r[0] for r in listed] == [str(e.derived_id) for e in expected]
    assert [r[1] for r in listed] == ["critical", "critical", "warning", "info"]


def test_an_officer_triages_an_alert_with_the_board_forms(filled: Board) -> None:
    filled.login("officer")
    html = filled.client.get("/board").text
    csrf = csrf_of(html)
    alert = rows(html)[0][0]
    assert f'id="triage-{alert}-under_review"' in html  # the one step from new
    assert f'id="triage-{alert}-closed"' not in html
    refused = step(filled, alert, csrf, to_state="closed", disposition="duplicate", note="x")
    assert refused.status_code == 409
    assert refused.text == "the alert is new: it may go to under_review, not closed"
    control = step(filled, alert, csrf, to_state="under_review", note="seen\x07")
    assert control.status_code == 400 and control.text.startswith("note: printable text only")
    started = step(filled, alert, csrf, to_state="under_review")
    assert started.status_code == 303 and started.headers["location"] == f"/board#alert-{alert}"
    escalated = step(filled, alert, csrf, True, to_state="escalated_to_dsmb", note="to chair")
    assert escalated.status_code == 200
    assert escalated.json()["state"] == "escalated_to_dsmb"
    assert escalated.json()["by"] == "officer"
    missing = step(filled, alert, csrf, True, to_state="closed", note="done")
    assert (
        missing.status_code == 400
        and "disposition: closing needs one of" in missing.json()["error"]
    )
    closed = step(filled, alert, csrf, to_state="closed", disposition="other", note="see minutes")
    assert closed.status_code == 303
    page = filled.client.get("/board").text
    assert alert not in [r[0] for r in rows(page)]  # closed: out of the open list
    closed_part = page.split('id="closed-alerts"', 1)[1]
    assert (
        f'data-alert="{alert}"' in closed_part
        and f'id="triage-{alert}-under_review"' in closed_part
    )
    history = closed_part.split(f'data-alert="{alert}"', 1)[1].split("</tr>", 1)[0]
    assert history.count("<li data-position=") == 3
    assert "officer</strong>: escalated to DSMB → closed (other)<br><q>see minutes</q>" in history
    stored = [e for e in filled.runtime.store.read() if e.event_type == "alert.triaged"]
    assert len(stored) == 3 and all('"triaged_by":"officer"' in e.payload for e in stored)
    submissions = page.split('id="submissions"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'<tr data-site="([^"]*)">', submissions) == [BJ, SH]  # not the DSMB's


def test_a_triage_post_needs_the_session_csrf_and_a_reader(filled: Board) -> None:
    filled.login("officer")
    alert = rows(filled.client.get("/board").text)[0][0]
    forged = step(filled, alert, "not-the-token", to_state="under_review")
    assert forged.status_code == 403
    site = filled.client.post(
        f"/board/alerts/{alert}/triage",
        data={"to_state": "under_review"},
        headers=filled.bearer(SH),
    )
    assert site.status_code == 403 and "sites see only their own data" in site.text
    marks = filled.client.post(
        "/board/marks", data={"kind": "alert", "ids": alert, "position": "1"},
        headers=filled.bearer(SH),
    )  # fmt: skip
    assert marks.status_code == 403
    assert [e for e in filled.runtime.store.read() if e.event_type == "alert.triaged"] == []


def review_badges(html: str) -> dict[str, str]:
    """alert id -> "new"/"changed" for the open alerts that carry a review marker."""
    table = html.split('id="alert-list"', 1)[1].split("</table>", 1)[0]
    found = {}
    for row in table.split("<tr id=")[1:]:
        alert = row.split('data-alert="', 1)[1].split('"', 1)[0]
        badge = re.search(
            r'data-field="review" title="[^"]+"><span aria-hidden="true">●</span> (\w+)<', row
        )
        if badge:
            found[alert] = badge.group(1)
    return found


def test_new_and_changed_since_my_last_review_are_per_reader(filled: Board) -> None:
    filled.login("officer")
    html = filled.client.get("/board").text
    alerts = [r[0] for r in rows(html)]
    assert review_badges(html) == dict.fromkeys(alerts, "new")
    position = re.search(r'name="position" value="(\d+)"', html)
    assert position is not None and int(position.group(1)) == filled.runtime.store.head()
    numbers = re.search(r'name="through" value="(\d+)"', html)
    assert numbers is not None and int(numbers.group(1)) == len(alerts)  # numbered 1, 2, ...
    marked = filled.client.post(
        "/board/marks",
        data={"csrf": csrf_of(html), "kind": "alert", "through": numbers.group(1),
              "position": position.group(1), "next": "/board#alerts"},
        headers={**ORIGIN, "Accept": "application/json"},
    )  # fmt: skip
    assert marked.status_code == 200 and marked.json()["items"] == len(alerts)
    html = filled.client.get("/board").text
    assert review_badges(html) == {} and 'id="mark-all-alerts"' not in html
    # the DSMB member has not reviewed anything: still all new for them
    assert review_badges(filled.page("dsmb")) == dict.fromkeys(alerts, "new")
    # a step by someone else changes the alert after the officer's mark
    filled.runtime.triage.step(filled.runtime.credentials.authenticate(filled.tokens["dsmb"]),  # type: ignore[arg-type]
                               uuid.UUID(alerts[0]), "under_review")  # fmt: skip
    assert review_badges(filled.client.get("/board").text) == {alerts[0]: "changed"}
    # ... while the one who took the step has reviewed it as it now stands
    assert review_badges(filled.page("dsmb")) == dict.fromkeys(alerts[1:], "new")
    stale = filled.client.post(
        "/board/marks",
        data={"csrf": csrf_of(html), "kind": "alert", "ids": alerts[0], "position": "99999"},
        headers={**ORIGIN, "Accept": "application/json"},
    )
    assert stale.status_code == 400 and "beyond the log's head" in stale.json()["error"]


# --- a site's own view -----------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_site_sees_its_overdue_report_its_lateness_and_what_to_fix(tmp_path: Any) -> None:
    """SH records a serious, unexpected, chemotherapy-related AE on day 3 and sends it on day 5
    (48 h late); its 15-day report clock starts at receipt (day 5) and has run out by day 40,
    when the server next hears from anyone. BJ has an open clock of its own, not shown to SH."""
    clock = Clock(T0 + timedelta(days=5, hours=1))
    runtime = build_memory_runtime(clock=clock)
    board = Board(runtime)
    try:
        trial = Trial()
        trial.enrol("SH-1", 0, SH)
        trial.treat("SH-1", "chemotherapy", 1, SH)
        late = trial.ae("SH-1", 3, *DIARRHEA, 3, ct="probable", site=SH,
                        seriousness=["hospitalisation"], expectedness="unexpected")  # fmt: skip
        trial.ae("SH-1", 4, *NEUTROPENIA, 2, ct="possible", site=SH)
        assert board.post_events(SH, [e.model_dump_json() for e in trial.events]).status_code == 201
        assert board.post_events(SH, ['{"not": "an event"}']).status_code == 422
        clock.now = T0 + timedelta(days=40)
        other = Trial()
        other.enrol("BJ-1", 38, BJ)
        other.treat("BJ-1", "chemotherapy", 38, BJ)
        bj_sae = other.ae("BJ-1", 39, *DIARRHEA, 3, ct="probable", site=BJ,
                          seriousness=["hospitalisation"], expectedness="unexpected")  # fmt: skip
        assert board.post_events(BJ, [e.model_dump_json() for e in other.events]).status_code == 201

        html = board.page(SH)
        own = html.split('<section aria-labelledby="site-own">', 1)[1].split("</section>", 1)[0]
        assert "What CN-SH-01 must fix" in own
        todo = own.split('id="site-todo"', 1)[1].split("</ul>", 1)[0]
        assert f'title="AE {late}"' in todo and "late by" in todo
        # aware at receipt, day 5 01:00 UTC = 2026-01-06 09:00 in Shanghai (the plan's zone);
        # due at the end of calendar day 15 after it there: 2026-01-21 23:59:59.999999 +08:00
        due = datetime(2026, 1, 21, 15, 59, 59, 999999, tzinfo=UTC)
        assert "was due 2026-01-21 15:59 UTC" in todo
        # late by: from the due time to the server's clock (day 40 00:00 UTC): 19 d 8 h
        assert (clock.now - due) // timedelta(hours=1) == 19 * 24 + 8
        assert "late by 19 d 8 h" in todo
        assert "1 rejected record" in todo
        figures = dict(re.findall(r'data-field="(site-\w+)">(\d+)<', own))
        assert figures == {
            "site-patients": "1",
            "site-aes": "2",
            "site-clocks": "1",
            "site-late": "1",
        }
        late_row = own.split('id="site-late"', 1)[1].split("</table>", 1)[0]
        assert f'data-ae="{late}"' in late_row and "Diarrhea, grade 3" in late_row
        assert 'data-field="late-by">2 d 1 h<' in late_row  # day 3 00:00 -> day 5 01:00
        assert BJ not in html and bj_sae not in html and 'id="alerts"' not in html
        # the BJ site sees its own open clock with the hours left, and nothing of SH's
        bj = board.page(BJ)
        assert f'data-ae="{bj_sae}"' in bj and late not in bj and SH not in bj
        assert "Nothing to fix: no overdue report, no rejected record." in bj
        # aware day 40 = 2026-02-10 08:00 in Shanghai, due 2026-02-25 23:59:59.999999 there
        # (15:59:59.999999 UTC): 15 d 15 h (and 59 min) left on the server's clock
        assert 'data-field="hours">15 d 15 h left<' in bj
        # readers do not get a site's own view
        assert 'aria-labelledby="site-own"' not in board.page("officer")
    finally:
        runtime.close()


def ae_markers(html: str) -> dict[str, str]:
    """AE id -> "new"/"changed" for the listed AEs that carry a review marker."""
    table = html.split('id="ae-listing"', 1)[1].split("</table>", 1)[0]
    found = {}
    for row in table.split("<tr data-ae=")[1:]:
        ae_id = row.split('"', 2)[1]
        marker = re.search(
            r'data-field="review" title="[^"]+"><span aria-hidden="true">●</span> (\w+)<', row
        )
        if marker:
            found[ae_id] = marker.group(1)
    return found


def test_the_ae_listing_shows_new_and_changed_per_reader(filled: Board) -> None:
    stored = [json.loads(s.payload) for s in filled.runtime.store.read()]  # the log itself
    reported = {e["event_id"] for e in stored if e["event_type"] == "ae.reported"}
    filled.login("officer")
    html = filled.client.get("/board/aes").text
    assert ae_markers(html) == dict.fromkeys(reported, "new")
    ids = re.search(r'name="ids" value="([^"]+)"', html)
    position = re.search(r'name="position" value="(\d+)"', html)
    assert ids is not None and position is not None
    assert set(ids.group(1).split(",")) == reported
    done = filled.client.post(
        "/board/marks",
        data={"csrf": csrf_of(html), "kind": "ae", "ids": ids.group(1),
              "position": position.group(1), "next": "/board/aes?grade=3"},
        headers=ORIGIN,
    )  # fmt: skip
    assert done.status_code == 303 and done.headers["location"] == "/board/aes?grade=3"
    assert ae_markers(filled.client.get("/board/aes").text) == {}
    # the site corrects one AE: changed for the officer, still new for the DSMB member
    corrected = next(e for e in stored if e["event_type"] == "ae.reported" and e["site_id"] == BJ)
    update = Trial()
    update.update(corrected["patient_id"], 30, corrected["event_id"], site=BJ, grade=1)
    assert filled.post_events(BJ, [e.model_dump_json() for e in update.events]).status_code == 201
    assert ae_markers(filled.client.get("/board/aes").text) == {corrected["event_id"]: "changed"}
    assert ae_markers(filled.page("dsmb", "/board/aes")) == dict.fromkeys(reported, "new")
    site = filled.page(SH, "/board/aes")
    assert ae_markers(site) == {} and 'id="mark-all-aes"' not in site


def test_a_sites_own_view_orders_its_clocks_and_counts_by_hand() -> None:
    """The pure view on a hand-made case: overdue clocks first (the most late first), then open
    ones by due time; only the site's own clocks and AEs; hours counted to the server's clock."""
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def clock(ae: str, site: str, due_hours: float, state: str) -> ReportClockOut:
        return ReportClockOut(ae_id=ae, site_id=site, aware_at=now - timedelta(days=20),
                              due=now + timedelta(hours=due_hours), state=state,
                              fatal_or_life_threatening=False)  # fmt: skip

    def ae(site: str, status: str = "open") -> AeState:
        return AeState(uuid.uuid4(), "P", site, "Diarrhea", "GI", 3, now.date(), {}, ["death"],
                       "unexpected", False, now - timedelta(days=3), status=status,  # type: ignore[arg-type]
                       course=[3])  # fmt: skip

    aes = {a.ae_id: a for a in (ae(SH), ae(SH, "retracted"), ae(BJ))}
    mine = [a for a in aes.values() if a.site_id == SH]
    clocks = [
        clock("a", SH, 5, "open"), clock("b", SH, -30, "overdue"), clock("c", SH, -50, "overdue"),
        clock("d", SH, 1, "open"), clock("e", SH, -1, "closed"), clock("f", BJ, -99, "overdue"),
    ]  # fmt: skip
    received = {str(mine[0].ae_id): now - timedelta(hours=20)}
    own = site_own(SH, 2, aes, clocks, [mine[0].ae_id, list(aes)[2]], received, 3, now)
    assert [(c.clock.ae_id, c.span) for c in own.clocks] == [
        ("c", "2 d 2 h"),
        ("b", "30 h"),
        ("d", "1 h"),
        ("a", "5 h"),
    ]
    assert [c.clock.ae_id for c in own.overdue] == ["c", "b"] and own.to_fix == 2 + 3
    assert (own.patients, own.aes) == (2, 1)  # the retracted one and BJ's are not counted
    (late,) = own.late  # BJ's late AE is not SH's
    assert (late.ae_id, late.hours_late, late.late_text) == (str(mine[0].ae_id), 52.0, "2 d 4 h")


def test_mark_all_shown_marks_every_alert_up_to_the_number_however_many(
    board: Board, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alerts are read in pages (here of 2): every alert numbered up to ``through`` is
    marked, not only those of a first page; one raised after (a higher number) is not."""
    from safety_stream.board import triage_routes

    monkeypatch.setattr(triage_routes, "MARK_ALERTS_PAGE", 2)
    board.post_trial(history())
    kinds: list[DerivedKind] = ["boundary.cleared", "sentinel.raised", "boundary.approached"] * 3
    planted = [derive(k, f"r{n}", "v", f"k{n}", T0, n, k, {}) for n, k in enumerate(kinds, 1)]
    board.runtime.outbox.plan(Planted(*planted), datetime.now(UTC))
    board.login("officer")
    html = board.client.get("/board").text
    alerts = [r[0] for r in rows(html)]
    numbers = {str(v.alert.derived_id): v.number for v in board.runtime.outbox.alerts()}
    assert sorted(numbers[a] for a in alerts) == list(range(1, len(planted) + 1))
    through = len(planted) - 1  # all shown but the last raised
    position = re.search(r'name="position" value="(\d+)"', html)
    assert position is not None
    marked = board.client.post(
        "/board/marks",
        data={"csrf": csrf_of(html), "kind": "alert", "through": str(through),
              "position": position.group(1)},
        headers={**ORIGIN, "Accept": "application/json"},
    )  # fmt: skip
    assert marked.status_code == 200 and marked.json() == {"marked": through, "items": through}
    last = str(planted[-1].derived_id)
    assert review_badges(board.client.get("/board").text) == {last: "new"}
