"""The DMC's AE tables (TEAE overview, incidence by SOC and term, AESI groups, discontinuations,
deaths, data currency, enrolment): figures worked out by hand on a five-patient trial posted
through the production path, and every number of a simulated trial recomputed from the raw
stored events by the independent fold in ``dmc_recount`` (direct loops, no shared code)."""

from __future__ import annotations

import json
import statistics
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from dmc_hand_trial import day, hand_trial, hand_trial_with_pre_dose
from dmc_recount import (
    MODALITIES,
    Raw,
    RawAe,
    fold_raw,
    pct,
    pre_dose,
    treated,
    treatment_emergent,
)
from test_read_snapshot import ADMIN, submit

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.errors import PlanError
from safety_stream.ingest import ingest
from safety_stream.plan import MonitoringPlan, parse_plan
from safety_stream.review.dataset import ReviewData
from safety_stream.review.dmc import TABLE_NAMES, dmc_tables
from safety_stream.review.table import Cell, DmcTable
from safety_stream.runtime import build_memory_runtime, default_plan
from safety_stream.simulate import simulate
from safety_stream.simulate.generator import SimulatedRecord
from safety_stream.simulate.rates import scenario
from safety_stream.store.base import StoredEvent
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.validation.records import InputFormat, RawRecord

AS_OF = day(90)  # 2026-04-01


def as_int(value: Cell) -> int:
    assert isinstance(value, int)
    return value


def by_name(tables: list[DmcTable]) -> dict[str, DmcTable]:
    return {t.name: t for t in tables}


@pytest.fixture(scope="module")
def hand() -> tuple[dict[str, DmcTable], list[StoredEvent]]:
    runtime = build_memory_runtime()
    submit(runtime, hand_trial())
    tables = runtime.review.read(
        ADMIN, lambda d: dmc_tables(d, runtime.plan, AS_OF, patient_level=True)
    )
    return by_name(tables), list(runtime.store.read())


# -- the hand-built trial -------------------------------------------------------------------


def test_teae_overview_by_hand(hand: tuple[dict[str, DmcTable], list[StoredEvent]]) -> None:
    table = hand[0]["teae-overview"]
    assert table.columns[:3] == ("category", "all_n", "all_pct")
    # (all, related, radiotherapy, chemotherapy, immunotherapy) patients of the 4 treated (the
    # safety population: P5, enrolled on day 60, was never dosed)
    expected = {
        "Any AE": (3, 3, 1, 1, 1),  # P1, P2, P4 (P3's only AE is retracted)
        "Grade >= 3": (3, 3, 1, 1, 1),  # P1 diarrhoea worsened to 3, P2 ALT, P4 fatal
        "Serious AE": (2, 2, 1, 0, 1),  # P2 hospitalised, P4 life-threatening then death
        "Leading to dose modification": (1, 1, 0, 1, 0),  # P1 neutropenia, dose reduced
        "Leading to discontinuation": (2, 1, 0, 0, 1),  # P2 drug withdrawn; P3 withdrawn (all)
        "Fatal (grade 5)": (1, 1, 1, 0, 0),  # P4
    }
    for row in table.rows:
        counts = expected[str(row[0])]
        assert row[1::2] == counts, row[0]
        assert row[2::2] == tuple(n * 25.0 for n in counts), row[0]
    assert "of the 4 treated patients" in table.footnote and "once per row" in table.footnote


