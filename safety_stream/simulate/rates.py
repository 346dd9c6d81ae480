"""Simulation settings, and the published rates the defaults come from.

Per patient and modality, the chance of at least one *related* grade >= 3 AE in the modality's
early window (chemotherapy: the first 4 cycles; the PD-1 antibody: 12 weeks; SBRT: 90 days
after the last fraction), matching the SPARKLE-L plan's expected rates:

- chemotherapy (5-FU based, FOLFOX): 0.45. FOLFOX4 first line in colorectal cancer: grade 3-4
  neutropenia 41.7 %, grade 3-4 diarrhoea 11.9 %, grade 3 sensory neuropathy 18.2 % (de
  Gramont et al., J Clin Oncol 2000;18:2938-47). Neutropenia is the commonest severe AE
  (``SEVERE_TERMS`` share); neuropathy is cumulative (oxaliplatin dose), so it is simulated
  low-grade and from the third cycle on, never as an early grade 3.
- immunotherapy (PD-1 antibody): 0.14. Treatment-related grade >= 3 AEs of PD-1/PD-L1
  inhibitors, 14.0 % (95 % CI 12.1-16.1) in a meta-analysis of 125 trials (Wang et al., JAMA
  Oncol 2019;5:1008-19). Terms: colitis, ALT increase, pneumonitis, rash, hypothyroidism.
- radiotherapy (liver SBRT): 0.05. Grade >= 3 toxicity after SBRT for liver metastases was
  below 2-5 % in prospective series (Rusthoven et al., J Clin Oncol 2009;27:1572-8, 60 Gy in
  3 fractions: < 2 % grade >= 3); 0.05 is the cautious end. Terms: AST increase, ascites,
  abdominal pain, hepatic failure.

A lab AE comes with its lab value (an ALT increase of grade 3 with ALT 5-20 x ULN; hepatic
failure with bilirubin > 3 x ULN and a Child-Pugh rise), so RILD and the lab sentinels see
what the sites' labs would show. Every patient has liver labs and a Child-Pugh score at
baseline and at 3 months. Patients leave follow-up as they do in a 6-month phase II trial of
metastatic disease (illustrative shares: deaths from progression, withdrawals, losses); a
small share of severe AEs is fatal (grade 5, with ``patient.died`` citing it), and a share of
grade 4 serious AEs is life-threatening, so that the 7-day expedited clock runs.

Low-grade (1-2) related AEs are common with every modality (``low_grade_per_patient`` on
average). Scenarios change the rates so that the monitoring plan's alert path is exercised.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MODALITIES = ("radiotherapy", "chemotherapy", "immunotherapy")

TERMS: dict[str, list[str]] = {
    "chemotherapy": [
        "Neutrophil count decreased",
        "Diarrhea",
        "Mucositis oral",
        "Peripheral sensory neuropathy",
        "Febrile neutropenia",
        "Nausea",
        "Fatigue",
        "Vomiting",
    ],
    "immunotherapy": [
        "Colitis",
        "Alanine aminotransferase increased",
        "Pneumonitis",
        "Rash maculo-papular",
        "Hypothyroidism",
        "Pruritus",
    ],
    "radiotherapy": [
        "Abdominal pain",
        "Ascites",
        "Aspartate aminotransferase increased",
        "Hepatic failure",
        "Fatigue",
        "Nausea",
    ],
}


# Relative shares of the terms among related grade >= 3 AEs of each modality (illustrative,
# in the order of the sources' frequencies); every term here has grades 3 and 4 in CTCAE v5.0.
SEVERE_TERMS: dict[str, dict[str, float]] = {
    "chemotherapy": {
        "Neutrophil count decreased": 0.55,
        "Diarrhea": 0.16,
        "Febrile neutropenia": 0.07,
        "Mucositis oral": 0.06,
        "Vomiting": 0.06,
        "Fatigue": 0.10,
    },
    "immunotherapy": {
        "Alanine aminotransferase increased": 0.30,
        "Colitis": 0.25,
        "Rash maculo-papular": 0.20,
        "Pneumonitis": 0.15,
        "Hypothyroidism": 0.10,
    },
    "radiotherapy": {
        "Aspartate aminotransferase increased": 0.40,
        "Ascites": 0.20,
        "Abdominal pain": 0.25,
        "Hepatic failure": 0.15,
    },
}
# A term that is cumulative: never before this day after enrolment, and only low-grade here.
CUMULATIVE_FROM_DAY = {"Peripheral sensory neuropathy": 29}
# Terms that can be fatal (grade 5) when a related death is simulated, per modality.
FATAL_TERMS = {
    "chemotherapy": "Febrile neutropenia",
    "immunotherapy": "Pneumonitis",
    "radiotherapy": "Hepatic failure",
}


class SimulationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 1
    sites: int = Field(default=6, ge=1, le=99)
    patients: int = Field(default=60, ge=1, le=100_000)
    enrolment_days: int = Field(default=240, ge=1, description="enrolment period")
    severe_rate: dict[str, float] = Field(
        default={"chemotherapy": 0.45, "immunotherapy": 0.14, "radiotherapy": 0.05}
    )
    # leaving follow-up within the first 6 months (illustrative)
    death_share: float = Field(default=0.04, ge=0, le=1, description="die of progression")
    related_death_share: float = Field(default=0.01, ge=0, le=1, description="die of an AE")
    withdrawal_share: float = Field(default=0.05, ge=0, le=1)
    lost_share: float = Field(default=0.02, ge=0, le=1, description="lost to follow-up")
    life_threatening_share: float = Field(
        default=0.5, ge=0, le=1, description="serious grade 4 AEs that are life-threatening"
    )
    low_grade_per_patient: float = Field(default=2.0, ge=0)
    upgrade_share: float = Field(default=0.10, ge=0, le=1, description="AEs that worsen")
    improve_share: float = Field(
        default=0.30, ge=0, le=1, description="severe AEs that improve to grade 1-2 first"
    )
    resolve_share: float = Field(default=0.70, ge=0, le=1)
    correction_share: float = Field(default=0.05, ge=0, le=1, description="attribution fixed")
    retraction_share: float = Field(default=0.02, ge=0, le=1, description="entered in error")
    late_share: float = Field(default=0.05, ge=0, le=1, description="reported weeks late")
    invalid_share: float = Field(default=0.02, ge=0, le=1, description="bad submissions")


SCENARIOS: dict[str, dict[str, object]] = {
    "default": {},
    # the chemotherapy backbone is far more toxic than planned: its Pocock boundary is crossed
    "chemotherapy-toxicity": {
        "severe_rate": {"chemotherapy": 0.85, "immunotherapy": 0.14, "radiotherapy": 0.05}
    },
    # immune-related toxicity well above the plan's unacceptable 35 %
    "immunotherapy-toxicity": {
        "severe_rate": {"chemotherapy": 0.45, "immunotherapy": 0.60, "radiotherapy": 0.05}
    },
}


def scenario(name: str, **overrides: object) -> SimulationConfig:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r} (allowed: {', '.join(SCENARIOS)})")
    return SimulationConfig.model_validate(SCENARIOS[name] | overrides)
