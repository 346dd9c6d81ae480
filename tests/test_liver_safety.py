"""Liver safety: CTCAE shift tables, eDISH coordinates and Child-Pugh trajectories, each
checked against a hand-worked history and recomputed independently (direct loops over the
stored events, grades cut from the CTCAE spreadsheet itself) for a simulated trial posted
through the production path; the plots are valid, deterministic SVG."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
from liver_histories import S1, bilirubin, child_pugh_trial, liver_trial
from test_read_snapshot import ADMIN, submit
from trial_builder import Trial

from safety_stream.events import (
    ChildPughAssessed,
    EventBase,
    LabResulted,
    TreatmentAdministered,
    decode_json,
)
from safety_stream.monitoring.matching import condition_holds
from safety_stream.plan import ChildPughRise
from safety_stream.projections.windows import window_span
from safety_stream.review.child_pugh import child_pugh_summary
from safety_stream.review.dataset import ReviewData
from safety_stream.review.liver import (
    GRADE_UPPER_BOUNDS,
    LIVER_TESTS,
    Edish,
    EdishPoint,
    ShiftTable,
    ctcae_grade,
    edish,
    shift_tables,
)
from safety_stream.review_plots import child_pugh_plot, cumulative_incidence_plot, edish_plot
from safety_stream.runtime import Runtime, build_memory_runtime
from safety_stream.simulate import simulate
from safety_stream.simulate.rates import scenario
from safety_stream.validation.records import InputFormat

SHEET = Path(__file__).parent.parent / "schemas" / "ctcae" / "CTCAE_v5.0_2017-11-27.xlsx"
TERMS = {
    "Alanine aminotransferase increased": "ALT",
    "Aspartate aminotransferase increased": "AST",
    "Alkaline phosphatase increased": "ALP",
    "Blood bilirubin increased": "bilirubin_total",
}


def sheet_cut_points() -> dict[str, tuple[float, float, float, float]]:
    """Per test, from the NCI sheet's "if baseline was normal" criteria: the upper bounds of
    grades 1, 2 and 3 (x ULN) and the lower bound of grade 4."""
    cuts = {}
    for row in (
        openpyxl.load_workbook(SHEET, read_only=True).worksheets[0].iter_rows(values_only=True)
    ):
        test = TERMS.get(str(row[2]).strip()) if row[2] else None
        if test is None:
            continue
        normal = [str(cell).split(";")[0] for cell in row[3:7]]
        numbers = [[float(x) for x in re.findall(r"(\d+(?:\.\d+)?) x ULN", c)] for c in normal]
        assert all("if baseline was normal" in str(cell) for cell in row[3:7])
        cuts[test] = (numbers[0][-1], numbers[1][-1], numbers[2][-1], numbers[3][0])
    return cuts


CUTS = sheet_cut_points()


def grade_from_sheet(test: str, ratio: float) -> int:
    g1, g2, g3, _ = CUTS[test]
    if ratio <= 1.0:
        return 0
    if ratio <= g1:
        return 1
    if ratio <= g2:
        return 2
    return 3 if ratio <= g3 else 4


def test_the_grade_cut_points_are_the_ctcae_sheets() -> None:
    assert set(CUTS) == set(LIVER_TESTS)
    for test, (g1, g2, g3, g4) in CUTS.items():
        assert GRADE_UPPER_BOUNDS[test] == (g1, g2, g3) and g4 == g3
    assert CUTS["ALT"] == (3.0, 5.0, 20.0, 20.0) and CUTS["bilirubin_total"][:3] == (1.5, 3, 10)
    # the boundaries themselves: "> 3.0 - 5.0" is grade 2, so exactly 3.0 is still grade 1
    cases = [(1.0, 0), (1.0001, 1), (3.0, 1), (3.0001, 2), (5.0, 2), (20.0, 3), (20.01, 4)]
    assert [ctcae_grade("ALT", r) for r, _ in cases] == [g for _, g in cases]
    assert [ctcae_grade("ALP", r) for r in (2.5, 2.51, 5.0, 5.1)] == [1, 2, 2, 3]
    assert [ctcae_grade("bilirubin_total", r) for r in (1.5, 1.6, 3.0, 10.0, 10.5)] == [
        1, 2, 2, 3, 4,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="no CTCAE grading for 'albumin'"):
        ctcae_grade("albumin", 2.0)


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    runtime = build_memory_runtime()
    yield runtime
    runtime.close()


def cell(table: ShiftTable, baseline: str, worst: str) -> int:
    labels = ["0", "1", "2", "3", "4", "missing"]
    return table.counts[labels.index(baseline)][labels.index(worst)]


def test_shift_tables_of_a_hand_worked_history(runtime: Runtime) -> None:
    submit(runtime, liver_trial())
    tables = {t.test: t for t in runtime.review.read(ADMIN, shift_tables)}
    alt = tables["ALT"]
    # L1 0 -> 3 (baseline before the first dose), L2 missing -> 1 (no pre-dose value: no
    # baseline, both values post-baseline), L3 0 -> 4, L4 missing -> 1 (never dosed: every
    # value post-baseline; 3.0 x ULN is grade 1), L5 no values
    assert (cell(alt, "0", "3"), cell(alt, "missing", "1"), cell(alt, "0", "4")) == (1, 2, 1)
    assert cell(alt, "missing", "missing") == 1
    assert alt.patients == 5 and sum(map(sum, alt.counts)) == 5 and alt.worsened == 2
    ast = tables["AST"]  # L1 missing -> 1 (its only value is after the dose); L2 missing -> 2
    assert (cell(ast, "missing", "1"), cell(ast, "missing", "2")) == (1, 1)
    assert cell(ast, "missing", "missing") == 3  # L3, L4, L5: no AST
    alp = tables["ALP"]  # L1 0 -> 1 (2.5 x ULN), L3 baseline grade 2, nothing after
    assert (cell(alp, "0", "1"), cell(alp, "2", "missing")) == (1, 1)
    bili = tables["bilirubin_total"]  # L1 and L3 0 -> 2; L2 missing -> 2
    assert cell(bili, "0", "2") == 2 and cell(bili, "missing", "2") == 1
    assert cell(bili, "missing", "missing") == 2
    assert bili.column_total(2) == 3 and bili.row_total(0) == 2


def test_a_post_dose_value_is_never_the_baseline(runtime: Runtime) -> None:
    """The reviewer's case: dosed day 0, no value before; ALT 10 x ULN and bilirubin 3 x ULN on
    day 7, both normal on day 14. Potential Hy's law, not hidden as a "baseline"."""
    trial = Trial()
    trial.enrol("H1", 0, S1)
    trial.treat("H1", "immunotherapy", 0, S1)
    trial.lab("H1", 7, "ALT", 10.0, S1)
    bilirubin(trial, "H1", 7, 3.0, S1)
    trial.lab("H1", 14, "ALT", 0.5, S1)
    bilirubin(trial, "H1", 14, 0.5, S1)
    submit(runtime, trial)
    tables = {t.test: t for t in runtime.review.read(ADMIN, shift_tables)}
    assert cell(tables["ALT"], "missing", "3") == 1 and sum(map(sum, tables["ALT"].counts)) == 1
    assert cell(tables["bilirubin_total"], "missing", "2") == 1  # 3.0 x ULN is grade 2
    (point,) = runtime.review.read(ADMIN, edish).points
    assert (point.transaminase_times_uln, point.bilirubin_times_uln) == (10.0, 3.0)
    assert point.quadrant == "hys_law" and point.hys_pair_within_30_days


