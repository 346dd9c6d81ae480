"""The SDTM-shaped datasets (AE, SUPPAE, DM, EX, LB, DS), built from the review dataset folded
through the production path: a small hand-built trial checked value by value, and a simulated
trial recomputed independently from the raw events that were submitted."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from test_read_snapshot import ADMIN, BEIJING, BJ, SH, SHANGHAI, submit
from trial_builder import DIARRHEA, HEPATIC_FAILURE, NAUSEA, T0, Trial

from safety_stream.events import ATTRIBUTION_RANK
from safety_stream.report.snapshot import snapshot_as_of
from safety_stream.review.sdtm import arm, fit, sdtm_dataset, sdtm_datasets
from safety_stream.review.sdtm_spec import DATASETS, MAX_BYTES, MAX_LABEL, MAX_NAME, Dataset
from safety_stream.runtime import Runtime, build_memory_runtime
from safety_stream.simulate.generator import simulate
from safety_stream.simulate.rates import SimulationConfig
from safety_stream.validation.records import InputFormat

STUDY = "SPARKLE-L"


def day(n: int) -> str:
    return (T0 + timedelta(days=n)).date().isoformat()


def reported(trial: Trial, patient: str, n: int, term: tuple[str, int], grade: int,
             site: str, **fields: Any) -> str:  # fmt: skip
    document: dict[str, Any] = {
        "ctcae_version": "5.0", "ctcae_term": term[0], "meddra_code": term[1], "grade": grade,
        "onset_date": day(n), "seriousness": [], "expectedness": "expected",
        "immune_related": False, "action_taken": "dose_not_changed",
        "attribution": {"radiotherapy": "unrelated", "chemotherapy": "unrelated",
                        "immunotherapy": "unrelated"},
    }  # fmt: skip
    document.update(fields)
    return trial.add("ae.reported", patient, n, site, **document)


def hand_trial() -> tuple[Trial, dict[str, str]]:
    """Four patients at two sites: doses, labs, amended, resolved, retracted and fatal AEs, a
    death, a withdrawal and a loss to follow-up."""
    t = Trial()
    ids: dict[str, str] = {}
    t.enrol("P1", 0, SH)
    t.add("lab.resulted", "P1", 0, SH, hours=1, test="ALT", value=30.0, unit="U/L", uln=40.0)
    t.add("lab.resulted", "P1", 0, SH, hours=2, test="AST", value=25.5, unit="U/L",
          uln=40.0, lln=5.0)  # fmt: skip
    t.treat("P1", "chemotherapy", 1, SH)
    t.treat("P1", "immunotherapy", 1, SH)
    t.add("lab.resulted", "P1", 10, SH, test="ALT", value=120.0, unit="U/L", uln=40.0)
    t.treat("P1", "radiotherapy", 20, SH)
    ids["diarrhoea"] = reported(
        t, "P1", 3, DIARRHEA, 2, SH, verbatim_term="=1+1 watery stools",
        attribution={"radiotherapy": "unrelated", "chemotherapy": "probable",
                     "immunotherapy": "unlikely"},
        action_taken="dose_reduced",
    )  # fmt: skip
    t.update("P1", 5, ids["diarrhoea"], SH, grade=3, grade_change="worsened")
    t.add("ae.resolved", "P1", 8, SH, ae_id=ids["diarrhoea"], outcome="recovered",
          end_date=day(8))  # fmt: skip
    ids["nausea"] = reported(
        t, "P1", 4, NAUSEA, 1, SH, seriousness=["hospitalisation"], immune_related=True,
        attribution={"radiotherapy": "unrelated", "chemotherapy": "unlikely",
                     "immunotherapy": "possible"},
    )  # fmt: skip
    ids["retracted"] = reported(t, "P1", 6, NAUSEA, 1, SH)
    t.retract("P1", 7, ids["retracted"], SH)

    t.enrol("P2", 2, SH)
    t.treat("P2", "chemotherapy", 3, SH)
    ids["fatal"] = reported(
        t, "P2", 30, HEPATIC_FAILURE, 4, SH, seriousness=["life_threatening"],
        attribution={"radiotherapy": "definite", "chemotherapy": "possible",
                     "immunotherapy": "unlikely"},
    )  # fmt: skip
    t.update("P2", 31, ids["fatal"], SH, grade=5, grade_change="worsened",
             seriousness=["death", "life_threatening"])  # fmt: skip
    t.add("patient.died", "P2", 31, SH, death_date=day(31), primary_cause="hepatic failure",
          related_ae_id=ids["fatal"])  # fmt: skip

    t.enrol("P3", 1, BJ)
    t.treat("P3", "immunotherapy", 2, BJ)
    t.add("patient.withdrawn", "P3", 40, BJ, reason="investigator_decision")
    t.enrol("P4", 1, BJ)
    t.add("patient.lost_to_follow_up", "P4", 50, BJ, last_contact_date=day(45))
    return t, ids


def rows_by(dataset: Dataset, *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for row in dataset.rows:
        record = dict(zip(dataset.names, row, strict=True))
        out[tuple(record[k] for k in keys)] = record
    return out


def hand_runtime() -> tuple[Runtime, dict[str, str]]:
    runtime = build_memory_runtime()
    trial, ids = hand_trial()
    submit(runtime, trial)
    return runtime, ids


def test_the_hand_built_trial_gives_the_hand_computed_rows() -> None:
    runtime, ids = hand_runtime()
    sets = runtime.review.read(ADMIN, sdtm_datasets)
    assert {k: len(d.rows) for k, d in sets.items()} == {
        "ae": 3, "suppae": 12, "dm": 4, "ex": 5, "lb": 3, "ds": 7,
    }  # fmt: skip
    p1, p2 = f"{STUDY}-P1", f"{STUDY}-P2"
    ae = rows_by(sets["ae"], "USUBJID", "AESEQ")
    assert set(ae) == {(p1, 1), (p1, 2), (p2, 1)}  # the retracted AE is not there
    diarrhoea, nausea, fatal = ae[(p1, 1)], ae[(p1, 2)], ae[(p2, 1)]
    assert diarrhoea["AESPID"] == ids["diarrhoea"]
    assert (diarrhoea["AETERM"], diarrhoea["AEDECOD"]) == ("=1+1 watery stools", "Diarrhea")
    assert diarrhoea["AELLTCD"] == DIARRHEA[1]
    assert diarrhoea["AEBODSYS"] == "Gastrointestinal disorders"
    assert diarrhoea["AETOXGR"] == "3"  # worsened from 2
    assert (diarrhoea["AEREL"], diarrhoea["AEACN"]) == ("PROBABLE", "DOSE REDUCED")
    assert (diarrhoea["AEOUT"], diarrhoea["AESTDTC"], diarrhoea["AEENDTC"]) == (
        "RECOVERED/RESOLVED", day(3), day(8),
    )  # fmt: skip
    assert diarrhoea["AESER"] == "N"
    assert (nausea["AETERM"], nausea["AESER"], nausea["AESHOSP"], nausea["AESDTH"]) == (
        "Nausea", "Y", "Y", "N",
    )  # fmt: skip
    assert (nausea["AEREL"], nausea["AEOUT"], nausea["AEENDTC"]) == (
        "POSSIBLE", "NOT RECOVERED/NOT RESOLVED", "",
    )  # fmt: skip
    # grade 4 as reported, then 5, and cited by the death
    assert (fatal["AETOXGR"], fatal["AESDTH"], fatal["AESLIFE"], fatal["AESER"]) == (
        "5", "Y", "Y", "Y",
    )  # fmt: skip
    assert (fatal["AEOUT"], fatal["AEREL"], fatal["AEENDTC"]) == ("FATAL", "DEFINITE", "")

    supp = {(r["USUBJID"], r["IDVARVAL"], r["QNAM"]): r for r in rows_by(
        sets["suppae"], "USUBJID", "IDVARVAL", "QNAM").values()}  # fmt: skip
    assert {k: r["QVAL"] for k, r in supp.items() if k[:2] == (p1, "2")} == {
        (p1, "2", "AEREL1"): "UNRELATED",
        (p1, "2", "AEREL2"): "UNLIKELY",
        (p1, "2", "AEREL3"): "POSSIBLE",
        (p1, "2", "AEIRAE"): "Y",
    }
    assert supp[(p2, "1", "AEREL1")]["QLABEL"] == "Relationship to SBRT"
    assert {r["RDOMAIN"] for r in supp.values()} == {"AE"}
    assert {r["IDVAR"] for r in supp.values()} == {"AESEQ"}

    dm = rows_by(sets["dm"], "SUBJID")
    assert (dm[("P1",)]["RFSTDTC"], dm[("P1",)]["RFENDTC"]) == (
        f"{day(1)}T00:00:00", f"{day(20)}T00:00:00",
    )  # fmt: skip
    assert (dm[("P1",)]["RFICDTC"], dm[("P1",)]["SITEID"]) == (day(0), SH)
    assert dm[("P1",)]["ARM"] == dm[("P1",)]["ACTARM"] == "SBRT + PD-1 + 5-FU"
    assert (dm[("P2",)]["DTHFL"], dm[("P2",)]["DTHDTC"], dm[("P2",)]["RFPENDTC"]) == (
        "Y", day(31), day(31),
    )  # fmt: skip
    assert dm[("P2",)]["ACTARM"] == "5-FU" and dm[("P1",)]["DTHFL"] == ""
    assert (dm[("P4",)]["RFSTDTC"], dm[("P4",)]["ACTARMCD"]) == ("", "NOTTRT")
    assert dm[("P3",)]["RFPENDTC"] == day(40)

    ex = rows_by(sets["ex"], "USUBJID", "EXSEQ")
    assert [ex[(p1, n)]["EXTRT"] for n in (1, 2, 3)] == ["FOLFOX", "toripalimab", "SBRT"]
    assert (ex[(p1, 3)]["EXDOSE"], ex[(p1, 3)]["EXDOSU"], ex[(p1, 3)]["EXSPID"]) == (
        10.0, "Gy", "FRACTION 1/5",
    )  # fmt: skip
    assert (ex[(p1, 2)]["EXDOSE"], ex[(p1, 2)]["EXDOSU"]) == (240.0, "mg")
    assert ex[(p1, 1)]["EXDOSE"] is None

    lb = rows_by(sets["lb"], "USUBJID", "LBSEQ")
    assert [(r["LBTESTCD"], r["LBORRES"], r["LBORNRLO"], r["LBORNRHI"], r["LBBLFL"])
            for r in lb.values()] == [
        ("ALT", "30", "", "40", "Y"), ("AST", "25.5", "5", "40", "Y"),
        ("ALT", "120", "", "40", ""),
    ]  # fmt: skip

    ds = [(r[2], r[5]) for r in sets["ds"].rows]
    assert ds == [
        (p1, "INFORMED CONSENT OBTAINED"),
        (p2, "INFORMED CONSENT OBTAINED"), (p2, "DEATH"),
        (f"{STUDY}-P3", "INFORMED CONSENT OBTAINED"), (f"{STUDY}-P3", "PHYSICIAN DECISION"),
        (f"{STUDY}-P4", "INFORMED CONSENT OBTAINED"), (f"{STUDY}-P4", "LOST TO FOLLOW-UP"),
    ]  # fmt: skip
    assert sets["ds"].rows[-1][-1] == day(45)  # the last contact, not the day it was sent


def test_a_cut_off_leaves_out_what_is_dated_after_it_live_as_in_the_snapshot() -> None:
    runtime, ids = hand_runtime()
    cutoff = date.fromisoformat(day(5))
    live = runtime.review.read(ADMIN, lambda d: sdtm_datasets(d, cutoff))
    snapshot = snapshot_as_of(runtime.store, runtime.plan, datetime.now(UTC), cutoff)
    assert sdtm_datasets(snapshot.review(), cutoff) == live
    ae = rows_by(live["ae"], "AESPID")
    assert set(ae) == {(ids["diarrhoea"],), (ids["nausea"],)}  # the fatal AE is later
    # resolved after the cut-off: ongoing as of it
    assert (ae[(ids["diarrhoea"],)]["AEOUT"], ae[(ids["diarrhoea"],)]["AEENDTC"]) == (
        "NOT RECOVERED/NOT RESOLVED", "",
    )  # fmt: skip
    dm = rows_by(live["dm"], "SUBJID")
    assert dm[("P1",)]["RFENDTC"] == f"{day(1)}T00:00:00"  # the SBRT on day 20 is later
    assert dm[("P2",)]["DTHFL"] == ""
    assert len(live["lb"].rows) == 2 and len(live["ex"].rows) == 4
    assert [r[5] for r in live["ds"].rows] == ["INFORMED CONSENT OBTAINED"] * 4


def course_trial() -> tuple[Trial, dict[str, str]]:
    """Two patients whose AEs go on changing after a cut-off on day 10: a worsening that
    happened before it but was recorded after it, worsenings, a new attribution, a fatal
    resolution and a death dated after it, and a correction recorded after it."""
    t = Trial()
    ids: dict[str, str] = {}
    related = {"radiotherapy": "unrelated", "chemotherapy": "possible",
               "immunotherapy": "unlikely"}  # fmt: skip
    t.enrol("P5", 0, SH)
    t.treat("P5", "chemotherapy", 1, SH)
    ids["course"] = reported(t, "P5", 2, DIARRHEA, 2, SH, attribution=related)
    # worse on day 4, recorded on day 12: dated inside the cut-off, so counted as of it
    t.update("P5", 4, ids["course"], SH, grade=3, grade_change="worsened",
             recorded_at=f"{day(12)}T09:00:00+00:00")  # fmt: skip
    # worse again on day 11 (life-threatening, now probably related and immune-related), fatal
    # on day 12: all after the cut-off
    t.update("P5", 11, ids["course"], SH, grade=4, grade_change="worsened",
             seriousness=["life_threatening"], immune_related=True,
             attribution={**related, "chemotherapy": "probable"})  # fmt: skip
    t.update("P5", 12, ids["course"], SH, grade=5, grade_change="worsened",
             seriousness=["death", "life_threatening"])  # fmt: skip
    t.add("ae.resolved", "P5", 12, SH, ae_id=ids["course"], outcome="fatal", end_date=day(12))
    t.enrol("P6", 0, SH)
    t.treat("P6", "radiotherapy", 1, SH)
    ids["cited"] = reported(t, "P6", 3, HEPATIC_FAILURE, 3, SH)
    # a correction of the attribution recorded on day 13: a correction applies whenever it was
    # recorded, so it is in the cut-off's picture too
    t.update("P6", 13, ids["cited"], SH, attribution={**related, "radiotherapy": "definite"})
    t.update("P6", 15, ids["cited"], SH, grade=5, grade_change="worsened", seriousness=["death"])
    t.add("patient.died", "P6", 15, SH, death_date=day(15), primary_cause="hepatic failure",
          related_ae_id=ids["cited"])  # fmt: skip
    return t, ids


def test_what_happens_to_an_ae_after_the_cut_off_is_not_in_it_live_as_in_the_snapshot() -> None:
    runtime = build_memory_runtime()
    trial, ids = course_trial()
    submit(runtime, trial)
    cutoff = date.fromisoformat(day(10))
    live = runtime.review.read(ADMIN, lambda d: sdtm_datasets(d, cutoff))
    snapshot = snapshot_as_of(runtime.store, runtime.plan, datetime.now(UTC), cutoff)
    assert sdtm_datasets(snapshot.review(), cutoff) == live
    ae = rows_by(live["ae"], "AESPID")
    course, cited = ae[(ids["course"],)], ae[(ids["cited"],)]
    # grade 3 (worsened on day 4, recorded on day 12): not 4, not 5, not fatal, not serious
    assert (course["AETOXGR"], course["AESER"], course["AESLIFE"], course["AESDTH"]) == (
        "3", "N", "N", "N",
    )  # fmt: skip
    assert (course["AEOUT"], course["AEENDTC"], course["AEREL"]) == (
        "NOT RECOVERED/NOT RESOLVED", "", "POSSIBLE",
    )  # fmt: skip
    # the death on day 15 cites it, but as of day 10 it is a grade 3 AE, ongoing
    assert (cited["AETOXGR"], cited["AESER"], cited["AESDTH"], cited["AEOUT"]) == (
        "3", "N", "N", "NOT RECOVERED/NOT RESOLVED",
    )  # fmt: skip
    assert cited["AEREL"] == "DEFINITE"  # the correction recorded on day 13
    supp = {(r["USUBJID"], r["QNAM"]): r["QVAL"] for r in rows_by(
        live["suppae"], "USUBJID", "QNAM").values()}  # fmt: skip
    p5 = f"{STUDY}-P5"
    assert (supp[(p5, "AEIRAE")], supp[(p5, "AEREL2")]) == ("N", "POSSIBLE")
    assert rows_by(live["dm"], "SUBJID")[("P6",)]["DTHFL"] == ""
    # without a cut-off: what the log says now
    now = rows_by(runtime.review.read(ADMIN, sdtm_datasets)["ae"], "AESPID")
    assert [(now[(k,)]["AETOXGR"], now[(k,)]["AESDTH"], now[(k,)]["AEOUT"])
            for k in (ids["course"], ids["cited"])] == [("5", "Y", "FATAL")] * 2  # fmt: skip
    assert now[(ids["course"],)]["AEREL"] == "PROBABLE"


def test_a_cut_off_between_an_onset_and_the_death_it_caused() -> None:
    runtime, ids = hand_runtime()
    cutoff = date.fromisoformat(day(30))  # P2's AE began on day 30; worse and fatal on day 31
    live = runtime.review.read(ADMIN, lambda d: sdtm_datasets(d, cutoff))
    snapshot = snapshot_as_of(runtime.store, runtime.plan, datetime.now(UTC), cutoff)
    assert sdtm_datasets(snapshot.review(), cutoff) == live
    fatal = rows_by(live["ae"], "AESPID")[(ids["fatal"],)]
    assert (fatal["AETOXGR"], fatal["AESDTH"], fatal["AESER"], fatal["AESLIFE"]) == (
        "4", "N", "Y", "Y",
    )  # fmt: skip
    assert (fatal["AEOUT"], fatal["AEENDTC"]) == ("NOT RECOVERED/NOT RESOLVED", "")


def test_arms_use_the_cdisc_null_values() -> None:
    assert arm(["chemotherapy", "radiotherapy"], planned=True) == ("SBRT-5FU", "SBRT + 5-FU")
    assert arm({"immunotherapy"}, planned=False) == ("PD1", "PD-1")
    # planned: no arm assigned (SDTMIG 5.2 DM: NOTASSGN); actual: nothing given (NOTTRT)
    assert arm([], planned=True) == ("NOTASSGN", "Not Assigned")
    assert arm(set(), planned=False) == ("NOTTRT", "Not Treated")


def test_a_site_gets_its_own_patients_only() -> None:
    runtime, _ = hand_runtime()
    for site, principal in ((SH, SHANGHAI), (BJ, BEIJING)):
        sets = runtime.review.read(principal, sdtm_datasets)
        expected = {f"{STUDY}-P1", f"{STUDY}-P2"} if site == SH else {f"{STUDY}-P3",
                                                                      f"{STUDY}-P4"}  # fmt: skip
        for name, dataset in sets.items():
            assert set(dataset.column("USUBJID")) <= expected, name
        assert set(sets["dm"].column("USUBJID")) == expected
        assert set(sets["dm"].column("SITEID")) == {site}


def test_names_labels_and_values_keep_to_the_xpt_v5_limits() -> None:
    runtime, _ = hand_runtime()
    for dataset in runtime.review.read(ADMIN, sdtm_datasets).values():
        assert len(dataset.name) <= MAX_NAME and len(dataset.label) <= MAX_LABEL
        for column in dataset.columns:
            assert len(column.name) <= MAX_NAME and len(column.label) <= MAX_LABEL
        for row in dataset.rows:
            assert len(row) == len(dataset.columns)
            for column, value in zip(dataset.columns, row, strict=True):
                if column.type == "Char":
                    assert isinstance(value, str) and len(value.encode()) <= MAX_BYTES
                else:
                    assert value is None or isinstance(value, int | float)
    assert fit("é" * 150) == "é" * 100  # 200 bytes, never half a character
    data = runtime.review.read(ADMIN, lambda d: d)
    assert sdtm_dataset(data, "dm").name == "DM"
    with pytest.raises(ValueError, match="unknown dataset 'vs': expected one of ae, suppae"):
        sdtm_dataset(data, "vs")
    assert set(DATASETS) == {"ae", "suppae", "dm", "ex", "lb", "ds"}


# -- a simulated trial, recomputed from the raw events ----------------------------------------


def simulated() -> tuple[Runtime, list[dict[str, Any]]]:
    records = [r for r in simulate(SimulationConfig(patients=24, sites=3, seed=11)) if r.valid]
    runtime = build_memory_runtime()
    body = b"\n".join(r.body for r in records)
    report = runtime.submitter.submit(body, InputFormat.NDJSON, ADMIN, None)
    assert {o.status for o in report.outcomes} == {"stored"}  # type: ignore[union-attr]
    return runtime, [json.loads(r.body) for r in records]


def utc_text(text: str) -> str:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="seconds")


def expected_from(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the datasets must hold, from the raw event documents, in submission order."""
    attribution: dict[str, dict[str, str]] = {}
    owner: dict[str, str] = {}
    retracted: set[str] = set()
    doses: dict[str, list[str]] = {}
    died: set[str] = set()
    exits: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for e in events:
        kind, patient = e["event_type"], e["patient_id"]
        counts[kind] += 1
        if kind == "ae.reported":
            attribution[e["event_id"]] = e["attribution"]
            owner[e["event_id"]] = patient
        elif kind == "ae.updated" and e.get("attribution"):
            attribution[e["ae_id"]] = e["attribution"]
        elif kind == "ae.retracted":
            retracted.add(e["ae_id"])
        elif kind == "treatment.administered":
            doses.setdefault(patient, []).append(utc_text(e["occurred_at"]))
        elif kind == "patient.died":
            died.add(patient)
        if kind in ("patient.died", "patient.withdrawn", "patient.lost_to_follow_up"):
            exits[patient] = kind
    live = {ae: a for ae, a in attribution.items() if ae not in retracted}
    return {
        "attribution": live,
        "owner": owner,
        "died": died,
        "first_last": {p: (min(d), max(d)) for p, d in doses.items()},
        "counts": {
            "ae": len(live),
            "suppae": 4 * len(live),
            "dm": counts["patient.enrolled"],
            "ex": counts["treatment.administered"],
            "lb": counts["lab.resulted"],
            "ds": counts["patient.enrolled"] + len(died)
            + sum(k != "patient.died" for k in exits.values()),
        },
    }  # fmt: skip