def test_incidence_by_soc_and_term_by_hand(
    hand: tuple[dict[str, DmcTable], list[StoredEvent]],
) -> None:
    rows = [r[:-1] for r in hand[0]["incidence-all-causality"].rows]
    # soc, term, g1..g5, any, any %, >= 3, >= 3 % (of the 4 treated patients)
    assert rows == [
        ("Gastrointestinal disorders", "All terms", 0, 0, 1, 0, 0, 1, 25.0, 1, 25.0),
        ("Gastrointestinal disorders", "Diarrhea", 0, 0, 1, 0, 0, 1, 25.0, 1, 25.0),
        ("Gastrointestinal disorders", "Nausea", 1, 0, 0, 0, 0, 1, 25.0, 0, 0.0),
        ("Hepatobiliary disorders", "All terms", 0, 0, 0, 0, 1, 1, 25.0, 1, 25.0),
        ("Hepatobiliary disorders", "Hepatic failure", 0, 0, 0, 0, 1, 1, 25.0, 1, 25.0),
        ("Investigations", "All terms", 0, 0, 2, 0, 0, 2, 50.0, 2, 50.0),
        ("Investigations", "Alanine aminotransferase increased", 0, 0, 1, 0, 0, 1, 25.0, 1, 25.0),
        ("Investigations", "Neutrophil count decreased", 0, 0, 1, 0, 0, 1, 25.0, 1, 25.0),
        ("Respiratory, thoracic and mediastinal disorders", "All terms",
         0, 1, 0, 0, 0, 1, 25.0, 0, 0.0),
        ("Respiratory, thoracic and mediastinal disorders", "Pneumonitis",
         0, 1, 0, 0, 0, 1, 25.0, 0, 0.0),
    ]  # fmt: skip
    assert {r[-1] for r in hand[0]["incidence-all-causality"].rows} == {"all"}
    related = [r[:2] for r in hand[0]["incidence-related"].rows]
    assert ("Gastrointestinal disorders", "Nausea") not in related  # unrelated nausea
    assert len(related) == len(rows) - 1


def test_aesi_discontinuations_and_deaths_by_hand(
    hand: tuple[dict[str, DmcTable], list[StoredEvent]],
) -> None:
    tables = hand[0]
    aesi = {r[0]: r[3:] for r in tables["aesi"].rows}
    assert aesi == {
        "hepatitis": (1, 25.0, 1, 25.0),  # P2's immune-related ALT increased, grade 3
        "pneumonitis": (1, 25.0, 0, 0.0),
        "colitis": (0, 0.0, 0, 0.0),  # P1's diarrhoea is not marked immune-related
        "endocrine": (0, 0.0, 0, 0.0),
        "skin": (0, 0.0, 0, 0.0),
    }
    listing = tables["discontinuations"]
    assert listing.patient_level
    assert [(r[0], r[2], r[5], r[6], r[8], r[9]) for r in listing.rows] == [
        (
            "P2",
            "AE: drug withdrawn",
            "Alanine aminotransferase increased",
            3,
            "immunotherapy",
            None,
        ),
        ("P3", "Withdrawn for an adverse event", None, None, None, day(20)),
    ]
    (death,) = tables["deaths"].rows
    # the last SBRT fraction day 7, FOLFOX day 4, PD-1 day 30; died day 52
    assert death == (
        "P4", "S2", day(52), "Hepatic failure", "Hepatic failure", "radiotherapy",
        45, 48, 22, "immunotherapy",
    )  # fmt: skip


def test_aes_before_the_first_dose_are_not_treatment_emergent(
    hand: tuple[dict[str, DmcTable], list[StoredEvent]],
) -> None:
    """P3's diarrhoea the day before its first dose and never-treated P5's grade 3 serious
    chemotherapy-related neutropenia are left out: every treatment-emergent table is the hand
    trial's, and the footnotes say what was left out."""
    runtime = build_memory_runtime()
    submit(runtime, hand_trial_with_pre_dose())
    tables = by_name(runtime.review.read(ADMIN, lambda d: dmc_tables(d, runtime.plan, AS_OF, True)))
    note = "AEs with onset before the first dose (or of a patient never dosed): 2 (patients 2), "
    for name in ("teae-overview", "incidence-all-causality", "incidence-related", "aesi",
                 "incidence-rates"):  # fmt: skip
        assert tables[name].rows == hand[0][name].rows, name
        assert note + "not counted." in tables[name].footnote, name
    assert "onset on or after the patient's first dose" in tables["teae-overview"].footnote
    assert "(patients 0), not counted." in hand[0]["teae-overview"].footnote
    runtime.close()


