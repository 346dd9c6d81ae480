"""A simulated patient's course beyond treatment and AEs: liver labs, Child-Pugh scores, and
leaving follow-up (death, withdrawal, loss).

Values are plausible, not fitted: normal labs inside their reference ranges, the lab value of
a lab AE inside the CTCAE v5.0 band of its grade (multiples of ULN for a normal baseline).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from safety_stream.simulate.rates import SimulationConfig

# test -> (unit, upper limit of normal, normal range as multiples of ULN)
LIVER_LABS: dict[str, tuple[str, float, tuple[float, float]]] = {
    "ALT": ("U/L", 40.0, (0.3, 0.95)),
    "AST": ("U/L", 40.0, (0.3, 0.95)),
    "ALP": ("U/L", 120.0, (0.3, 0.95)),
    "bilirubin_total": ("umol/L", 21.0, (0.2, 0.9)),
}
# CTCAE v5.0 AST/ALT increased with a normal baseline: grade -> (low, high] x ULN
TRANSAMINASE_BANDS = {1: (1.1, 3.0), 2: (3.1, 5.0), 3: (5.1, 20.0), 4: (20.5, 30.0)}
LAB_OF_TERM = {
    "Alanine aminotransferase increased": "ALT",
    "Aspartate aminotransferase increased": "AST",
}
ASSESSMENT_DAYS = (0, 90)  # baseline (before SBRT on day 57) and 3 months


@dataclass(frozen=True, slots=True)
class Leaving:
    day: float  # days after enrolment
    kind: str  # patient.died | patient.withdrawn | patient.lost_to_follow_up


def draw_leaving(rng: random.Random, config: SimulationConfig) -> Leaving | None:
    """Whether and when a patient leaves follow-up in the first 6 months for a reason other
    than a fatal AE (deaths from progression, consent withdrawn, lost)."""
    roll = rng.random()
    for kind, share in (
        ("patient.died", config.death_share),
        ("patient.withdrawn", config.withdrawal_share),
        ("patient.lost_to_follow_up", config.lost_share),
    ):
        if roll < share:
            return Leaving(rng.uniform(20, 182), kind)
        roll -= share
    return None


def normal_value(rng: random.Random, test: str) -> tuple[float, str, float]:
    """(value, unit, uln) of a normal result."""
    unit, uln, (low, high) = LIVER_LABS[test]
    return round(uln * rng.uniform(low, high), 1), unit, uln


def lab_of_ae(rng: random.Random, term: str, grade: int) -> tuple[str, float, str, float] | None:
    """(test, value, unit, uln) that goes with a lab AE of this grade, or None."""
    test = LAB_OF_TERM.get(term)
    if test is None or grade not in TRANSAMINASE_BANDS:
        return None
    unit, uln, _ = LIVER_LABS[test]
    low, high = TRANSAMINASE_BANDS[grade]
    return test, round(uln * rng.uniform(low, high), 1), unit, uln


def failing_liver(rng: random.Random) -> tuple[float, int]:
    """Bilirubin (x ULN) and Child-Pugh score that go with hepatic failure."""
    return rng.uniform(3.5, 6.0), rng.randint(9, 11)
