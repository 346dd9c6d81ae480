"""The DSMB safety report: numbers as of the cut-off (recounted from the raw events), byte-for-
byte reproducibility, open vs closed content, boundary plots, listings, PDF, and usage errors."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from realservers import require_binary
from trial_builder import DIARRHEA, HEPATIC_FAILURE, NAUSEA, T0, Trial

from safety_stream.commands import report as report_command
from safety_stream.ctcae import ctcae_dictionary
from safety_stream.events import EventBase, Modality
from safety_stream.ingest import ingest
from safety_stream.monitoring.monitor import Monitor
from safety_stream.monitoring.status import rule_statuses
from safety_stream.projections.projector import state_as_of
from safety_stream.projections.toxicity import toxicity_tables
from safety_stream.report.errors import LogIntegrityError
from safety_stream.report.model import build_report
from safety_stream.report.render import render_html
from safety_stream.report.snapshot import snapshot_as_of
from safety_stream.runtime import default_plan
from safety_stream.simulate import simulate
from safety_stream.simulate.generator import T0 as SIMULATION_START
from safety_stream.simulate.rates import scenario
from safety_stream.store.base import StoredEvent
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.store.sql import SqlEventStore
from safety_stream.validation.records import InputFormat, RawRecord

MODALITIES = [m.value for m in Modality]
RELATED = {"possible", "probable", "definite"}  # the SPARKLE-L plan: possible or stronger
Y = SIMULATION_START.year  # the simulated trial starts in January of this year
CUT_OFF = f"{Y}-07-31"  # mid-trial: part of the simulated log is stored after it
CUT_OFF_END = datetime(Y, 7, 31, 23, 59, 59, 999999, tzinfo=UTC)


@dataclass
class Log:
    url: str
    events: list[StoredEvent]  # everything stored, in position order


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    """The simulated trial (a chemotherapy backbone toxic enough to cross its boundary), each
    batch stored at the time its last record was sent, so "stored by the cut-off" is known."""
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'trial.db'}"
    records = simulate(scenario("chemotherapy-toxicity", patients=40, seed=3))
    sent = [records[0].sent_at]
    store = SqlEventStore.create(url, clock=lambda: sent[0])
    try:
        for start in range(0, len(records), 40):
            chunk = records[start : start + 40]
            sent[0] = chunk[-1].sent_at
            raw = [RawRecord(f"record {start + i}", r.body) for i, r in enumerate(chunk)]
            ingest(store, raw, InputFormat.NDJSON, ctcae_dictionary(), "test", None)
        events = list(store.read())
    finally:
        store.close()
    stored = [e.stored_at for e in events]
    assert stored == sorted(stored)
    assert stored[0] <= CUT_OFF_END < stored[-1]  # the cut-off splits the log
    return Log(url, events)


def command(*options: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="safety-stream")
    report_command.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["report", *options])


def write_report(log: Log, out: Path, *options: str) -> str:
    assert report_command.run(command("--db", log.url, "--out", str(out), *options)) == 0
    return out.read_text(encoding="utf-8")


def test_a_clinical_cut_off_takes_what_happened_by_then_from_a_snapshot(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--cutoff selects by clinical date, --snapshot fixes the database state; both on the
    cover; a cut-off that selects nothing says so and exits 1."""
    cutoff = f"{Y}-05-31"
    head = log.events[-1].position
    html = write_report(log, tmp_path / "c.html", "--cutoff", cutoff, "--snapshot", str(head))
    enrolled = {
        json.loads(e.payload)["patient_id"]
        for e in log.events
        if e.event_type == "patient.enrolled"
        and json.loads(e.payload)["occurred_at"][:10] <= cutoff
    }
    cover = html.split("</dl>", 1)[0]
    assert f"events dated on or before {cutoff}" in cover
    assert f"up to log position {head}" in cover
    store = SqlEventStore.open(log.url)
    try:
        snapshot = snapshot_as_of(store, default_plan(), datetime.now(UTC),
                                  date.fromisoformat(cutoff), head)  # fmt: skip
    finally:
        store.close()
    assert build_report(snapshot, None, "open").enrolment.enrolled == len(enrolled) > 0
    assert snapshot.after_cutoff > 0 and snapshot.position == head
    assert f"--cutoff {cutoff}" in html and f"--snapshot {head}" in html
    assert report_command.run(command("--db", log.url, "--cutoff", f"{Y - 2}-12-31")) == 1
    assert "no event dated on or before" in capsys.readouterr().err