def test_currency_and_enrolment_by_hand(
    hand: tuple[dict[str, DmcTable], list[StoredEvent]],
) -> None:
    tables, events = hand
    stored = events[0].stored_at.date()  # posted in one batch: one storage day
    assert {e.stored_at.date() for e in events} == {stored}
    s1 = sorted((stored - day(d)).days for d in (5, 6, 20, 30, 40))  # P1's and P2's onsets
    s2 = [(stored - day(50)).days]  # P4's hepatic failure; P3's nausea is retracted
    rows = {r[0]: r[1:] for r in tables["data-currency"].rows}
    # n, median, Q1, Q3 (linear interpolation of 5 values: the 2nd and 4th), max, on study,
    # quiet: P1 (last day 36) and P2 (last day 40) > 30 days before day 90; P5 enrolled day 60
    assert rows["S1"] == (5, float(s1[2]), float(s1[1]), float(s1[3]), s1[4], 2, 2)
    assert rows["S2"] == (1, float(s2[0]), float(s2[0]), float(s2[0]), s2[0], 1, 0)
    both = sorted(s1 + s2)  # 6 values: Q1 at 1.25, median 2.5, Q3 3.75 (0-based)
    q1 = both[1] + 0.25 * (both[2] - both[1])
    q3 = both[3] + 0.75 * (both[4] - both[3])
    assert rows["All sites"] == (6, (both[2] + both[3]) / 2, q1, q3, both[5], 3, 2)

    enrolment = [r for r in tables["enrolment"].rows]
    assert enrolment == [
        ("All sites", "2026-01", 4, 4), ("All sites", "2026-02", 0, 4),
        ("All sites", "2026-03", 1, 5), ("All sites", "2026-04", 0, 5),
        ("S1", "2026-01", 2, 2), ("S1", "2026-02", 0, 2),
        ("S1", "2026-03", 0, 2), ("S1", "2026-04", 0, 2),
        ("S2", "2026-01", 2, 2), ("S2", "2026-02", 0, 2),
        ("S2", "2026-03", 1, 3), ("S2", "2026-04", 0, 3),
    ]  # fmt: skip


def test_the_open_forms_are_pooled(hand: tuple[dict[str, DmcTable], list[StoredEvent]]) -> None:
    runtime = build_memory_runtime()
    submit(runtime, hand_trial())
    tables = by_name(
        runtime.review.read(ADMIN, lambda d: dmc_tables(d, runtime.plan, AS_OF, False))
    )
    assert list(tables) == list(TABLE_NAMES)
    assert not any(t.patient_level for t in tables.values())
    assert tables["discontinuations"].rows == (
        ("Investigations", "Alanine aminotransferase increased", 1),
        ("", "Withdrawn for an adverse event (no AE cited)", 1),
    )
    deaths = {str(r[0]): r[1] for r in tables["deaths"].rows}
    assert deaths == {
        "Deaths": 1,
        "Within 30 days of the last dose of any modality": 1,
        "Within 30 days of the last radiotherapy dose": 0,
        "Within 30 days of the last chemotherapy dose": 0,
        "Within 30 days of the last immunotherapy dose": 1,
        "Citing a fatal AE": 1,
        "Citing a treatment-related fatal AE": 1,
    }
    assert {r[0] for r in tables["data-currency"].rows} == {"All sites"}
    assert {r[0] for r in tables["enrolment"].rows} == {"All sites"}
    for table in tables.values():
        text = repr(table.rows)
        for patient in ("P1", "P2", "P3", "P4", "P5", "'S1'", "'S2'"):
            assert patient not in text, (table.name, patient)


# -- the plan's AESI groups ---------------------------------------------------------------------


