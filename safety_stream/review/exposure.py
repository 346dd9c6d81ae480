"""Exposure and dose intensity per modality: who was treated, how much, for how long.

Definitions (the table's footnote repeats them):

- Exposed: at least one administration of the modality recorded.
- SBRT: fractions delivered are the distinct fraction numbers recorded; planned is the
  ``fractions_planned`` of the patient's latest fraction; dose delivered is the sum of
  ``dose_gy`` over the delivered fractions (the latest record of each fraction number).
- Chemotherapy: cycles are the distinct cycle numbers recorded; a cycle starts on its earliest
  recorded administration. A cycle is *delayed* when it starts more than the regimen's cycle
  length + 3 days after the previous cycle's start (cycles numbered c and c + 1 only; 14-day
  regimens FOLFOX, FOLFIRI, FOLFOXIRI, 5-FU/LV: > 17 days; 21-day CAPOX, capecitabine:
  > 24 days). A cycle is *reduced* when any of its administrations is marked ``dose_reduced``.
- Immunotherapy: doses are the administrations recorded; cumulative dose is the sum of
  ``dose_mg``.
- Time on treatment: days from the first to the last administration of the modality, both
  included (one administration: 1 day); for "any", of any modality.

Per-patient figures are summarised over the patients exposed: total, median, minimum, maximum.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import Administration, PatientDetail
from safety_stream.review.table import DmcTable, table_of
from safety_stream.review.tables import MODALITIES

CYCLE_DAYS = {
    "FOLFOX": 14, "FOLFIRI": 14, "FOLFOXIRI": 14, "5-FU/LV": 14, "CAPOX": 21, "capecitabine": 21,
}  # fmt: skip
GRACE_DAYS = 3


@dataclass(frozen=True, slots=True)
class ExposureRow:
    modality: str  # a modality, or "any"
    measure: str
    patients: int  # the patients the figures summarise (or who have the property)
    total: float | None
    median: float | None
    minimum: float | None
    maximum: float | None


def _summary(modality: str, measure: str, values: Sequence[float]) -> ExposureRow:
    if not values:
        return ExposureRow(modality, measure, 0, None, None, None, None)
    return ExposureRow(
        modality, measure, len(values), round(sum(values), 2),
        round(statistics.median(values), 2), round(min(values), 2), round(max(values), 2),
    )  # fmt: skip


def _count(modality: str, measure: str, patients: int) -> ExposureRow:
    return ExposureRow(modality, measure, patients, None, None, None, None)


def days_on_treatment(given: Sequence[Administration]) -> int:
    days = [a.given_at.date() for a in given]
    return (max(days) - min(days)).days + 1


def cycle_starts(given: Sequence[Administration]) -> dict[int, tuple[date, str | None]]:
    """Each cycle number's first administration date and regimen."""
    starts: dict[int, tuple[date, str | None]] = {}
    for a in sorted(given, key=lambda a: a.given_at):
        if a.cycle is not None and a.cycle not in starts:
            starts[a.cycle] = (a.given_at.date(), a.regimen)
    return starts


def delayed_cycles(given: Sequence[Administration]) -> int:
    """Cycles c + 1 starting more than the regimen's length + 3 days after cycle c started."""
    starts = cycle_starts(given)
    delayed = 0
    for cycle, (start, regimen) in starts.items():
        following = starts.get(cycle + 1)
        allowed = CYCLE_DAYS.get(regimen or "", 14) + GRACE_DAYS
        if following is not None and (following[0] - start).days > allowed:
            delayed += 1
    return delayed


def _radiotherapy(treated: list[list[Administration]]) -> list[ExposureRow]:
    delivered, planned, dose = [], [], []
    complete = 0
    for given in treated:
        latest = {a.fraction: a for a in sorted(given, key=lambda a: a.given_at)}
        last = max(given, key=lambda a: a.given_at)
        delivered.append(float(len(latest)))
        planned.append(float(last.fractions_planned or 0))
        dose.append(sum(a.dose_gy or 0.0 for a in latest.values()))
        complete += len(latest) >= (last.fractions_planned or 0)
    return [
        _summary("radiotherapy", "Fractions delivered", delivered),
        _summary("radiotherapy", "Fractions planned", planned),
        _count("radiotherapy", "Patients with every planned fraction", complete),
        _summary("radiotherapy", "Dose delivered (Gy)", dose),
    ]


def _chemotherapy(treated: list[list[Administration]]) -> list[ExposureRow]:
    cycles, delays, reduced = [], [], []
    for given in treated:
        cycles.append(float(len(cycle_starts(given))))
        delays.append(float(delayed_cycles(given)))
        reduced.append(float(len({a.cycle for a in given if a.dose_reduced})))
    return [
        _summary("chemotherapy", "Cycles started", cycles),
        _summary("chemotherapy", "Delayed cycles", delays),
        _count("chemotherapy", "Patients with a delayed cycle", sum(d > 0 for d in delays)),
        _summary("chemotherapy", "Cycles with a dose reduction", reduced),
        _count("chemotherapy", "Patients with a dose reduction", sum(r > 0 for r in reduced)),
    ]


def _immunotherapy(treated: list[list[Administration]]) -> list[ExposureRow]:
    return [
        _summary("immunotherapy", "Doses", [float(len(g)) for g in treated]),
        _summary(
            "immunotherapy",
            "Cumulative dose (mg)",
            [sum(a.dose_mg or 0.0 for a in g) for g in treated],
        ),
    ]


_DETAIL = {
    "radiotherapy": _radiotherapy,
    "chemotherapy": _chemotherapy,
    "immunotherapy": _immunotherapy,
}


def _given(detail: PatientDetail, modality: str | None) -> list[Administration]:
    return [a for a in detail.administrations if modality is None or a.modality == modality]


def exposure(data: ReviewData) -> list[ExposureRow]:
    """Per modality: planned, exposed, the modality's own measures, time on treatment; then
    any modality."""
    details = [d for _, d in data.patients()]
    rows = []
    for modality in MODALITIES:
        treated = [g for d in details if (g := _given(d, modality))]
        rows.append(
            _count(
                modality, "Patients planned", sum(modality in d.planned_modalities for d in details)
            )
        )
        rows.append(_count(modality, "Patients exposed", len(treated)))
        rows += _DETAIL[modality](treated)
        rows.append(
            _summary(
                modality, "Time on treatment (days)", [float(days_on_treatment(g)) for g in treated]
            )
        )
    treated = [g for d in details if (g := _given(d, None))]
    rows.append(_count("any", "Patients exposed", len(treated)))
    rows.append(
        _summary("any", "Time on treatment (days)", [float(days_on_treatment(g)) for g in treated])
    )
    return rows


def exposure_table(data: ReviewData) -> DmcTable:
    return table_of(
        "exposure",
        "Exposure and dose intensity per modality",
        ExposureRow,
        exposure(data),
        """Per-patient figures over the patients exposed (total, median, minimum, maximum).
        SBRT fractions: distinct fraction numbers recorded, against the latest fraction's
        planned number; dose: sum over them. Chemotherapy cycles: distinct cycle numbers; a
        cycle starts on its first administration and is delayed when it starts more than the
        regimen's cycle length + 3 days after the previous one (14-day regimens: > 17 days;
        CAPOX, capecitabine: > 24 days); reduced when any of its administrations is marked
        dose reduced. Immunotherapy: administrations and the sum of their mg. Time on
        treatment: first to last administration, both days included.""",
    )
