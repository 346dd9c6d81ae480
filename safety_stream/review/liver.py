"""Liver safety from the labs: CTCAE shift tables and the eDISH (Hy's law) plot's coordinates.

Pure functions of a :class:`ReviewData`. Every liver value is graded from its multiple of the
site's upper limit of normal (ULN) with the CTCAE v5.0 criteria *for a normal baseline*
(NCI CTCAE v5.0, 27 November 2017, ``schemas/ctcae/CTCAE_v5.0_2017-11-27.xlsx``, SOC
Investigations; tests/test_liver_safety.py reads these cut points back from the sheet):

- Alanine / Aspartate aminotransferase increased: G1 > ULN - 3.0 x ULN, G2 > 3.0 - 5.0,
  G3 > 5.0 - 20.0, G4 > 20.0 x ULN
- Alkaline phosphatase increased: G1 > ULN - 2.5, G2 > 2.5 - 5.0, G3 > 5.0 - 20.0, G4 > 20.0
- Blood bilirubin increased: G1 > ULN - 1.5, G2 > 1.5 - 3.0, G3 > 3.0 - 10.0, G4 > 10.0

Grade 0 is a value at or below the ULN. The sheet's criteria for an *abnormal* baseline
(multiples of the baseline) are not applied: a shift table shows where a patient started and
where they went on one scale. A value without a ULN cannot be graded and is left out.

Baseline (each test on its own): the last value collected on or before the patient's first
dose of any modality. A value collected after the first dose is never the baseline: with no
value before dosing the baseline is "missing" and every value after the first dose is
post-baseline (a post-dose Hy's-law value must not be hidden as a "baseline"). Post-baseline:
the values collected after the first dose (by collection time, then log order). A patient
never dosed has no baseline and every value counts as post-baseline, the safe choice (no value
is hidden from the shift tables or the eDISH plot). "Missing" is no baseline value (baseline)
or no post-baseline value (worst post-baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import LabValue, PatientDetail

LIVER_TESTS = ("ALT", "AST", "ALP", "bilirubin_total")
TEST_LABELS = {
    "ALT": "ALT",
    "AST": "AST",
    "ALP": "Alkaline phosphatase",
    "bilirubin_total": "Total bilirubin",
}
CTCAE_TERMS = {
    "ALT": "Alanine aminotransferase increased",
    "AST": "Aspartate aminotransferase increased",
    "ALP": "Alkaline phosphatase increased",
    "bilirubin_total": "Blood bilirubin increased",
}
GRADE_UPPER_BOUNDS = {
    "ALT": (3.0, 5.0, 20.0),
    "AST": (3.0, 5.0, 20.0),
    "ALP": (2.5, 5.0, 20.0),
    "bilirubin_total": (1.5, 3.0, 10.0),
}
"""Per test: the upper bounds (x ULN, inclusive) of grades 1, 2 and 3; above the last is 4."""

GRADE_LABELS = ("0", "1", "2", "3", "4", "missing")

TRANSAMINASE_LIMIT = 3.0  # ALT or AST > 3 x ULN
BILIRUBIN_LIMIT = 2.0  # total bilirubin > 2 x ULN
HYS_PAIR_DAYS = 30
QUADRANTS = ("hys_law", "temple", "cholestasis", "normal")
QUADRANT_LABELS = {
    "hys_law": "Potential Hy's law (ALT/AST > 3 x ULN, bilirubin > 2 x ULN)",
    "temple": "Temple's corollary (ALT/AST > 3 x ULN, bilirubin <= 2 x ULN)",
    "cholestasis": "Cholestasis (ALT/AST <= 3 x ULN, bilirubin > 2 x ULN)",
    "normal": "Neither (ALT/AST <= 3 x ULN, bilirubin <= 2 x ULN)",
}


def ctcae_grade(test: str, times_uln: float) -> int:
    """The CTCAE v5.0 grade (normal baseline) of a value ``times_uln`` x its ULN."""
    bounds = GRADE_UPPER_BOUNDS.get(test)
    if bounds is None:
        raise ValueError(f"test: no CTCAE grading for {test!r} (allowed: {', '.join(LIVER_TESTS)})")
    if times_uln <= 1.0:
        return 0
    for grade, upper in enumerate(bounds, start=1):
        if times_uln <= upper:
            return grade
    return 4


def first_dose(patient: PatientDetail) -> datetime | None:
    """The first administration of any modality (None: never dosed)."""
    return min((a.given_at for a in patient.administrations), default=None)


def graded_values(patient: PatientDetail, test: str) -> list[LabValue]:
    """The patient's values of ``test`` that have a ULN, by collection time then log order."""
    values = [v for v in patient.labs if v.test == test and v.times_uln is not None]
    return sorted(values, key=lambda v: (v.collected_at, v.position))


def split_baseline(patient: PatientDetail, test: str) -> tuple[LabValue | None, list[LabValue]]:
    """(baseline value, post-baseline values) of one test, as the module docstring defines."""
    values = graded_values(patient, test)
    dosed = first_dose(patient)
    if dosed is None:
        return None, values
    before = [v for v in values if v.collected_at <= dosed]
    after = [v for v in values if v.collected_at > dosed]
    return (before[-1] if before else None), after


def _ratio(value: LabValue) -> float:
    assert value.times_uln is not None  # graded_values keeps only values with a ULN
    return value.times_uln


