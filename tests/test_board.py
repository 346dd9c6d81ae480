"""The safety board over the in-memory runtime: login and sessions, what each role sees, the
acknowledge form and its forgery checks, and the live change stream."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient
from trial_builder import CHEMO_CROSSES, DIARRHEA, FOLLOWED_DAY, NAUSEA, NEUTROPENIA, Trial

from safety_stream.api.app import create_app
from safety_stream.auth import Principal
from safety_stream.board.health import SiteSubmissions, SubmissionTally
from safety_stream.board.live import change_events
from safety_stream.board.session import COOKIE, SessionStore
from safety_stream.board.view import Snapshot, build_view, change_stamp
from safety_stream.events import encode_json
from safety_stream.monitoring.status import ReportClockOut, RuleStatus
from safety_stream.runtime import Runtime, build_memory_runtime
from safety_stream.store.base import Rejection

SH, BJ = "CN-SH-01", "CN-BJ-02"


def history() -> Trial:
    """Shanghai: patients with a chemotherapy-related grade 3 neutropenia, the first to
    complete their 56-day chemotherapy window (crosses the chemotherapy rule, 6 of 6). Beijing:
    3 patients on chemotherapy from the next day, one with a related grade 2 diarrhoea, one
    with an unrelated grade 3 nausea, one with nothing. A lab on day 200 moves the clock past
    every window."""
    trial = Trial()
    for i in range(1, CHEMO_CROSSES + 1):
        patient = f"SH-{i:03d}"
        trial.enrol(patient, 0, SH)
        trial.treat(patient, "chemotherapy", 1, SH)
        trial.ae(patient, 3 + i, *NEUTROPENIA, 3, ct="possible", site=SH)
    for i in range(1, 4):
        patient = f"BJ-{i:03d}"
        trial.enrol(patient, 0, BJ)
        trial.treat(patient, "chemotherapy", 2, BJ)
    trial.ae("BJ-001", 5, *DIARRHEA, 2, ct="probable", site=BJ)
    trial.ae("BJ-002", 6, *NAUSEA, 3, site=BJ)
    trial.lab("BJ-003", FOLLOWED_DAY, "ALT", 1.0, BJ)
    return trial


class Board:
    """A TestClient over a memory runtime with a token per role, and helpers to post."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.client = TestClient(create_app(runtime), follow_redirects=False)
        self.tokens = {
            SH: runtime.credentials.add(SH, "site", SH),
            BJ: runtime.credentials.add(BJ, "site", BJ),
            "officer": runtime.credentials.add("officer", "safety_officer", None),
            "dsmb": runtime.credentials.add("dsmb", "dsmb", None),
        }

    def bearer(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def post_events(self, who: str, lines: list[str]) -> Any:
        return self.client.post(
            "/v1/events",
            content="\n".join(lines).encode(),
            headers={**self.bearer(who), "Content-Type": "application/x-ndjson"},
        )

    def post_trial(self, trial: Trial) -> None:
        for site in (SH, BJ):
            lines = [encode_json(e) for e in trial.events if e.site_id == site]
            assert self.post_events(site, lines).status_code == 201

    def plan_alerts(self) -> int:
        return self.runtime.outbox.plan(self.runtime.derived, datetime.now(UTC))

    def login(self, who: str) -> Any:
        return self.client.post(
            "/board/login",
            data={"token": self.tokens[who], "next": "/board"},
            headers={"Origin": "http://testserver"},
        )

    def page(self, who: str, path: str = "/board") -> str:
        response = self.client.get(path, headers=self.bearer(who))
        assert response.status_code == 200, response.text
        return str(response.text)


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


class Cells(HTMLParser):
    """Text of every ``<td data-field>`` of one table, by the row's data-modality/-window."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.row, self.field = table_id, False, "", ""
        self.found: dict[str, dict[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = dict(attrs)
        if tag == "table":
            self.inside = given.get("id") == self.table_id
        elif self.inside and tag == "tr" and given.get("data-modality"):
            self.row = f"{given['data-modality']}/{given.get('data-window') or ''}".rstrip("/")
        elif self.inside and self.row and given.get("data-field"):
            self.field = given["data-field"] or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif tag in ("td", "dd"):
            self.field = ""

    def handle_data(self, data: str) -> None:
        if self.field:
            row = self.found.setdefault(self.row, {})
            row[self.field] = row.get(self.field, "") + data.strip()


def cells(html: str, table_id: str) -> dict[str, dict[str, str]]:
    parser = Cells(table_id)
    parser.feed(html)
    return parser.found


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


# --- login and sessions ----------------------------------------------------------------------


def test_without_credentials_the_board_sends_people_to_log_in(board: Board) -> None:
    page = board.client.get("/board")
    assert page.status_code == 303 and page.headers["location"] == "/board/login"
    for path in ("/board/panels", "/board/stream"):
        response = board.client.get(path)
        assert response.status_code == 401
        assert "log in at /board/login" in response.text
    form = board.client.get("/board/login")
    assert form.status_code == 200
    assert 'type="password"' in form.text and 'name="token"' in form.text


def test_login_sets_an_httponly_samesite_strict_session_cookie(board: Board) -> None:
    response = board.login("officer")
    assert response.status_code == 303 and response.headers["location"] == "/board"
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith(f"{COOKIE}=")
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/board" in cookie.lower()
    assert "secure" not in attributes  # plain http here
    assert board.tokens["officer"] not in cookie  # a session id, never the API token
    page = board.client.get("/board")  # the client now sends the cookie
    assert page.status_code == 200
    assert "officer · safety officer" in page.text


def test_the_session_cookie_is_secure_over_https(board: Board) -> None:
    client = TestClient(board.client.app, base_url="https://board.example", follow_redirects=False)
    response = client.post(
        "/board/login",
        data={"token": board.tokens["dsmb"]},
        headers={"Origin": "https://board.example"},
    )
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()


def test_a_wrong_token_is_refused_with_a_clear_message(board: Board) -> None:
    response = board.client.post(
        "/board/login", data={"token": "not-a-token"}, headers={"Origin": "http://testserver"}
    )
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "That token is not recognised" in response.text
    assert 'aria-invalid="true"' in response.text
    empty = board.client.post("/board/login", data={"token": " "})
    assert empty.status_code == 400 and "Paste a token" in empty.text


def test_alert_links_lead_through_the_login_back_to_the_alert(board: Board) -> None:
    alert = "6f1e9a0c-52b7-4c1e-9d0a-5afe57e0d3a1"
    link = board.client.get(f"/board/alerts/{alert}")  # what alert messages link to
    assert link.status_code == 303
    assert link.headers["location"] == f"/board/login?next=/board%23alert-{alert}"
    form = board.client.get(link.headers["location"])
    assert f'name="next" value="/board#alert-{alert}"' in form.text
    response = board.client.post(
        "/board/login", data={"token": board.tokens["officer"], "next": f"/board#alert-{alert}"}
    )
    assert response.headers["location"] == f"/board#alert-{alert}"
    foreign = board.client.post(
        "/board/login",
        data={"token": board.tokens["officer"], "next": "https://evil.example/board"},
    )
    assert foreign.headers["location"] == "/board"  # never off the board


def test_logout_ends_the_session(board: Board) -> None:
    board.login("officer")
    page = board.client.get("/board")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    out = board.client.post(
        "/board/logout", data={"csrf": csrf.group(1)}, headers={"Origin": "http://testserver"}
    )
    assert out.status_code == 303 and out.headers["location"] == "/board/login"
    assert board.client.get("/board").status_code == 303


def test_sessions_expire_when_idle_and_after_their_lifetime() -> None:
    now = [0.0]
    sessions = SessionStore(clock=lambda: now[0], idle_seconds=60, lifetime_seconds=300)
    officer = Principal("officer", "safety_officer", None)
    first = sessions.open(officer)
    now[0] = 50
    assert sessions.find(first) is not None  # used: the idle time starts again
    now[0] = 105
    assert sessions.find(first) is not None
    now[0] = 170
    assert sessions.find(first) is None  # 65 s unused
    second = sessions.open(officer)
    for step in range(1, 7):  # used every 55 s, yet over after 300 s in all
        now[0] = 170 + 55 * step
        assert (sessions.find(second) is not None) == (55 * step <= 300)
    third = sessions.open(officer)
    now[0] = 520
    assert sessions.find(third, touch=False) is not None  # the page refreshing itself...
    now[0] = 575
    assert sessions.find(third, touch=False) is None  # ...does not keep it alive: 55 + 55 s


def test_an_oversized_form_is_refused_before_it_is_read(filled: Board) -> None:
    big = b"token=" + b"x" * 20_000
    answer = filled.client.post(
        "/board/login", content=big,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert answer.status_code == 413
    assert "form larger than" in answer.text


def test_pages_are_not_cached_and_run_only_their_own_script(filled: Board) -> None:
    response = filled.client.get("/board", headers=filled.bearer("officer"))
    policy = response.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in response.text
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in policy
    title = re.search(r"<title>(.*)</title>", response.text)
    assert title is not None and title.group(1) == "SPARKLE-L safety board"


# --- what each role sees ---------------------------------------------------------------------


def test_a_reader_sees_the_api_numbers_the_rules_and_the_alerts(filled: Board) -> None:
    html = filled.page("officer")
    api = filled.client.get("/v1/toxicity", headers=filled.bearer("officer")).json()
    table = cells(html, "toxicity")
    for modality in api["modalities"]:
        row = table[modality["modality"]]
        assert row["exposed"] == str(modality["exposed"])
        assert row["patients_with_related_ae"] == str(modality["patients_with_related_ae"])
        for grade in range(6):
            assert row[f"grade-{grade}"] == str(modality["by_worst_grade"][str(grade)])
        severe = modality["grade3_or_worse"]
        assert row["g3-count"] == str(severe["count"])
        assert row["g3-rate"] == pct(severe["rate"])
        if severe["n"]:
            low, high = pct(severe["ci95_low"])[:-1], pct(severe["ci95_high"])
            assert row["g3-ci"] == f"{low}\N{EN DASH}{high}"
    # and the numbers are the history's: 9 on chemotherapy, 6 with a related grade 3
    assert CHEMO_CROSSES == 6
    chemo = table["chemotherapy"]
    assert (chemo["exposed"], chemo["g3-count"], chemo["g3-rate"]) == ("9", "6", "66.7%")
    assert (chemo["grade-0"], chemo["grade-2"], chemo["grade-3"]) == ("2", "1", "6")
    assert table["radiotherapy"]["exposed"] == "0"
    evaluable = cells(html, "evaluable")
    assert evaluable["chemotherapy/chemo_first_4_cycles"]["evaluable"] == "9"

    rules = filled.client.get("/v1/rules", headers=filled.bearer("officer")).json()["rules"]
    chemo_rule = next(r for r in rules if r["rule_id"] == "chemotherapy-related-g3")
    # every window has elapsed (day 200): all 9 are evaluable; the rule crossed when the first
    # 6 to complete their window (Shanghai's) were all counted, and stays crossed
    assert chemo_rule["status"] == "crossed" and (chemo_rule["n"], chemo_rule["x"]) == (9, 6)
    card = re.search(
        r'<article class="rule crossed" id="rule-chemotherapy-related-g3".*?</article>', html, re.S
    )
    assert card is not None
    assert '<span class="badge crossed">Crossed, awaiting DSMB decision</span>' in card.group(0)
    assert '<dd data-field="n">9</dd>' in card.group(0)
    assert '<dd data-field="x">6</dd>' in card.group(0)
    assert '<dd data-field="crossed-at">6</dd>' in card.group(0)
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="boundary-plot"' in card.group(0)
    assert html.count('class="boundary-plot"') == sum(
        r["kind"] in ("bayesian", "pocock") for r in rules
    )

    alerts = filled.client.get("/v1/alerts", headers=filled.bearer("officer")).json()
    assert alerts
    for alert in alerts:
        assert f'id="ack-{alert["alert"]["derived_id"]}"' in html
    for who in (SH, BJ):  # both sites' rows in the health table
        assert f'data-site="{who}"' in html


def test_a_site_sees_only_its_own_rows_and_no_rules_or_alerts(filled: Board) -> None:
    filled.post_events(SH, ['{"event_type": "ae.reported", "site_id": "CN-SH-01"}'])
    filled.post_events(BJ, ['{"event_type": "ae.reported", "patient_id": "BJ-009"}'])
    for html in (filled.page(BJ), filled.page(BJ, "/board/panels")):
        assert SH not in html and "SH-00" not in html  # no other site's or patients' ids
        for absent in ('id="alerts"', 'id="rules"', "<svg", 'id="ack-'):
            assert absent not in html
        assert "No report clock is running." in html  # its own clocks only: none here
        table = cells(html, "toxicity")
        chemo = table["chemotherapy"]
        assert (chemo["exposed"], chemo["patients_with_related_ae"]) == ("3", "1")
        assert (chemo["grade-0"], chemo["grade-2"], chemo["g3-count"]) == ("2", "1", "0")
        assert "BJ-009" in html  # its own dead letter, with its problems
        assert "log position" not in html and "monitoring clock" not in html
    api = filled.client.get("/v1/toxicity", headers=filled.bearer(BJ)).json()
    chemo_api = next(m for m in api["modalities"] if m["modality"] == "chemotherapy")
    assert chemo_api["exposed"] == 3
    assert filled.client.get("/v1/rules", headers=filled.bearer(BJ)).status_code == 403


def test_submission_health_counts_each_sites_events_and_dead_letters(filled: Board) -> None:
    trial = history()
    filled.post_events(BJ, ['{"event_type": "nonsense"}', '{"event_type": "ae.reported"}'])
    html = filled.page("officer")
    health = re.findall(
        r'<tr data-site="([^"]*)">.*?data-field="events">(\d+)<.*?data-field="dead_letters">(\d+)<',
        html.split('id="submissions"')[1].split("</table>")[0],
        re.S,
    )
    expected = {site: sum(e.site_id == site for e in trial.events) for site in (SH, BJ)}
    assert {site: int(events) for site, events, _ in health} == expected
    assert {site: int(dead) for site, _, dead in health} == {SH: 0, BJ: 2}
    sh_view = filled.page(SH)
    assert BJ not in sh_view and "No dead letters." in sh_view


def test_the_view_model_keeps_a_site_to_its_own_rows_whatever_it_is_given() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    rejection = Rejection(1, now, "http:x", BJ, "line 1", b'{"patient_id": "BJ-1"}', [])
    clocks = [
        ReportClockOut(ae_id=ae, site_id=site, aware_at=now, due=now, state="open",
                       fatal_or_life_threatening=False)
        for ae, site in (("ae-sh", SH), ("ae-bj", BJ))
    ]  # fmt: skip
    expedited = RuleStatus(rule_id="x", title="x", kind="expedited_report", illustrative=False,
                           status="approached", clocks=clocks)  # fmt: skip
    snapshot = Snapshot(
        trial_id="SPARKLE-L", trial_title="t", registration="NCT0", plan_version="v",
        related_at_least="possible", as_of=now, stamp="s", position=3, clock=now,
        toxicity=[], patients_by_site={SH: 2, BJ: 1}, statuses=[expedited], plots={},
        late_saes_by_site={SH: 1, BJ: 4}, open_alerts=[], acknowledged_alerts=2,
        submissions=[SiteSubmissions(SH, 5), SiteSubmissions(BJ, 3)],
        dead_letters=[rejection, Rejection(2, now, "http:y", SH, "line 1", b"{}", [])],
        quarantined=[7],
    )  # fmt: skip
    site = build_view(snapshot, Principal(SH, "site", SH))
    assert [s.submissions.site_id for s in site.sites] == [SH]
    assert [(s.patients, s.late_saes) for s in site.sites] == [(2, 1)]
    assert [d.id for d in site.dead_letters] == [2]
    assert (site.rules, site.alerts, site.can_acknowledge) == (None, None, False)
    assert [c.ae_id for c in site.clocks or []] == ["ae-sh"]  # its own report clocks only
    assert (site.position, site.clock) == (None, None)  # how much the others posted: not theirs
    assert site.acknowledged_alerts == 0
    assert site.quarantined == []  # the trial-wide log is not a site's
    reader = build_view(snapshot, Principal("dsmb", "dsmb", None))
    assert len(reader.sites) == 2 and len(reader.dead_letters) == 2 and reader.can_acknowledge
    assert reader.quarantined == [7]


# --- acknowledging ---------------------------------------------------------------------------


def open_alert_ids(board: Board) -> list[str]:
    return [str(v.alert.derived_id) for v in board.runtime.outbox.alerts(unacknowledged=True)]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_an_officer_acknowledges_an_alert_with_the_form(filled: Board) -> None:
    filled.login("officer")
    html = filled.client.get("/board").text
    first, second, *_ = open_alert_ids(filled)
    form = {"csrf": csrf_of(html), "note": "seen, DSMB chair informed"}
    done = filled.client.post(
        f"/board/alerts/{first}/acknowledge", data=form, headers={"Origin": "http://testserver"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/board#alerts"
    by_js = filled.client.post(
        f"/board/alerts/{second}/acknowledge",
        data={"csrf": form["csrf"]},
        headers={"Referer": "http://testserver/board", "Accept": "application/json"},
    )
    assert by_js.status_code == 200 and by_js.json()["acknowledged_by"] == "officer"
    api = filled.client.get("/v1/alerts", headers=filled.bearer("officer")).json()
    acked = {a["alert"]["derived_id"]: a["acknowledged_by"] for a in api}
    assert acked[first] == acked[second] == "officer"
    after = filled.client.get("/board").text
    assert f'id="ack-{first}"' not in after and f'id="ack-{second}"' not in after
    assert "2 acknowledged earlier" in after or "(2 acknowledged)" in after


def test_a_site_cannot_acknowledge_alerts(filled: Board) -> None:
    alert = open_alert_ids(filled)[0]
    refused = filled.client.post(
        f"/board/alerts/{alert}/acknowledge", data={}, headers=filled.bearer(SH)
    )
    assert refused.status_code == 403 and "sites see only their own data" in refused.text
    assert alert in open_alert_ids(filled)


def test_forged_posts_are_refused(filled: Board) -> None:
    filled.login("officer")
    csrf = csrf_of(filled.client.get("/board").text)
    alert = open_alert_ids(filled)[0]
    path = f"/board/alerts/{alert}/acknowledge"
    cases: list[tuple[dict[str, str], dict[str, str], str]] = [
        ({"csrf": csrf}, {"Origin": "http://evil.example"}, "cross-origin"),
        ({"csrf": csrf}, {"Referer": "http://evil.example/page"}, "cross-origin"),
        ({"csrf": csrf}, {}, "does not say where it came from"),
        ({"csrf": "guess"}, {"Origin": "http://testserver"}, "CSRF"),
        ({}, {"Origin": "http://testserver"}, "CSRF"),
    ]
    for form, headers, reason in cases:
        response = filled.client.post(path, data=form, headers=headers)
        assert response.status_code == 403 and reason in response.text, (headers, response.text)
    assert alert in open_alert_ids(filled)
    login = filled.client.post(
        "/board/login", data={"token": filled.tokens["officer"]}, headers={"Origin": "null"}
    )
    assert login.status_code == 303  # an opaque origin names no foreign host ...
    foreign = filled.client.post(
        "/board/login",
        data={"token": filled.tokens["officer"]},
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status_code == 403  # ... a foreign one is refused
    # a bearer token is never sent by a browser on its own: no CSRF token needed
    scripted = filled.client.post(
        path, headers={**filled.bearer("dsmb"), "Accept": "application/json"}
    )
    assert scripted.status_code == 200 and scripted.json()["acknowledged_by"] == "dsmb"
    unknown = filled.client.post(
        "/board/alerts/6f1e9a0c-52b7-4c1e-9d0a-5afe57e0d3a1/acknowledge",
        headers=filled.bearer("dsmb"),
    )
    assert unknown.status_code == 404


# --- live updates ----------------------------------------------------------------------------


async def collect(events: Any, count: int) -> list[str]:
    out = []
    async for message in events:
        out.append(message)
        if len(out) == count:
            break
    return out


async def never_disconnected() -> bool:
    return False


def test_the_stream_announces_a_change_after_a_new_ingest(filled: Board) -> None:
    officer = Principal("officer", "safety_officer", None)
    tally = SubmissionTally()
    before = change_stamp(filled.runtime, officer, tally)

    async def run() -> list[str]:
        events = change_events(
            lambda: change_stamp(filled.runtime, officer, tally),
            before,
            never_disconnected,
            check_seconds=0.01,
            stream_seconds=5,
        )
        first = await collect(events, 1)
        trial = Trial()
        trial.enrol("SH-101", 40, SH)
        filled.post_events(SH, [encode_json(e) for e in trial.events])
        return first + await collect(events, 1)

    preamble, change = asyncio.run(run())
    assert preamble.startswith("retry: ")
    after = change_stamp(filled.runtime, officer, tally)
    assert after != before
    assert change == f"id: {after}\nevent: change\ndata: {after}\n\n"


def test_the_stream_is_quiet_without_changes_and_ends_by_itself(filled: Board) -> None:
    officer = Principal("officer", "safety_officer", None)
    tally = SubmissionTally()
    now = change_stamp(filled.runtime, officer, tally)

    async def run(since: str | None) -> list[str]:
        events = change_events(
            lambda: change_stamp(filled.runtime, officer, tally),
            since,
            never_disconnected,
            check_seconds=0.01,
            stream_seconds=0.1,
        )
        return [message async for message in events]

    assert len(asyncio.run(run(now))) == 1  # the preamble only
    assert len(asyncio.run(run(None))) == 1
    missed = asyncio.run(run("r0.0.0.0"))  # a client that saw an older state hears at once
    assert missed[1] == f"id: {now}\nevent: change\ndata: {now}\n\n"


def test_a_sites_stamp_ignores_other_sites_and_alert_acknowledgements(filled: Board) -> None:
    tally = SubmissionTally()
    beijing = Principal(BJ, "site", BJ)
    officer = Principal("officer", "safety_officer", None)
    site_before = change_stamp(filled.runtime, beijing, tally)
    reader_before = change_stamp(filled.runtime, officer, tally)
    trial = Trial()
    trial.enrol("SH-102", 41, SH)
    filled.post_events(SH, [encode_json(e) for e in trial.events])
    assert change_stamp(filled.runtime, beijing, tally) == site_before
    assert change_stamp(filled.runtime, officer, tally) != reader_before
    reader_now = change_stamp(filled.runtime, officer, tally)
    alert = open_alert_ids(filled)[0]
    filled.runtime.outbox.acknowledge(uuid.UUID(alert), "officer", None, datetime.now(UTC))
    assert change_stamp(filled.runtime, officer, tally) != reader_now
    trial = Trial()
    trial.enrol("BJ-102", 41, BJ)
    filled.post_events(BJ, [encode_json(e) for e in trial.events])
    assert change_stamp(filled.runtime, beijing, tally) != site_before


def test_a_readers_stamp_moves_when_a_dead_letter_is_received_again(filled: Board) -> None:
    officer = Principal("officer", "safety_officer", None)
    tally = SubmissionTally()
    bad = ['{"event_type": "ae.reported", "grade": 9}']
    assert filled.post_events(SH, bad).status_code == 422
    before = change_stamp(filled.runtime, officer, tally)
    assert filled.post_events(SH, bad).status_code == 422  # a retry: the same dead letter
    assert filled.runtime.store.rejections(limit=1)[0].received == 2
    resent = change_stamp(filled.runtime, officer, tally)
    assert resent != before  # the board shows "received 2x": the page must refresh


def test_logging_in_again_and_again_replaces_only_ones_own_sessions() -> None:
    sessions = SessionStore()
    officer = Principal("officer", "safety_officer", None)
    site = Principal("SITE-01", "site", "SITE-01")
    kept = sessions.open(officer)
    first_site = sessions.open(site)
    for _ in range(50):  # a site (or a script with its token) logging in over and over
        sessions.open(site)
    assert sessions.find(kept) is not None  # the officer is still logged in
    assert sessions.find(first_site) is None  # the site's own oldest session made room


def test_the_dsmb_records_a_decision_from_a_latched_rule_card(filled: Board) -> None:
    rule = "chemotherapy-related-g3"
    filled.login("dsmb")
    page = filled.client.get("/board").text
    assert f'action="/board/rules/{rule}/decision"' in page  # only on the latched card
    form = {"csrf": csrf_of(page), "outcome": "pause_enrolment", "rationale": "review first"}
    done = filled.client.post(
        f"/board/rules/{rule}/decision", data=form, headers={"Origin": "http://testserver"}
    )
    assert done.status_code == 303 and done.headers["location"] == f"/board#rule-{rule}"
    rules = filled.client.get("/v1/rules", headers=filled.bearer("dsmb")).json()["rules"]
    decided = next(r for r in rules if r["rule_id"] == rule)
    assert decided["awaiting_decision"] is False
    assert decided["last_decision"]["decided_by"] == "dsmb"
    assert f'action="/board/rules/{rule}/decision"' not in filled.client.get("/board").text
    # a site has no such form and cannot post one
    refused = filled.client.post(
        f"/board/rules/{rule}/decision", data=form | {"csrf": ""}, headers=filled.bearer(SH)
    )
    assert refused.status_code == 403