def test_the_plans_aesi_groups_name_real_ctcae_terms() -> None:
    plan = default_plan()
    assert list(plan.aesi) == ["hepatitis", "pneumonitis", "colitis", "endocrine", "skin"]
    ctcae = ctcae_dictionary()
    for group in plan.aesi.values():
        assert all(ctcae.lookup(t) is not None for t in group.terms)
        assert all(s in ctcae.socs for s in group.socs)
    deployed = Path(__file__).parent.parent / "deploy" / "plans" / "sparkle-l.yaml"
    packaged = Path(__file__).parent.parent / "safety_stream" / "data" / "plans" / "sparkle-l.yaml"
    assert deployed.read_text() == packaged.read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("    terms: [Pneumonitis]", "aesi 'pneumonitis': 'Pneumonits' is not a CTCAE v5.0 term "
         "(did you mean 'Pneumonitis'?)"),
        ("    socs: [Endocrine disorders]", "aesi 'endocrine': 'Endocrine disorder' is not a "
         "CTCAE v5.0 system organ class"),
    ],
)  # fmt: skip
def test_a_misspelt_aesi_term_or_soc_is_a_clear_plan_error(change: str, message: str) -> None:
    text = (Path(__file__).parent.parent / "deploy" / "plans" / "sparkle-l.yaml").read_text()
    assert change in text
    wrong = change.replace("Pneumonitis", "Pneumonits").replace("disorders", "disorder")
    with pytest.raises(PlanError) as raised:
        parse_plan(text.replace(change, wrong))
    assert message in str(raised.value)


def test_an_aesi_group_needs_terms_or_socs() -> None:
    text = (Path(__file__).parent.parent / "deploy" / "plans" / "sparkle-l.yaml").read_text()
    with pytest.raises(PlanError) as raised:
        parse_plan(text.replace("    terms: [Pneumonitis]\n", ""))
    assert "aesi.pneumonitis" in str(raised.value)
    assert "needs CTCAE terms, SOCs or both" in str(raised.value)


# -- a simulated trial, recounted from the raw events -------------------------------------------


def with_pre_dose_aes(records: list[SimulatedRecord]) -> list[SimulatedRecord]:
    """The simulated records plus, for every third patient first dosed after the day of
    consent, a related grade 3 serious neutropenia with onset on the day of consent, reported
    with the enrolment: AEs sites do report that the treatment-emergent rule must leave out."""
    docs = [json.loads(r.body) for r in records]
    first_dose: dict[str, str] = {}
    for doc in docs:
        if doc["event_type"] == "treatment.administered":
            first_dose.setdefault(doc["patient_id"], doc["occurred_at"][:10])
    out, eligible = [], 0
    for record, doc in zip(records, docs, strict=True):
        out.append(record)
        if doc["event_type"] != "patient.enrolled":
            continue
        if first_dose.get(doc["patient_id"], "9999") <= doc["consent_date"]:
            continue
        eligible += 1
        if eligible % 3:
            continue
        ae = {
            key: doc[key]
            for key in (
                "trial_id",
                "site_id",
                "patient_id",
                "reporter",
                "occurred_at",
                "recorded_at",
            )
        }
        ae |= {
            "event_type": "ae.reported", "schema_version": 1, "event_id": str(uuid.uuid4()),
            "ctcae_version": "5.0", "ctcae_term": "Neutrophil count decreased",
            "meddra_code": 10029366, "grade": 3, "onset_date": doc["consent_date"],
            "seriousness": ["hospitalisation"], "expectedness": "expected",
            "immune_related": False, "action_taken": "dose_not_changed",
            "attribution": {"radiotherapy": "unrelated", "chemotherapy": "possible",
                            "immunotherapy": "unrelated"},
        }  # fmt: skip
        out.append(replace(record, body=json.dumps(ae).encode()))
    return out


def stored_simulation(seed: int, patients: int) -> list[StoredEvent]:
    records = simulate(scenario("chemotherapy-toxicity", patients=patients, seed=seed))
    records = with_pre_dose_aes(records)
    sent = [records[0].sent_at]
    store = InMemoryEventStore(clock=lambda: sent[0])
    for start in range(0, len(records), 40):
        chunk = records[start : start + 40]
        sent[0] = chunk[-1].sent_at
        raw = [RawRecord(f"record {start + i}", r.body) for i, r in enumerate(chunk)]
        ingest(store, raw, InputFormat.NDJSON, ctcae_dictionary(), "test", None)
    return list(store.read())