@dataclass(frozen=True, slots=True)
class ShiftTable:
    """Patients by baseline grade (rows) and worst post-baseline grade (columns), one test.

    ``counts[r][c]``: rows and columns in :data:`GRADE_LABELS` order (0-4, then missing)."""

    test: str
    label: str
    ctcae_term: str
    counts: tuple[tuple[int, ...], ...]
    patients: int

    def row_total(self, row: int) -> int:
        return sum(self.counts[row])

    def column_total(self, column: int) -> int:
        return sum(row[column] for row in self.counts)

    @property
    def worsened(self) -> int:
        """Patients whose worst post-baseline grade is above their baseline grade."""
        return sum(self.counts[r][c] for r in range(5) for c in range(5) if c > r)


def shift_grades(patient: PatientDetail, test: str) -> tuple[int | None, int | None]:
    """(baseline grade, worst post-baseline grade) of one patient, None where missing."""
    baseline, after = split_baseline(patient, test)
    start = None if baseline is None else ctcae_grade(test, _ratio(baseline))
    worst = max((ctcae_grade(test, _ratio(v)) for v in after), default=None)
    return start, worst


def shift_table(data: ReviewData, test: str) -> ShiftTable:
    """One test's shift table over every enrolled patient in ``data``."""
    counts = [[0] * 6 for _ in range(6)]
    patients = data.patients()
    for _, detail in patients:
        start, worst = shift_grades(detail, test)
        counts[5 if start is None else start][5 if worst is None else worst] += 1
    return ShiftTable(
        test=test,
        label=TEST_LABELS[test],
        ctcae_term=CTCAE_TERMS[test],
        counts=tuple(tuple(row) for row in counts),
        patients=len(patients),
    )


def shift_tables(data: ReviewData) -> list[ShiftTable]:
    """ALT, AST, ALP and total bilirubin, in that order."""
    return [shift_table(data, test) for test in LIVER_TESTS]


# -- eDISH -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EdishPoint:
    """One patient on the eDISH plot: peak post-baseline ALT or AST (whichever is the higher
    multiple of its ULN) against peak post-baseline total bilirubin. The two peaks need not be
    on the same day; ``hys_pair_within_30_days`` says whether any one transaminase value
    > 3 x ULN and any one bilirubin value > 2 x ULN were collected at most 30 days apart."""

    patient_id: str
    site_id: str
    transaminase_times_uln: float
    transaminase_test: str  # ALT | AST
    transaminase_on: date
    bilirubin_times_uln: float
    bilirubin_on: date
    quadrant: str  # one of QUADRANTS
    hys_pair_within_30_days: bool


def quadrant(transaminase: float, bilirubin: float) -> str:
    high_enzyme, high_bilirubin = transaminase > TRANSAMINASE_LIMIT, bilirubin > BILIRUBIN_LIMIT
    if high_enzyme:
        return "hys_law" if high_bilirubin else "temple"
    return "cholestasis" if high_bilirubin else "normal"


def _peak(values: list[LabValue]) -> LabValue:
    """The highest multiple of ULN; the earliest of equal peaks."""
    return max(values, key=lambda v: (_ratio(v), -v.collected_at.timestamp(), -v.position))


def hys_pair_within(enzymes: list[LabValue], bilirubin: list[LabValue], days: int) -> bool:
    """Any ALT/AST > 3 x ULN and bilirubin > 2 x ULN collected at most ``days`` apart."""
    gap = timedelta(days=days)
    high_b = [b.collected_at for b in bilirubin if _ratio(b) > BILIRUBIN_LIMIT]
    return any(
        abs(e.collected_at - when) <= gap
        for e in enzymes
        if _ratio(e) > TRANSAMINASE_LIMIT
        for when in high_b
    )


def edish_point(detail: PatientDetail) -> EdishPoint | None:
    """The patient's point, or None without post-baseline transaminase and bilirubin values."""
    enzymes = split_baseline(detail, "ALT")[1] + split_baseline(detail, "AST")[1]
    bilirubin = split_baseline(detail, "bilirubin_total")[1]
    if not enzymes or not bilirubin:
        return None
    enzyme, bili = _peak(enzymes), _peak(bilirubin)
    return EdishPoint(
        patient_id=detail.patient_id,
        site_id=detail.site_id,
        transaminase_times_uln=_ratio(enzyme),
        transaminase_test=enzyme.test,
        transaminase_on=enzyme.collected_at.date(),
        bilirubin_times_uln=_ratio(bili),
        bilirubin_on=bili.collected_at.date(),
        quadrant=quadrant(_ratio(enzyme), _ratio(bili)),
        hys_pair_within_30_days=hys_pair_within(enzymes, bilirubin, HYS_PAIR_DAYS),
    )


@dataclass(frozen=True, slots=True)
class Edish:
    """Every plotted patient and the pooled counts (``not_plotted``: patients without both
    post-baseline transaminase and bilirubin values)."""

    points: tuple[EdishPoint, ...]
    by_quadrant: dict[str, int]
    hys_pairs_within_30_days: int
    not_plotted: int


def edish(data: ReviewData) -> Edish:
    """The eDISH plot of every patient in ``data``, in enrolment order."""
    points = []
    for _, detail in data.patients():
        point = edish_point(detail)
        if point is not None:
            points.append(point)
    return Edish(
        points=tuple(points),
        by_quadrant={q: sum(p.quadrant == q for p in points) for q in QUADRANTS},
        hys_pairs_within_30_days=sum(p.hys_pair_within_30_days for p in points),
        not_plotted=len(data.patients()) - len(points),
    )