def test_edish_of_a_hand_worked_history(runtime: Runtime) -> None:
    submit(runtime, liver_trial())
    found = runtime.review.read(ADMIN, edish)
    points = {p.patient_id: p for p in found.points}
    assert set(points) == {"L1", "L2", "L3"} and found.not_plotted == 2  # L4, L5: no bilirubin
    l1 = points["L1"]
    assert (l1.transaminase_test, l1.transaminase_times_uln, str(l1.transaminase_on)) == (
        "ALT", 6.0, "2026-01-21",
    )  # fmt: skip
    assert l1.bilirubin_times_uln == pytest.approx(2.5) and l1.quadrant == "hys_law"
    assert l1.hys_pair_within_30_days  # ALT 3.5 and bilirubin 2.5 in one draw on day 10
    l2 = points["L2"]  # AST 4.0 on day 5 (no pre-dose value: post-baseline), bilirubin 2.5 day 60
    assert l2.transaminase_times_uln == pytest.approx(4.0) and l2.transaminase_test == "AST"
    assert l2.quadrant == "hys_law" and not l2.hys_pair_within_30_days  # 55 days apart
    l3 = points["L3"]  # ALT 25 on day 40, bilirubin 2.2 on day 80: 40 days apart
    assert l3.quadrant == "hys_law" and not l3.hys_pair_within_30_days
    assert found.by_quadrant == {"hys_law": 3, "temple": 0, "cholestasis": 0, "normal": 0}
    assert found.hys_pairs_within_30_days == 1