# --- an independent recount from the raw stored events ------------------------------------


@dataclass
class Recount:
    position: int
    chain_head: str
    enrolled: set[str]
    exposed: dict[str, set[str]]
    severe: dict[str, set[str]]  # modality -> exposed patients with a related grade >= 3 AE
    serious: list[dict[str, Any]]  # current, non-retracted AEs with a seriousness criterion


def recount(events: list[StoredEvent], moment: datetime) -> Recount:
    kept = [e for e in events if e.stored_at <= moment]
    enrolled: set[str] = set()
    exposed: dict[str, set[str]] = defaultdict(set)
    aes: dict[str, dict[str, Any]] = {}
    for stored in kept:
        document = json.loads(stored.payload)
        kind, patient = document["event_type"], document["patient_id"]
        if kind == "patient.enrolled":
            enrolled.add(patient)
        elif kind == "treatment.administered":
            exposed[document["treatment"]["modality"]].add(patient)
        elif kind == "ae.reported":
            aes[document["event_id"]] = dict(document, retracted=False, course=[document["grade"]])
        elif kind == "ae.updated" and document["ae_id"] in aes:
            ae = aes[document["ae_id"]]
            for key in ("attribution", "seriousness"):
                if document.get(key) is not None:
                    ae[key] = document[key]
            if document.get("grade") is not None:  # the worst over the course counts
                if document.get("grade_change") in ("worsened", "improved"):
                    ae["course"].append(document["grade"])
                else:  # a correction replaces the last grade
                    ae["course"][-1] = document["grade"]
                ae["grade"] = max(ae["course"])
        elif kind == "ae.retracted" and document["ae_id"] in aes:
            aes[document["ae_id"]]["retracted"] = True
    current = [a for a in aes.values() if not a["retracted"]]
    severe = {
        m: {
            a["patient_id"]
            for a in current
            if a["grade"] >= 3 and a["attribution"][m] in RELATED and a["patient_id"] in exposed[m]
        }
        for m in MODALITIES
    }
    return Recount(
        position=kept[-1].position,
        chain_head=kept[-1].chain_hash,
        enrolled=enrolled,
        exposed=exposed,
        severe=severe,
        serious=[a for a in current if a["seriousness"]],
    )


def section(html: str, name: str) -> str:
    """The HTML of one section that has no nested sections."""
    opening = re.search(rf'<section [^>]*id="{name}"', html)
    assert opening is not None, name
    return html[opening.start() : html.index("</section>", opening.start())]


def listing_patients(html: str, name: str) -> list[str]:
    table = re.search(r'<table class="listing">.*?</table>', section(html, name), re.S)
    assert table is not None
    return re.findall(r'<tr><td class="id">([^<]+)</td>', table.group(0))


# --- the tests ------------------------------------------------------------------------------


