"""Laboratory results and liver-function scores used by composite events such as RILD."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from safety_stream.events.base import LINE_PATTERN, EventBase


class LabTest(StrEnum):
    ALT = "ALT"
    AST = "AST"
    ALP = "ALP"
    BILIRUBIN_TOTAL = "bilirubin_total"
    ALBUMIN = "albumin"
    INR = "INR"


TESTS_NEEDING_ULN = frozenset({LabTest.ALT, LabTest.AST, LabTest.ALP, LabTest.BILIRUBIN_TOTAL})


class LabResulted(EventBase):
    """One lab value; ``occurred_at`` is the sample collection time.

    Liver enzymes and bilirubin carry the local upper limit of normal (ULN) so that rules can
    use multiples of ULN (e.g. ALT > 5 x ULN) whatever unit the site's lab reports in.
    """

    event_type: Literal["lab.resulted"]
    schema_version: Literal[1]
    test: LabTest
    value: float = Field(ge=0, le=1e6)
    unit: str = Field(min_length=1, max_length=20, pattern=LINE_PATTERN)
    uln: float | None = Field(default=None, gt=0, le=1e6, description="Upper limit of normal")
    lln: float | None = Field(default=None, ge=0, le=1e6, description="Lower limit of normal")


class ChildPughClass(StrEnum):
    A = "A"
    B = "B"
    C = "C"


def child_pugh_class(score: int) -> ChildPughClass:
    """Child-Pugh class from the total score: A 5-6, B 7-9, C 10-15."""
    if score <= 6:
        return ChildPughClass.A
    return ChildPughClass.B if score <= 9 else ChildPughClass.C


class ChildPughAssessed(EventBase):
    """A Child-Pugh liver-function assessment (total score 5-15 and its class)."""

    event_type: Literal["child_pugh.assessed"]
    schema_version: Literal[1]
    score: int = Field(ge=5, le=15)
    child_pugh_class: ChildPughClass
    ascites: Literal["none", "mild", "moderate_severe"] | None = None
