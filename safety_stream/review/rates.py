"""Exposure-adjusted incidence rates per 100 patient-months, with exact Poisson 95 % CIs.

For each kind of event, counted among the treatment-emergent AEs (onset on or after the first
dose of any study treatment, as in ``tables``), each dosed patient is at risk from the date of
their first administration of any modality to the first of: the onset of their first such AE,
their death, their exit from the study (withdrawal, death or loss to follow-up) and the as-of
date (the report's data cut-off, or today on the board). A patient never dosed has no time at
risk and no event. Days are whole calendar days (UTC dates) counting both ends, as the exposure
table does: a patient dosed on the as-of date contributes 1 day; an AE on the day of the first
dose, 1 day. A patient counts as an event when that first onset is on or before the end of
their follow-up. A month is 365.25 / 12 = 30.4375 days.

rate = events / patient-months x 100; the 95 % interval is Garwood's exact Poisson interval
for the count (``stats.poisson_exact``) over the same patient-months.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from safety_stream.events import Attribution
from safety_stream.plan import AesiGroup, MonitoringPlan
from safety_stream.projections.state import AeState
from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import PatientDetail
from safety_stream.review.table import DmcTable, table_of
from safety_stream.review.tables import (
    MODALITIES,
    first_dose_dates,
    in_group,
    in_scope,
    pre_dose_note,
    treatment_emergent,
)
from safety_stream.stats import poisson_exact

DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True, slots=True)
class RateRow:
    event: str
    patients_with_event: int
    patient_months: float
    rate_per_100_patient_months: float | None
    ci95_low: float | None
    ci95_high: float | None


def end_of_follow_up(detail: PatientDetail, as_of: date) -> date:
    """The first of the as-of date, the death and the exit (a withdrawal recorded after a
    death does not extend follow-up past the death)."""
    ends = [as_of]
    if detail.death is not None:
        ends.append(detail.death.on)
    if detail.exit is not None:
        ends.append(detail.exit.on)
    return min(ends)


def _related_severe(modality: str, threshold: Attribution) -> Callable[[AeState], bool]:
    return lambda ae: ae.worst >= 3 and in_scope(ae, modality, threshold)


def _of_group(group: AesiGroup) -> Callable[[AeState], bool]:
    return lambda ae: in_group(ae, group)


def _definitions(plan: MonitoringPlan) -> list[tuple[str, Callable[[AeState], bool]]]:
    threshold = plan.related_means_at_least
    found: list[tuple[str, Callable[[AeState], bool]]] = [
        ("Any AE", lambda ae: True),
        ("Grade >= 3 AE", lambda ae: ae.worst >= 3),
        ("Serious AE", lambda ae: bool(ae.seriousness)),
        ("Related grade >= 3 AE", _related_severe("related", threshold)),
    ]
    for modality in MODALITIES:
        label = f"{modality.capitalize()}-related grade >= 3 AE"
        found.append((label, _related_severe(modality, threshold)))
    for name, group in plan.aesi.items():
        found.append((f"AESI {name}: {group.title}", _of_group(group)))
    return found


def rate_row(event: str, events: int, days: int) -> RateRow:
    """One row from the count and the days at risk (no rate with no time at risk)."""
    months = days / DAYS_PER_MONTH
    if days == 0:
        return RateRow(event, events, 0.0, None, None, None)
    low, high = poisson_exact(events)
    per = 100.0 / months
    return RateRow(
        event,
        events,
        round(months, 2),
        round(events * per, 3),
        round(low * per, 3),
        round(high * per, 3),
    )


def incidence_rates(data: ReviewData, plan: MonitoringPlan, as_of: date) -> list[RateRow]:
    """One row per event kind: the overview's, per modality, and each AESI group."""
    aes = [ae for ae, _ in treatment_emergent(data)]
    starts = first_dose_dates(data)
    people = [(d, starts[d.patient_id]) for _, d in data.patients() if d.patient_id in starts]
    rows = []
    for event, counts in _definitions(plan):
        first: dict[str, date] = {}
        for ae in aes:
            if counts(ae) and ae.onset_date < first.get(ae.patient_id, date.max):
                first[ae.patient_id] = ae.onset_date
        events = days = 0
        for detail, start in people:
            stop = end_of_follow_up(detail, as_of)
            onset = first.get(detail.patient_id)
            if onset is not None and onset <= stop:
                events += 1
                stop = onset
            days += max(0, (stop - start).days + 1)
        rows.append(rate_row(event, events, days))
    return rows


def rates_table(data: ReviewData, plan: MonitoringPlan, as_of: date) -> DmcTable:
    return table_of(
        "incidence-rates",
        f"Exposure-adjusted incidence rates per 100 patient-months (as of {as_of.isoformat()})",
        RateRow,
        incidence_rates(data, plan, as_of),
        f"""Treatment-emergent AEs (onset on or after the first dose). Time at risk: dosed
        patients, from the first administration of any modality to the onset of the patient's
        first such AE, their death, their exit from the study or {as_of.isoformat()},
        whichever comes first (calendar days counting both ends; 1 month = 30.4375 days).
        Patients: those with such an AE by the end of their follow-up. 95 % CI: exact Poisson
        (Garwood). Retracted AEs never count; grades are the worst over the AE's course;
        related: attributed {plan.related_means_at_least.value} or stronger.
        {pre_dose_note(data)}""",
    )
