"""Small explicit histories for the liver-safety, cumulative-incidence and narrative tests, and a
helper that posts a history through the production path (one site's token per site)."""

from __future__ import annotations

from datetime import timedelta

from trial_builder import DIARRHEA, NAUSEA, NEUTROPENIA, T0, Trial

S1, S2 = "LIV-S1", "LIV-S2"
AS_OF_DAY = 40


def day(n: int) -> str:
    return (T0 + timedelta(days=n)).date().isoformat()


def bilirubin(trial: Trial, patient: str, on: int, times_uln: float, site: str) -> None:
    """Total bilirubin in umol/L with a ULN of 21 (the liver enzymes use U/L, ULN 40)."""
    trial.add(
        "lab.resulted", patient, on, site,
        test="bilirubin_total", value=round(21.0 * times_uln, 4), unit="umol/L", uln=21.0,
    )  # fmt: skip


def liver_trial() -> Trial:
    """Five patients at two sites (see tests/test_liver_safety.py for what each shows)."""
    t = Trial()
    # L1 (S1): normal baseline before the first dose, ALT up to grade 3, a same-draw Hy's law pair
    t.enrol("L1", 0, S1)
    t.lab("L1", 0, "ALT", 0.8, S1)
    t.lab("L1", 0, "ALP", 1.0, S1)
    bilirubin(t, "L1", 0, 0.5, S1)
    t.treat("L1", "chemotherapy", 1, S1)
    t.lab("L1", 10, "ALT", 3.5, S1)
    t.lab("L1", 10, "AST", 2.0, S1)
    t.lab("L1", 10, "ALP", 2.5, S1)
    bilirubin(t, "L1", 10, 2.5, S1)
    t.lab("L1", 20, "ALT", 6.0, S1)
    # L2 (S1): no value before the first dose: baseline missing, every value post-baseline
    t.enrol("L2", 0, S1)
    t.treat("L2", "chemotherapy", 1, S1)
    t.lab("L2", 5, "ALT", 1.2, S1)
    t.lab("L2", 5, "AST", 4.0, S1)
    bilirubin(t, "L2", 5, 0.5, S1)
    t.lab("L2", 9, "ALT", 1.1, S1)
    t.lab("L2", 30, "AST", 0.5, S1)
    bilirubin(t, "L2", 60, 2.5, S1)
    # L3 (S2): ALT grade 4 and bilirubin > 2 x ULN 40 days apart: Hy's quadrant, no pair
    t.enrol("L3", 0, S2)
    t.lab("L3", 0, "ALT", 1.0, S2)
    t.lab("L3", 0, "ALP", 2.6, S2)
    bilirubin(t, "L3", 0, 0.5, S2)
    t.treat("L3", "immunotherapy", 1, S2)
    t.lab("L3", 40, "ALT", 25.0, S2)
    bilirubin(t, "L3", 80, 2.2, S2)
    # L4 (S2): never dosed (every value post-baseline); 3.0 x ULN is still grade 1
    t.enrol("L4", 0, S2)
    t.lab("L4", 3, "ALT", 0.5, S2)
    t.lab("L4", 8, "ALT", 3.0, S2)
    # L5 (S1): dosed, no labs at all
    t.enrol("L5", 0, S1)
    t.treat("L5", "chemotherapy", 1, S1)
    return t


def child_pugh_trial() -> Trial:
    t = Trial()
    # C1: baseline 5, rise to 7 on day 40 (inside 90 days of the last fraction on day 12)
    t.enrol("C1", 0, S1)
    t.child_pugh("C1", 0, 5, S1)
    for fraction_day in (10, 11, 12):
        t.treat("C1", "radiotherapy", fraction_day, S1)
    t.child_pugh("C1", 40, 7, S1)
    t.child_pugh("C1", 150, 9, S1)
    # C2: baseline 6, rise to 8 only on day 120 (after day 10 + 90)
    t.enrol("C2", 0, S1)
    t.child_pugh("C2", 5, 6, S1)
    t.treat("C2", "radiotherapy", 10, S1)
    t.child_pugh("C2", 120, 8, S1)
    # C3: no score before SBRT: a rise cannot be judged
    t.enrol("C3", 0, S2)
    t.treat("C3", "radiotherapy", 10, S2)
    t.child_pugh("C3", 30, 8, S2)
    # C4: never irradiated
    t.enrol("C4", 0, S2)
    t.child_pugh("C4", 0, 5, S2)
    t.treat("C4", "chemotherapy", 1, S2)
    t.child_pugh("C4", 30, 9, S2)
    return t


def competing_trial() -> tuple[Trial, dict[str, str]]:
    """Seven patients, day 0 = 2026-01-01; the cut-off is day 40. Outcomes (any modality):
    PT-3 event t=3, PT-2 event t=5, PT-1 event t=10, PT-5 censored t=10 (withdrawn), PT-4
    death t=20 (its grade 3 AE was retracted), PT-7 event t=20 (an AE the day it died), PT-6
    censored t=40 (never dosed: from enrolment)."""
    t, ids = Trial(), {}
    for n in range(1, 8):
        t.enrol(f"PT-{n}", 0, S1)
    t.treat("PT-1", "chemotherapy", 2, S1)
    for patient in ("PT-3", "PT-4", "PT-7"):
        t.treat(patient, "chemotherapy", 1, S1)
    t.treat("PT-2", "immunotherapy", 1, S1)
    t.treat("PT-5", "radiotherapy", 1, S1)
    ids["PT-1"] = t.ae("PT-1", 12, *NEUTROPENIA, 3, ct="possible", site=S1)
    ids["PT-2"] = t.ae("PT-2", 6, *DIARRHEA, 2, it="possible", site=S1,
                       seriousness=["hospitalisation"])  # fmt: skip
    t.lab("PT-2", 8, "ALT", 2.0, S1)
    t.lab("PT-2", 30, "ALT", 9.0, S1)
    t.update("PT-2", 9, ids["PT-2"], S1, grade=3, grade_change="worsened")
    ids["PT-3"] = t.ae("PT-3", 4, *NAUSEA, 3, site=S1, seriousness=["hospitalisation"])
    t.update("PT-3", 8, ids["PT-3"], S1,
             attribution={"radiotherapy": "unrelated", "chemotherapy": "probable",
                          "immunotherapy": "unrelated"})  # fmt: skip
    ids["PT-4"] = t.ae("PT-4", 5, *NEUTROPENIA, 3, ct="possible", site=S1)
    t.retract("PT-4", 7, ids["PT-4"], S1)
    t.add("patient.died", "PT-4", 21, S1, death_date=day(21), primary_cause="disease progression")
    t.add("patient.withdrawn", "PT-5", 11, S1, reason="consent_withdrawn")
    ids["PT-7"] = t.ae("PT-7", 21, *DIARRHEA, 3, ct="possible", site=S1,
                       seriousness=["hospitalisation"])  # fmt: skip
    t.add("patient.died", "PT-7", 21, S1, death_date=day(21), primary_cause="sepsis")
    return t, ids