# -- the same, recomputed from the stored events of a simulated trial ---------------------


Lab = tuple[str, datetime, int, float]  # test, collected at, log order, value / ULN


def stored_events(runtime: Runtime) -> list[EventBase]:
    return [decode_json(s.payload) for s in runtime.store.read()]


def raw_liver(events: list[EventBase]) -> tuple[dict[str, datetime], dict[str, list[Lab]]]:
    """First dose per patient, and (test, collected_at, log order, value / ULN) per patient."""
    first: dict[str, datetime] = {}
    labs: dict[str, list[Lab]] = {}
    for order, event in enumerate(events):
        if isinstance(event, TreatmentAdministered):
            pid = event.patient_id
            first[pid] = min(first.get(pid, event.occurred_at), event.occurred_at)
        elif isinstance(event, LabResulted) and event.uln:
            labs.setdefault(event.patient_id, []).append(
                (str(event.test), event.occurred_at, order, event.value / event.uln)
            )
    return first, labs


def split(first: datetime | None, values: list[Lab]) -> tuple[Lab | None, list[Lab]]:
    """Baseline: the last value on or before the first dose (none: missing); post-baseline:
    every value after the first dose, or every value of a patient never dosed."""
    ordered = sorted(values, key=lambda v: (v[1], v[2]))
    if first is None:
        return None, ordered
    base = None
    after = []
    for v in ordered:
        if v[1] <= first:
            base = v
        else:
            after.append(v)
    return base, after


def simulated(runtime: Runtime) -> list[EventBase]:
    records = simulate(scenario("immunotherapy-toxicity", patients=40, seed=5, sites=3))
    body = b"\n".join(r.body for r in records if r.valid)
    runtime.submitter.submit(body, InputFormat.NDJSON, ADMIN, None)
    return stored_events(runtime)


def test_shift_tables_and_edish_recomputed_from_the_stored_events(runtime: Runtime) -> None:
    events = simulated(runtime)
    first, labs = raw_liver(events)
    patients = [e.patient_id for e in events if getattr(e, "event_type", "") == "patient.enrolled"]
    data = runtime.review.read(ADMIN, lambda d: d)
    tables = {t.test: t for t in shift_tables(data)}
    for test in LIVER_TESTS:
        expected = [[0] * 6 for _ in range(6)]
        for pid in patients:
            base, after = split(first.get(pid), [v for v in labs.get(pid, []) if v[0] == test])
            row = 5 if base is None else grade_from_sheet(test, base[3])
            column = max((grade_from_sheet(test, v[3]) for v in after), default=5)
            expected[row][column] += 1
        assert [list(r) for r in tables[test].counts] == expected, test
    assert any(cell(tables["ALT"], "0", g) for g in "1234")  # the trial does move ALT

    plotted = {p.patient_id: p for p in edish(data).points}
    expected_points, expected_pairs = {}, {}
    for pid in patients:
        mine = labs.get(pid, [])
        enzymes = [
            v
            for t in ("ALT", "AST")
            for v in split(first.get(pid), [x for x in mine if x[0] == t])[1]
        ]
        bilirubin = split(first.get(pid), [x for x in mine if x[0] == "bilirubin_total"])[1]
        if enzymes and bilirubin:
            expected_points[pid] = (max(v[3] for v in enzymes), max(v[3] for v in bilirubin))
            expected_pairs[pid] = any(
                e[3] > 3 and b[3] > 2 and abs((e[1] - b[1]).total_seconds()) <= 30 * 86400
                for e in enzymes
                for b in bilirubin
            )
    assert len(expected_points) > 20
    assert {
        pid: (p.transaminase_times_uln, p.bilirubin_times_uln) for pid, p in plotted.items()
    } == expected_points
    assert {pid: p.hys_pair_within_30_days for pid, p in plotted.items()} == expected_pairs
    for pid, (peak_enzyme, peak_bilirubin) in expected_points.items():
        quadrant = plotted[pid].quadrant
        assert (quadrant in ("hys_law", "temple")) == (peak_enzyme > 3)
        assert (quadrant in ("hys_law", "cholestasis")) == (peak_bilirubin > 2)
    assert {p.quadrant for p in plotted.values()} >= {"temple", "normal"}


# -- Child-Pugh ---------------------------------------------------------------------------