@pytest.fixture(scope="module")
def simulated() -> tuple[dict[str, DmcTable], Raw, MonitoringPlan, date]:
    events = stored_simulation(seed=5, patients=60)
    data = ReviewData()
    data.fold_payloads((e.position, e.payload, e.stored_at, e.chain_hash) for e in events)
    plan = default_plan()
    as_of = events[-1].stored_at.date()
    return by_name(dmc_tables(data, plan, as_of, True)), fold_raw(events), plan, as_of


Simulated = tuple[dict[str, DmcTable], Raw, MonitoringPlan, date]


def test_simulated_overview_recounted(simulated: Simulated) -> None:
    tables, raw, _, _ = simulated
    n = treated(raw)
    withdrawn = {
        p.patient
        for p in raw.patients.values()
        if p.doses
        and p.exit is not None
        and p.exit[0] == "withdrawn"
        and p.exit[2] == "adverse_event"
    }
    checks: dict[str, Callable[[RawAe], bool]] = {
        "Any AE": lambda a: True,
        "Grade >= 3": lambda a: a.worst >= 3,
        "Serious AE": lambda a: bool(a.seriousness),
        "Leading to dose modification": lambda a: a.action in ("dose_reduced", "drug_interrupted"),
        "Leading to discontinuation": lambda a: a.action == "drug_withdrawn",
        "Fatal (grade 5)": lambda a: a.worst == 5,
    }
    seen = 0
    for row in tables["teae-overview"].rows:
        check = checks[str(row[0])]
        expected: list[int | float | None] = []
        for scope in ("all", "related", *MODALITIES):
            patients: set[str] = set()
            for ae in treatment_emergent(raw):
                if not check(ae):
                    continue
                if (
                    scope == "all"
                    or (scope == "related" and ae.related())
                    or (scope in MODALITIES and ae.related(scope))
                ):
                    patients.add(ae.patient)
            if scope == "all" and row[0] == "Leading to discontinuation":
                patients |= withdrawn
            expected += [len(patients), pct(len(patients), n)]
        assert list(row[1:]) == expected, row[0]
        seen += 1
    assert seen == 6
    assert as_int(tables["teae-overview"].rows[1][1]) > 0  # the scenario has grade >= 3 AEs
    left_out, patients_left_out = pre_dose(raw)
    assert left_out > 0  # the scenario has AEs before the first dose: the rule is exercised
    note = (
        f"AEs with onset before the first dose (or of a patient never dosed): {left_out} "
        f"(patients {patients_left_out}), not counted."
    )
    for name in ("teae-overview", "incidence-all-causality", "aesi", "incidence-rates"):
        assert note in tables[name].footnote, name


def _incidence(raw: Raw, scope: str) -> list[tuple[object, ...]]:
    n = treated(raw)
    worst_soc: dict[str, dict[str, int]] = defaultdict(dict)
    worst_term: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for ae in treatment_emergent(raw):
        if scope == "related" and not ae.related():
            continue
        soc, term = worst_soc[ae.soc], worst_term[(ae.soc, ae.term)]
        soc[ae.patient] = max(soc.get(ae.patient, 0), ae.worst)
        term[ae.patient] = max(term.get(ae.patient, 0), ae.worst)

    def row(soc: str, term: str, worst: dict[str, int]) -> tuple[object, ...]:
        grades = [list(worst.values()).count(g) for g in (1, 2, 3, 4, 5)]
        severe = sum(1 for g in worst.values() if g >= 3)
        return (soc, term, *grades, len(worst), pct(len(worst), n), severe, pct(severe, n), scope)

    rows = []
    for name in sorted(worst_soc):
        rows.append(row(name, "All terms", worst_soc[name]))
        terms = [row(s, t, w) for (s, t), w in worst_term.items() if s == name]
        terms.sort(key=lambda r: (-len(worst_term[(name, str(r[1]))]), str(r[1])))
        rows += terms
    return rows