def test_a_simulated_trial_equals_its_raw_events_recounted() -> None:
    runtime, events = simulated()
    expected = expected_from(events)
    sets = runtime.review.read(ADMIN, sdtm_datasets)
    assert {k: len(d.rows) for k, d in sets.items()} == expected["counts"]
    assert expected["counts"]["lb"] > 0 and expected["died"]  # the simulation has both

    seq_of = {(r["USUBJID"], str(r["AESEQ"])): r["AESPID"] for r in rows_by(
        sets["ae"], "AESPID").values()}  # fmt: skip
    got: dict[str, dict[str, str]] = {}
    for r in rows_by(sets["suppae"], "USUBJID", "IDVARVAL", "QNAM").values():
        if r["QNAM"].startswith("AEREL"):
            got.setdefault(seq_of[(r["USUBJID"], r["IDVARVAL"])], {})[r["QNAM"]] = r["QVAL"]
    names = {"AEREL1": "radiotherapy", "AEREL2": "chemotherapy", "AEREL3": "immunotherapy"}
    assert got == {
        ae: {q: given[m].upper() for q, m in names.items()}
        for ae, given in expected["attribution"].items()
    }
    for r in rows_by(sets["ae"], "AESPID").values():
        given = expected["attribution"][r["AESPID"]]
        assert r["AEREL"] == max(given.values(), key=ATTRIBUTION_RANK.__getitem__).upper()
        assert r["USUBJID"] == f"{STUDY}-{expected['owner'][r['AESPID']]}"

    dm = rows_by(sets["dm"], "SUBJID")
    assert {p for (p,), r in dm.items() if r["DTHFL"] == "Y"} == expected["died"]
    assert {p: (r["RFSTDTC"], r["RFENDTC"]) for (p,), r in dm.items() if r["RFSTDTC"]} == (
        expected["first_last"]
    )
