"""Simulation settings, and the published rates the defaults come from.

Per patient and modality, the chance of at least one *related* grade >= 3 AE over the course:

- chemotherapy (5-FU based, FOLFOX): 0.40. FOLFOX4 first line in colorectal cancer: grade 3-4
  neutropenia 41.7 %, grade 3-4 diarrhoea 11.9 % (de Gramont et al., J Clin Oncol 2000;
  18:2938-47). Terms: neutropenia, diarrhoea, mucositis, neuropathy, febrile neutropenia.
- immunotherapy (PD-1 antibody): 0.14. Treatment-related grade >= 3 AEs of PD-1/PD-L1
  inhibitors, 14.0 % (95 % CI 12.1-16.1) in a meta-analysis of 125 trials (Wang et al., JAMA
  Oncol 2019;5:1008-19). Terms: colitis, ALT increase, pneumonitis, rash, hypothyroidism.
- radiotherapy (liver SBRT): 0.05. Grade >= 3 toxicity after SBRT for liver metastases was
  below 2-5 % in prospective series (Rusthoven et al., J Clin Oncol 2009;27:1572-8, 60 Gy in
  3 fractions: < 2 % grade >= 3); 0.05 is the cautious end. Terms: abdominal pain, ascites,
  ALT/AST increase, hepatic failure.

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


class SimulationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 1
    sites: int = Field(default=6, ge=1, le=99)
    patients: int = Field(default=60, ge=1, le=100_000)
    enrolment_days: int = Field(default=240, ge=1, description="enrolment period")
    severe_rate: dict[str, float] = Field(
        default={"chemotherapy": 0.40, "immunotherapy": 0.14, "radiotherapy": 0.05}
    )
    low_grade_per_patient: float = Field(default=2.0, ge=0)
    upgrade_share: float = Field(default=0.10, ge=0, le=1, description="AEs that worsen")
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
    # immune-related toxicity well above the plan's 25 %
    "immunotherapy-toxicity": {
        "severe_rate": {"chemotherapy": 0.40, "immunotherapy": 0.60, "radiotherapy": 0.05}
    },
}


def scenario(name: str, **overrides: object) -> SimulationConfig:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r} (allowed: {', '.join(SCENARIOS)})")
    return SimulationConfig.model_validate(SCENARIOS[name] | overrides)