def test_report_counts_only_what_was_stored_by_the_cut_off(log: Log, tmp_path: Path) -> None:
    html = write_report(log, tmp_path / "r.html", "--as-of", CUT_OFF, "--version", "closed")
    assert (tmp_path / "r.html").stat().st_mode & 0o077 == 0  # patient listings: owner only
    expected = recount(log.events, CUT_OFF_END)
    assert 0 < expected.position < log.events[-1].position
    assert f"up to position {expected.position};" in html
    assert expected.chain_head in html
    enrolled = re.search(r"Enrolled \(planned 40\)</td><td class=\"num\">(\d+)<", html)
    assert enrolled is not None and int(enrolled.group(1)) == len(expected.enrolled) < 40
    for modality in MODALITIES:
        part = section(html, f"toxicity-{modality}")
        rate = re.search(r'<strong class="g3-rate">(\d+) of (\d+)</strong>', part)
        assert rate is not None, modality
        counted = (int(rate.group(1)), int(rate.group(2)))
        assert counted == (len(expected.severe[modality]), len(expected.exposed[modality]))
        summary = re.search(rf'data-modality="{modality}">(\d+)<', html)
        assert summary is not None and int(summary.group(1)) == counted[0]
    assert sum(len(s) for s in expected.severe.values()) > 0
    # the SAE listing: one row per serious AE stored by then, none stored after
    listed = listing_patients(html, "saes")
    assert sorted(listed) == sorted(a["patient_id"] for a in expected.serious)
    everything = recount(log.events, log.events[-1].stored_at)
    assert len(everything.serious) > len(expected.serious)


def test_report_tables_equal_the_projection_as_of_the_cut_off(log: Log) -> None:
    """The report's fold (with the monitor and the hash walk) gives the projection's tables."""
    plan = default_plan()
    store = SqlEventStore.open(log.url)
    try:
        report = build_report(snapshot_as_of(store, plan, CUT_OFF_END), None, "closed")
        state = state_as_of(store, CUT_OFF_END)
    finally:
        store.close()
    expected = toxicity_tables(state, CUT_OFF_END, plan.related_means_at_least, plan.windows)
    assert report.toxicity == expected
    assert report.provenance.position == state.position


def test_same_log_and_options_give_the_same_bytes(log: Log, tmp_path: Path) -> None:
    options = ("--as-of", CUT_OFF, "--since", f"{Y}-05-31", "--version", "closed")
    first = write_report(log, tmp_path / "a.html", *options)
    second = write_report(log, tmp_path / "b.html", *options)
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    assert first == second
    later = write_report(log, tmp_path / "c.html", "--as-of", f"{Y}-08-31", "--version", "closed")
    assert later != first
    # the same moment written as a day or as a time with an offset is the same report
    zoned = f"{Y}-08-01T07:59:59.999999+08:00"
    same_day = write_report(log, tmp_path / "d.html", "--as-of", zoned, "--version", "closed")
    assert same_day == write_report(
        log, tmp_path / "e.html", "--as-of", CUT_OFF, "--version", "closed"
    )


def test_reports_from_separate_processes_are_byte_identical(log: Log, tmp_path: Path) -> None:
    """Different hash seeds (set and dict-of-set orders) must not change a byte."""
    script = (
        "import argparse, sys\n"
        "from safety_stream.commands import report\n"
        "parser = argparse.ArgumentParser()\n"
        "report.add_parser(parser.add_subparsers(dest='command'))\n"
        "sys.exit(report.run(parser.parse_args(sys.argv[1:])))\n"
    )
    options = ["--db", log.url, "--as-of", f"{Y}-12-31", "--since", CUT_OFF, "--version"]
    outputs = []
    for seed, version in (("1", "closed"), ("2", "closed"), ("3", "open"), ("4", "open")):
        out = tmp_path / f"{seed}.html"
        subprocess.run(
            [sys.executable, "-c", script, "report", *options, version, "--out", str(out)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
        )
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] and outputs[2] == outputs[3]
    assert outputs[0] != outputs[2]


def test_a_tampered_log_gives_no_report() -> None:
    store, day = small_trial()
    stored = next(e for e in store.read() if e.event_type == "ae.reported")
    store.tamper(stored.position, stored.payload.replace('"grade":3', '"grade":2'))
    with pytest.raises(LogIntegrityError, match=f"broken at position {stored.position}"):
        snapshot_as_of(store, default_plan(), day(40))
    # a cut-off before the tampered event still verifies
    assert snapshot_as_of(store, default_plan(), day(9)).position == stored.position - 1