def test_child_pugh_trajectories_around_sbrt(runtime: Runtime) -> None:
    submit(runtime, child_pugh_trial())
    summary = runtime.review.read(ADMIN, lambda d: child_pugh_summary(d, runtime.plan))
    assert summary.definition.points == 2 and summary.definition.window.days == 90
    assert "rild" in summary.definition.source  # the plan's own composite
    by_id = {t.patient_id: t for t in summary.trajectories}
    assert set(by_id) == {"C1", "C2", "C3"}  # C4 was never irradiated
    c1 = by_id["C1"]
    assert [(p.day, p.score) for p in c1.points] == [(-10, 5), (30, 7), (140, 9)]
    assert (c1.baseline, c1.worst_rise, c1.class_change, c1.rose_in_window) == (
        5,
        4,
        "A -> B",
        True,
    )
    assert (c1.fractions, str(c1.first_fraction), str(c1.last_fraction)) == (
        3, "2026-01-11", "2026-01-13",
    )  # fmt: skip
    c2 = by_id["C2"]  # the rise of 2 comes on day 120, after the last fraction + 90 days
    assert (c2.baseline, c2.worst_rise, c2.rose_in_window) == (6, 2, False)
    c3 = by_id["C3"]
    assert (c3.baseline, c3.worst_rise, c3.class_change, c3.rose_in_window) == (
        None,
        None,
        None,
        False,
    )
    assert (summary.irradiated, summary.with_baseline, summary.evaluable, summary.rose) == (
        3,
        2,
        2,
        1,
    )


def test_the_rise_agrees_with_the_monitors_rild_condition(runtime: Runtime) -> None:
    submit(runtime, child_pugh_trial())
    data: ReviewData = runtime.review.read(ADMIN, lambda d: d)
    summary = child_pugh_summary(data, runtime.plan)
    window = runtime.plan.windows["post_sbrt_90d"]
    for t in summary.trajectories:
        state = data.state.patients[t.patient_id]
        span = window_span(state, window)
        assert t.rose_in_window == condition_holds(
            ChildPughRise(child_pugh_rise=2), state, [], span
        ), t.patient_id
    # and the scores are the stored ones
    stored = [e for e in stored_events(runtime) if isinstance(e, ChildPughAssessed)]
    assert sum(len(t.points) for t in summary.trajectories) == sum(
        e.patient_id != "C4" for e in stored
    )


# -- plots --------------------------------------------------------------------------------


def svgs(runtime: Runtime, link_base: str | None) -> list[str]:
    def draw(data: ReviewData) -> list[str]:
        from datetime import date

        from safety_stream.review.cumulative import cumulative_incidences

        curves = cumulative_incidences(data, runtime.plan.related_means_at_least, date(2026, 6, 1))
        return [
            edish_plot(edish(data), link_base=link_base),
            child_pugh_plot(child_pugh_summary(data, runtime.plan), link_base=link_base),
            cumulative_incidence_plot(curves),
        ]

    return runtime.review.read(ADMIN, draw)


def test_plots_are_valid_deterministic_svg_with_links_only_when_asked() -> None:
    drawn = []
    for _ in range(2):  # the same history built twice (new event ids): the same bytes
        runtime = build_memory_runtime()
        submit(runtime, liver_trial())
        submit(runtime, child_pugh_trial())
        drawn.append((svgs(runtime, "/board/patients/"), svgs(runtime, None)))
        runtime.close()
    assert drawn[0] == drawn[1]
    linked, bare = drawn[0]
    for svg in linked + bare:
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.get("role") == "img" and root.get("aria-label")
        assert root.find("{http://www.w3.org/2000/svg}title") is not None
    assert '<a href="/board/patients/L1">' in linked[0] and "<title>L1:" in linked[0]
    assert linked[0].count("<a href=") == 3
    for svg in bare:
        assert "<a " not in svg
        assert not re.search(r"\b(L[1-5]|C[1-4])\b", svg)


def test_plot_text_is_escaped() -> None:
    point = EdishPoint("A&B<x>", "S&1", 4.0, "ALT", datetime(2026, 1, 1).date(), 2.5,
                       datetime(2026, 1, 1).date(), "hys_law", True)  # fmt: skip
    svg = edish_plot(Edish((point,), {"hys_law": 1}, 1, 0), link_base="/board/patients/")
    ET.fromstring(svg)
    assert "A&B<x>" not in svg and "/board/patients/A%26B%3Cx%3E" in svg
