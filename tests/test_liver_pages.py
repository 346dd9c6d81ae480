"""The liver-safety page on the board (/board/liver, site-scoped) and the liver section of the
DSMB report (open: pooled, no patient id; closed: per-patient tables and narratives)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from liver_histories import AS_OF_DAY, S1, S2, child_pugh_trial, competing_trial, liver_trial
from test_read_snapshot import submit
from trial_builder import T0

from safety_stream.api.app import create_app
from safety_stream.report.model import build_report
from safety_stream.report.render import render_html
from safety_stream.report.snapshot import snapshot_as_of
from safety_stream.runtime import Runtime, build_memory_runtime

PATIENTS = {
    S1: {"L1", "L2", "L5", "C1", "C2", *(f"PT-{n}" for n in range(1, 8))},
    S2: {"L3", "L4", "C3", "C4"},
}
ID = re.compile(r"\b(L[1-5]|C[1-4]|PT-[1-7])\b")


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
        "LIV-S3": runtime.credentials.add("LIV-S3", "site", "LIV-S3"),
    }


def liver_page(client: TestClient, token: str) -> str:
    response = client.get("/board/liver", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return str(response.text)


def test_without_credentials_the_page_sends_people_to_log_in(client: TestClient) -> None:
    response = client.get("/board/liver")
    assert response.status_code == 303
    assert response.headers["location"] == "/board/login?next=/board/liver"


def test_a_reader_sees_every_patient_with_links_to_their_profiles(
    client: TestClient, tokens: dict[str, str]
) -> None:
    html = liver_page(client, tokens["officer"])
    # eDISH: patients with post-baseline transaminase and bilirubin values; Child-Pugh: every
    # irradiated patient (PT-5 had SBRT); the shift tables and curves are pooled
    assert set(ID.findall(html)) == {"L1", "L2", "L3", "C1", "C2", "C3", "PT-5"}
    for patient in ("L1", "L2", "L3"):  # the eDISH points and table rows
        assert f'<a href="/board/patients/{patient}">' in html
    assert 'id="edish-table"' in html and 'id="cif-table"' in html
    for svg in re.findall(r"<svg.*?</svg>", html, re.S):
        ET.fromstring(svg)


def test_a_site_sees_only_its_own_patients(client: TestClient, tokens: dict[str, str]) -> None:
    own = liver_page(client, tokens[S2])
    assert set(ID.findall(own)) == {"L3", "C3"}
    assert "showing site <strong>LIV-S2</strong> only" in own
    # the shift tables count the site's 4 patients, not the trial's
    assert re.search(r"ALT \(Alanine aminotransferase increased\)[^<]*4 patients", own)
    other = liver_page(client, tokens[S1])
    assert set(ID.findall(other)) == {"L1", "L2", "C1", "C2", "PT-5"}
    assert not set(ID.findall(other)) & PATIENTS[S2]


def test_a_site_without_patients_gets_empty_tables_and_plots(
    client: TestClient, tokens: dict[str, str]
) -> None:
    html = liver_page(client, tokens["LIV-S3"])
    assert not ID.findall(html) and "0 patients" in html
    assert "No patient has post-baseline transaminase and bilirubin values." in html
    assert "No patient has had an SBRT fraction." in html
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 3
    for svg in svgs:
        ET.fromstring(svg)


# -- the report ---------------------------------------------------------------------------


SNAPSHOT_AT = datetime.now(UTC) + timedelta(days=1)  # one moment for every report built here


def report_html(runtime: Runtime, version: str) -> str:
    cutoff = (T0 + timedelta(days=AS_OF_DAY)).date()
    snapshot = snapshot_as_of(runtime.store, runtime.plan, SNAPSHOT_AT, cutoff)
    return render_html(build_report(snapshot, None, version))  # type: ignore[arg-type]


def liver_section(html: str) -> str:
    start = html.index('<section id="liver"')
    return html[start : html.index("</section>", start)]


def test_the_open_report_has_the_pooled_liver_section_and_no_patient_id(runtime: Runtime) -> None:
    section = liver_section(report_html(runtime, "open"))
    assert not ID.findall(section)
    assert "/board/patients/" not in section and "<a " not in section
    assert section.count('class="shift"') == 4
    assert 'class="edish-plot"' in section and 'class="cif-plot"' in section
    assert 'id="edish-table"' not in section and "child-pugh-plot" not in section
    assert "Narratives" not in section
    for svg in re.findall(r"<svg.*?</svg>", section, re.S):
        ET.fromstring(svg)


def test_the_closed_report_adds_patients_trajectories_and_narratives(runtime: Runtime) -> None:
    html = report_html(runtime, "closed")
    section = liver_section(html)
    # at the day-40 cut-off L1 and L2 have post-baseline bilirubin (L2 has no value before its
    # first dose: its day-5 values are post-baseline); L3's is on day 80
    edish_rows = section[
        section.index('id="edish-table"') : section.index(
            "</table>", section.index('id="edish-table"')
        )
    ]
    assert set(ID.findall(edish_rows)) == {"L1", "L2"}
    trajectories = section[section.index('id="child-pugh-table"') :]
    trajectories = trajectories[: trajectories.index("</table>")]
    assert set(ID.findall(trajectories)) == {"C1", "C2", "C3", "PT-5"}
    assert "child-pugh-plot" in section
    # PT-2, PT-3 and PT-7 had serious AEs; PT-4 and PT-7 died
    titles = re.findall(r"<h4>(.*?)</h4>", section)
    assert sum(t.startswith("Serious AE") for t in titles) == 3
    assert [t for t in titles if t.startswith("Death")] == [
        "Death of patient PT-4 (site LIV-S1)",
        "Death of patient PT-7 (site LIV-S1)",
    ]
    assert report_html(runtime, "closed") == html  # byte for byte
