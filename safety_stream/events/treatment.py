"""Treatment administered, per modality: SBRT fractions, 5-FU-based chemotherapy, PD-1 antibody."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from safety_stream.events.base import EventBase, ShortText


class _Delivery(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RadiotherapyFraction(_Delivery):
    """One SBRT fraction (the seed trial plans 8-12 Gy x 5 fractions)."""

    modality: Literal["radiotherapy"]
    technique: Literal["SBRT"]
    fraction: int = Field(ge=1, le=50, description="This fraction's number k")
    fractions_planned: int = Field(ge=1, le=50, description="The planned number of fractions n")
    dose_gy: float = Field(gt=0, le=30, description="Dose of this fraction in Gy")
    target: ShortText = Field(description="Treated lesion, e.g. 'liver segment VII'")


FLUOROURACIL_REGIMENS = ("FOLFOX", "FOLFIRI", "FOLFOXIRI", "CAPOX", "5-FU/LV", "capecitabine")


class ChemotherapyCycle(_Delivery):
    """One cycle (or day of a cycle) of a 5-fluorouracil-based regimen."""

    modality: Literal["chemotherapy"]
    regimen: Literal["FOLFOX", "FOLFIRI", "FOLFOXIRI", "CAPOX", "5-FU/LV", "capecitabine"]
    cycle: int = Field(ge=1, le=100)
    day: int = Field(default=1, ge=1, le=42, description="Day within the cycle")
    dose_reduced: bool = False


class ImmunotherapyDose(_Delivery):
    """One infusion of the PD-1 monoclonal antibody."""

    modality: Literal["immunotherapy"]
    agent: ShortText = Field(description="The anti-PD-1 antibody, e.g. 'toripalimab'")
    dose_mg: float = Field(gt=0, le=2000)
    cycle: int = Field(ge=1, le=100)


Delivery = Annotated[
    RadiotherapyFraction | ChemotherapyCycle | ImmunotherapyDose,
    Field(discriminator="modality"),
]


class TreatmentAdministered(EventBase):
    """A dose of one modality was given; ``occurred_at`` is the administration time."""

    event_type: Literal["treatment.administered"]
    schema_version: Literal[1]
    treatment: Delivery
