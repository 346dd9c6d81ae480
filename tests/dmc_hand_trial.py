"""A five-patient, two-site trial whose DMC tables are worked out by hand (the figures are in
the tests that use it), posted through the production path.

Days count from trial_builder.T0 (2026-01-01, 00:00 UTC); every patient is planned for all
three modalities.

- P1 (S1), enrolled day 0: FOLFOX cycle 1 day 1, cycle 2 day 15, cycle 3 day 36 (21 days
  after cycle 2: delayed) with a dose reduction; PD-1 240 mg days 1 and 22; SBRT 5 x 10 Gy
  days 10-14. Diarrhoea grade 2 (chemotherapy probable) day 5, worsened to 3 on day 7; nausea
  grade 1 unrelated day 6; neutropenia grade 3 (chemotherapy possible) day 20, dose reduced.
- P2 (S1), enrolled day 1: PD-1 200 mg day 2. ALT increased grade 3, immune-related, PD-1
  probable, hospitalisation, drug withdrawn, day 30; pneumonitis grade 2, immune-related,
  PD-1 possible, day 40.
- P3 (S2), enrolled day 2: FOLFOX cycle 1 day 3. Nausea grade 2 day 8, retracted day 9;
  withdrawn for an adverse event on day 20.
- P4 (S2), enrolled day 3: FOLFOX cycle 1 and PD-1 240 mg day 4; SBRT 3 of 5 planned
  fractions of 8 Gy days 5-7; PD-1 240 mg day 30. Hepatic failure grade 4 (SBRT possible,
  life-threatening) day 50, worsened to grade 5 (death) and resolved fatal day 52; died day
  52 citing it.
- P5 (S2), enrolled day 60: never treated, no AE.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from trial_builder import ALT_INCREASED, DIARRHEA, HEPATIC_FAILURE, NAUSEA, NEUTROPENIA, T0, Trial

PNEUMONITIS = ("Pneumonitis", 10035742)


def day(n: int) -> date:
    return (T0 + timedelta(days=n)).date()


def _sbrt(trial: Trial, patient: str, days: range, dose: float, site: str) -> None:
    for fraction, on in enumerate(days, start=1):
        treatment = {
            "modality": "radiotherapy", "technique": "SBRT", "fraction": fraction,
            "fractions_planned": 5, "dose_gy": dose, "target": "liver segment VII",
        }  # fmt: skip
        trial.add("treatment.administered", patient, on, site, treatment=treatment)


def _chemo(
    trial: Trial, patient: str, on: int, cycle: int, site: str, reduced: bool = False
) -> None:
    treatment = {
        "modality": "chemotherapy", "regimen": "FOLFOX", "cycle": cycle, "dose_reduced": reduced,
    }  # fmt: skip
    trial.add("treatment.administered", patient, on, site, 1, treatment=treatment)


def _pd1(trial: Trial, patient: str, on: int, cycle: int, mg: float, site: str) -> None:
    treatment = {"modality": "immunotherapy", "agent": "toripalimab", "dose_mg": mg, "cycle": cycle}
    trial.add("treatment.administered", patient, on, site, 2, treatment=treatment)


def _ae(trial: Trial, patient: str, on: int, term: tuple[str, int], grade: int, site: str,
        action: str = "dose_not_changed", **fields: Any) -> str:  # fmt: skip
    attribution = {"radiotherapy": "unrelated", "chemotherapy": "unrelated",
                   "immunotherapy": "unrelated", **fields.pop("attribution", {})}  # fmt: skip
    return trial.add(
        "ae.reported", patient, on, site, 3,
        ctcae_version="5.0", ctcae_term=term[0], meddra_code=term[1], grade=grade,
        onset_date=day(on).isoformat(), seriousness=fields.pop("seriousness", []),
        expectedness="expected", immune_related=fields.pop("immune_related", False),
        attribution=attribution, action_taken=action,
    )  # fmt: skip


def hand_trial() -> Trial:
    trial = Trial()
    s1, s2 = "S1", "S2"
    trial.enrol("P1", 0, s1)
    _chemo(trial, "P1", 1, 1, s1)
    _pd1(trial, "P1", 1, 1, 240, s1)
    diarrhoea = _ae(trial, "P1", 5, DIARRHEA, 2, s1, attribution={"chemotherapy": "probable"})
    _ae(trial, "P1", 6, NAUSEA, 1, s1)
    trial.update("P1", 7, diarrhoea, s1, grade=3, grade_change="worsened")
    _sbrt(trial, "P1", range(10, 15), 10, s1)
    _chemo(trial, "P1", 15, 2, s1)
    _ae(
        trial,
        "P1",
        20,
        NEUTROPENIA,
        3,
        s1,
        "dose_reduced",
        attribution={"chemotherapy": "possible"},
    )
    _pd1(trial, "P1", 22, 2, 240, s1)
    _chemo(trial, "P1", 36, 3, s1, reduced=True)

    trial.enrol("P2", 1, s1)
    _pd1(trial, "P2", 2, 1, 200, s1)
    _ae(trial, "P2", 30, ALT_INCREASED, 3, s1, "drug_withdrawn",
        attribution={"immunotherapy": "probable"}, immune_related=True,
        seriousness=["hospitalisation"])  # fmt: skip
    _ae(trial, "P2", 40, PNEUMONITIS, 2, s1,
        attribution={"immunotherapy": "possible"}, immune_related=True)  # fmt: skip

    trial.enrol("P3", 2, s2)
    _chemo(trial, "P3", 3, 1, s2)
    mistaken = _ae(trial, "P3", 8, NAUSEA, 2, s2)
    trial.retract("P3", 9, mistaken, s2)
    trial.add("patient.withdrawn", "P3", 20, s2, reason="adverse_event", details="fatigue")

    trial.enrol("P4", 3, s2)
    _chemo(trial, "P4", 4, 1, s2)
    _pd1(trial, "P4", 4, 1, 240, s2)
    _sbrt(trial, "P4", range(5, 8), 8, s2)
    _pd1(trial, "P4", 30, 2, 240, s2)
    failure = _ae(
        trial, "P4", 50, HEPATIC_FAILURE, 4, s2,
        attribution={"radiotherapy": "possible"}, seriousness=["life_threatening"],
    )  # fmt: skip
    trial.update("P4", 52, failure, s2, grade=5, grade_change="worsened",
                 seriousness=["death", "life_threatening"])  # fmt: skip
    trial.add("ae.resolved", "P4", 52, s2, 4, ae_id=failure, outcome="fatal",
              end_date=day(52).isoformat())  # fmt: skip
    trial.add("patient.died", "P4", 52, s2, 5, death_date=day(52).isoformat(),
              primary_cause="Hepatic failure", related_ae_id=failure)  # fmt: skip

    trial.enrol("P5", 60, s2)
    return trial


def hand_trial_with_pre_dose() -> Trial:
    """The hand trial plus what the treatment-emergent rule and follow-up must leave out:

    - P3 (first dose day 3): diarrhoea grade 1, unrelated, onset day 2 (before the first dose);
    - P5 (never treated): neutropenia grade 3, chemotherapy possible, serious, day 70.

    Every treatment-emergent table and rate must be the hand trial's; the footnotes count 2
    AEs of 2 patients not counted."""
    trial = hand_trial()
    _ae(trial, "P3", 2, DIARRHEA, 1, "S2")
    _ae(trial, "P5", 70, NEUTROPENIA, 3, "S2", attribution={"chemotherapy": "possible"},
        seriousness=["hospitalisation"])  # fmt: skip
    return trial