def test_open_report_has_no_patient_ids_and_closed_lists_them(log: Log, tmp_path: Path) -> None:
    everything = recount(log.events, log.events[-1].stored_at)
    sites = {json.loads(e.payload)["site_id"] for e in log.events}
    options = ("--as-of", f"{Y}-12-31", "--since", CUT_OFF)
    opened = write_report(log, tmp_path / "open.html", *options, "--version", "open")
    closed = write_report(log, tmp_path / "closed.html", *options, "--version", "closed")
    for patient in everything.enrolled:
        assert patient not in opened
    for site in sites:  # no per-site rows either
        assert site not in opened
    assert "OPEN - pooled data, for distribution" in opened
    assert "CLOSED - DSMB members only" in closed
    # the marking is in the title and in every printed page's header and footer
    assert re.search(r"<title>CLOSED - DSMB members only \|", closed)
    for margin in ("@top-right", "@bottom-left"):
        assert re.search(margin + r' \{ content: "CLOSED - DSMB members only";', closed)
    expected = recount(log.events, datetime(Y, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
    assert sorted(listing_patients(closed, "saes")) == sorted(
        a["patient_id"] for a in expected.serious
    )
    assert "patient-level SAE listing is in the closed report" in opened
    assert any(site in closed for site in sites)
    # the DMC tables: pooled counts in the open report (checked above: no id anywhere in it),
    # the deaths listed per patient in the closed one
    moment = datetime(Y, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    died = {
        json.loads(e.payload)["patient_id"]
        for e in log.events
        if e.stored_at <= moment and json.loads(e.payload)["event_type"] == "patient.died"
    }
    assert died  # the simulated trial has deaths
    assert "Deaths and their timing relative to the last dose (pooled)" in section(opened, "dmc")
    dmc_closed = section(closed, "dmc")
    assert "Deaths: cause and days from the last dose of each modality" in dmc_closed
    assert set(re.findall(r'<th scope="row"[^>]*>(SITE-\d\d-\d{4})</th>', dmc_closed)) == died


def test_one_boundary_plot_per_counting_rule_with_the_observed_path(
    log: Log, tmp_path: Path
) -> None:
    html = write_report(log, tmp_path / "r.html", "--as-of", CUT_OFF)
    plan = default_plan()
    monitor = Monitor(plan)
    store = SqlEventStore.open(log.url)
    try:
        state_as_of(store, CUT_OFF_END, observer=monitor)
    finally:
        store.close()
    counting = [s for s in rule_statuses(monitor) if s.n is not None]
    plots = re.findall(r'<svg [^>]*class="boundary-plot".*?</svg>', html, re.S)
    assert len(plots) == len(counting) == 5
    for plot, status in zip(plots, counting, strict=True):
        assert 'class="boundary"' in plot and 'class="observed"' in plot
        assert f"now: {status.x} counted of {status.n} evaluable" in plot
        assert f'id="rule-{status.rule_id}"' in html
    assert any(s.status == "crossed" for s in counting)  # the scenario crosses a boundary


def test_first_report_and_changes_since_the_previous(log: Log, tmp_path: Path) -> None:
    first = write_report(log, tmp_path / "first.html", "--as-of", f"{Y}-05-31")
    assert "This is the first report" in first
    second = write_report(
        log, tmp_path / "second.html", "--as-of", CUT_OFF, "--since", f"{Y}-05-31"
    )
    before = recount(log.events, datetime(Y, 5, 31, 23, 59, 59, 999999, tzinfo=UTC))
    now = recount(log.events, CUT_OFF_END)
    changes = section(second, "changes")
    enrolled = re.search(
        r"Patients enrolled</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>"
        r"<td class=\"num\">(\d+)</td>",
        changes,
    )
    assert enrolled is not None
    assert [int(g) for g in enrolled.groups()] == [
        len(before.enrolled),
        len(now.enrolled),
        len(now.enrolled - before.enrolled),
    ]
    newly = {m: len(now.severe[m] - before.severe[m]) for m in MODALITIES}
    for modality in MODALITIES:
        row = re.search(rf"<tr><td>{modality}</td>((?:<td class=\"num\">\d+</td>)+)", changes)
        assert row is not None
        cells = [int(v) for v in re.findall(r">(\d+)<", row.group(1))]
        assert cells[2:5] == [
            len(before.severe[modality]),
            len(now.severe[modality]),
            newly[modality],
        ]
    assert sum(newly.values()) > 0


def small_trial() -> tuple[InMemoryEventStore, Callable[[int], datetime]]:
    """Three patients with serious, unexpected, related AEs: one report submitted late, one
    fatal AE never reported (overdue at the cut-off though no later event says so), one open."""
    trial = Trial()
    for patient, modality in (("PT-01", "chemotherapy"), ("PT-02", "immunotherapy")):
        trial.enrol(patient, 0)
        trial.treat(patient, modality, 1)
    late = trial.ae(
        "PT-01", 10, *DIARRHEA, 3, ct="probable",
        seriousness=["hospitalisation"], expectedness="unexpected",
    )  # fmt: skip
    trial.submit_report("PT-01", 30, late)  # due day 25
    fatal = trial.ae(
        "PT-02", 20, *HEPATIC_FAILURE, 5, it="possible",
        expectedness="unexpected", immune_related=True,
    )  # fmt: skip
    trial.add(
        "patient.died", "PT-02", 21, death_date=(T0 + timedelta(days=21)).date().isoformat(),
        primary_cause="Acute liver failure", related_ae_id=fatal,
    )  # fmt: skip
    trial.enrol("PT-03", 30)
    trial.treat("PT-03", "radiotherapy", 31)
    trial.ae(
        "PT-03", 35, *NAUSEA, 3, rt="possible",
        seriousness=["hospitalisation"], expectedness="unexpected",
    )  # fmt: skip
    # a potential Hy's law case in one draw: ALT 4 x ULN, bilirubin 2.5 x ULN, ALP normal
    for test, times_uln in (("ALT", 4.0), ("bilirubin_total", 2.5), ("ALP", 1.0)):
        trial.lab("PT-03", 36, test, times_uln)
    clock = [T0]
    store = InMemoryEventStore(clock=lambda: clock[0])
    event: EventBase
    for event in sorted(trial.events, key=lambda e: e.recorded_at):  # stored as recorded
        clock[0] = event.recorded_at
        with store.write() as session:
            session.append(event)
    return store, lambda day: T0 + timedelta(days=day)


def test_deaths_listing_and_expedited_report_timeliness() -> None:
    store, day = small_trial()
    snapshot = snapshot_as_of(store, default_plan(), day(40))
    closed = build_report(snapshot, None, "closed")
    assert closed.death_rows is not None and closed.clocks is not None
    [death] = closed.death_rows
    assert (death.patient_id, death.cause, death.treatment_related) == (
        "PT-02", "Acute liver failure", True,
    )  # fmt: skip
    assert death.recorded_as == "patient.died and grade 5 AE"
    # PT-03's SAE is suspected to SBRT only: not a SUSAR (the plan's suspected products are
    # the drugs), so no clock
    assert {c.patient_id: c.timing for c in closed.clocks} == {"PT-01": "late", "PT-02": "overdue"}
    assert [c.days for c in closed.clocks] == [15, 7]
    timeliness = closed.timeliness
    assert (timeliness.due, timeliness.on_time, timeliness.late, timeliness.overdue) == (2, 0, 1, 1)
    # before the fatal AE's 7 days ran out, it was still open
    earlier = build_report(snapshot_as_of(store, default_plan(), day(26)), None, "closed")
    assert earlier.clocks is not None
    assert {c.patient_id: c.timing for c in earlier.clocks} == {"PT-01": "overdue", "PT-02": "open"}
    html = render_html(closed)
    assert "Acute liver failure" in section(html, "deaths")
    assert "<strong>0 of 2</strong> reports due by the cut-off were submitted on time" in html
    sentinels = {s.status.rule_id: s.status.raised for s in closed.sentinels}
    assert sentinels == {
        "treatment-related-death": 1, "immune-hepatitis-g4": 1,
        "hys-law": 1, "immune-hepatitis-g3-lab": 0,
    }  # fmt: skip
    (hys,) = [s for s in closed.sentinels if s.status.rule_id == "hys-law"]
    assert hys.raised is not None
    assert [(a.patient_id, a.ctcae_term) for a in hys.raised] == [("PT-03", None)]
    assert hys.raised[0].raised_at == day(36)  # when the last of the three results was stored
    assert "lab criteria met" in section(html, "rules")
    opened = render_html(build_report(snapshot, None, "open"))
    assert "1 patient(s) died (1 with a fatal AE related to a study treatment)" in opened
    assert not re.search(r"PT-0\d", opened)
    assert "Acute liver failure" not in opened


def test_pdf_has_pages(log: Log, tmp_path: Path) -> None:
    chromium = require_binary("chromium")
    out = tmp_path / "report.pdf"
    args = command(
        "--db", log.url, "--as-of", CUT_OFF, "--version", "closed",
        "--format", "pdf", "--chromium", chromium, "--out", str(out),
    )  # fmt: skip
    assert report_command.run(args) == 0
    pdf = out.read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page(?![a-z])", pdf)) >= 3


def test_pdf_without_chromium_says_what_to_install(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.pdf"
    missing = str(tmp_path / "no-chromium-here")
    args = command("--db", log.url, "--as-of", CUT_OFF, "--format", "pdf", "--chromium", missing)
    assert report_command.run(args) == 1
    error = capsys.readouterr().err
    assert "apt-get install chromium" in error and "--format html" in error
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--as-of", "yesterday"), "--as-of: expected YYYY-MM-DD"),
        (("--as-of", "2026-02-30"), "--as-of: expected YYYY-MM-DD"),
        (("--as-of", "2026-06-30T12:00:00"), "--as-of: '2026-06-30T12:00:00' has no UTC offset"),
        (("--as-of", "2026-06-30", "--since", "30/05/2026"), "--since: expected YYYY-MM-DD"),
        (("--as-of", "2026-06-30", "--since", "2026-07-01"), "must be before the cut-off"),
        (("--cutoff", "2026-06-31"), "--cutoff: '2026-06-31' is not a date"),
        (("--cutoff", "30/06/2026"), "--cutoff: expected YYYY-MM-DD"),
        (("--cutoff", "2026-06-30", "--as-of", "2026-06-30"), "--as-of is the old form"),
        ((), "give --cutoff YYYY-MM-DD"),
    ],
)
def test_bad_dates_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: tuple[str, ...], message: str
) -> None:
    db = tmp_path / "untouched.db"
    assert report_command.run(command("--db", f"sqlite:///{db}", *options)) == 2
    error = capsys.readouterr().err
    assert message in error
    if message.startswith(("--as-of:", "--since:")):  # the forms a time may take are listed
        assert "ISO 8601 time with a UTC offset" in error
    assert not db.exists()


def test_a_missing_store_is_an_error_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "missing.db"
    # a missing store is bad input (exit status 2), and reading never creates one
    assert report_command.run(command("--db", f"sqlite:///{db}", "--as-of", CUT_OFF)) == 2
    assert f"no store at {db}" in capsys.readouterr().err
    assert not db.exists()