def test_simulated_incidence_recounted(simulated: Simulated) -> None:
    tables, raw, _, _ = simulated
    assert list(tables["incidence-all-causality"].rows) == _incidence(raw, "all")
    assert list(tables["incidence-related"].rows) == _incidence(raw, "related")
    assert len(tables["incidence-all-causality"].rows) > 10


def test_simulated_aesi_recounted(simulated: Simulated) -> None:
    tables, raw, plan, _ = simulated
    n = treated(raw)
    rows = {r[0]: r[3:] for r in tables["aesi"].rows}
    for name, group in plan.aesi.items():
        worst: dict[str, int] = {}
        for ae in treatment_emergent(raw):
            if group.immune_related is not None and ae.immune != group.immune_related:
                continue
            if ae.term in group.terms or ae.soc in group.socs:
                worst[ae.patient] = max(worst.get(ae.patient, 0), ae.worst)
        severe = sum(1 for g in worst.values() if g >= 3)
        assert rows[name] == (len(worst), pct(len(worst), n), severe, pct(severe, n)), name
    assert sum(as_int(r[0]) for r in rows.values()) > 0


def test_simulated_deaths_recounted(simulated: Simulated) -> None:
    tables, raw, _, _ = simulated
    expected = []
    for p in raw.patients.values():
        if p.death is None:
            continue
        when, cause, cited = p.death
        days = []
        for modality in MODALITIES:
            before = [d["on"] for d in p.doses if d["modality"] == modality and d["on"] <= when]
            days.append((when - max(before)).days if before else None)
        fatal = raw.all_aes.get(cited) if cited else None
        fatal = None if fatal is None or fatal.retracted else fatal
        related = None
        if fatal is not None:
            related = ", ".join(m for m in MODALITIES if fatal.related(m)) or "none"
        within = ", ".join(
            m for m, d in zip(MODALITIES, days, strict=True) if d is not None and d <= 30
        )
        expected.append(
            (p.patient, p.site, when, cause, fatal.term if fatal else None, related, *days, within)
        )
    expected.sort(key=lambda r: (r[2], r[0]))
    assert list(tables["deaths"].rows) == expected
    assert expected  # the scenario has deaths


def test_simulated_currency_and_enrolment_recounted(simulated: Simulated) -> None:
    tables, raw, _, as_of = simulated
    lags: dict[str, list[int]] = defaultdict(list)
    for ae in raw.aes:
        lags[ae.site].append((ae.stored.date() - ae.onset).days)
    rows = {r[0]: r[1:] for r in tables["data-currency"].rows}
    sites = sorted({p.site for p in raw.patients.values()})
    everyone: list[int] = []
    for site in [*sites, "All sites"]:
        values = sorted(everyone if site == "All sites" else lags[site])
        on_study = [
            p for p in raw.patients.values()
            if p.exit is None and (site == "All sites" or p.site == site)
        ]  # fmt: skip
        quiet = sum(1 for p in on_study if p.last_day is None or (as_of - p.last_day).days > 30)
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
        assert rows[site] == (len(values), median, q1, q3, max(values), len(on_study), quiet), site
        everyone += lags[site]
    assert rows["All sites"][0] == len(raw.aes)

    months: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in raw.patients.values():
        key = f"{p.enrolled.year:04d}-{p.enrolled.month:02d}"
        months["All sites"][key] += 1
        months[p.site][key] += 1
    found: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for row in tables["enrolment"].rows:
        found[str(row[0])].append((str(row[1]), as_int(row[2]), as_int(row[3])))
    assert list(found) == ["All sites", *sites]
    for site, listed in found.items():
        assert sum(c for _, c, _ in listed) == sum(months[site].values())
        assert {m: c for m, c, _ in listed if c} == dict(months[site])
        assert [t for _, _, t in listed] == [
            sum(c for _, c, _ in listed[: i + 1]) for i in range(len(listed))
        ]
    assert listed[-1][0] == f"{as_of.year:04d}-{as_of.month:02d}"
