"""Exposure-adjusted incidence rates per 100 patient-months, with exact Poisson 95 % CIs.

For each kind of event, each enrolled patient is at risk from the start of treatment, the
date of their first administration of any modality (their enrolment date if never treated),
to the first of: the onset of their first such AE, their exit from the study (withdrawal,
death or loss to follow-up: the latest exit record's date) and the as-of date (the report's
data cut-off, or today on the board). Days are whole calendar days (UTC dates), never
negative: an AE with onset before the first dose counts, with no time at risk after it. A
patient counts as an event when that first onset is on or before both their exit and the
as-of date. A month is 365.25 / 12 = 30.4375 days.

rate = events / patient-months x 100; the 95 % interval is Garwood's exact Poisson interval
for the count (``stats.poisson_exact``) over the same patient-months.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from safety_stream.events import Attribution
from safety_stream.plan import AesiGroup, MonitoringPlan
from safety_stream.projections.state import AeState, PatientState
from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import PatientDetail
from safety_stream.review.table import DmcTable, table_of
from safety_stream.review.tables import MODALITIES, in_group, in_scope
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


def start_of_risk(patient: PatientState, detail: PatientDetail) -> date | None:
    """The first administration's date, else the enrolment date (None: neither known)."""
    if detail.administrations:
        return min(a.given_at for a in detail.administrations).date()
    if patient.enrolled_at is not None:
        return patient.enrolled_at.date()
    return detail.consent_date


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
    aes = [ae for ae, _ in data.aes()]
    people = [(p, d, start_of_risk(p, d)) for p, d in data.patients()]
    rows = []
    for event, counts in _definitions(plan):
        first: dict[str, date] = {}
        for ae in aes:
            if counts(ae) and ae.onset_date < first.get(ae.patient_id, date.max):
                first[ae.patient_id] = ae.onset_date
        events = days = 0
        for patient, detail, start in people:
            if start is None:
                continue
            stop = min(as_of, detail.exit.on) if detail.exit is not None else as_of
            onset = first.get(patient.patient_id)
            if onset is not None and onset <= stop:
                events += 1
                stop = onset
            days += max(0, (stop - start).days)
        rows.append(rate_row(event, events, days))
    return rows


def rates_table(data: ReviewData, plan: MonitoringPlan, as_of: date) -> DmcTable:
    return table_of(
        "incidence-rates",
        f"Exposure-adjusted incidence rates per 100 patient-months (as of {as_of.isoformat()})",
        RateRow,
        incidence_rates(data, plan, as_of),
        f"""Time at risk: from the first administration of any modality (enrolment if never
        treated) to the onset of the patient's first such AE, their exit from the study or
        {as_of.isoformat()}, whichever comes first (calendar days; 1 month = 30.4375 days).
        Patients: those with such an AE by their exit and that date. 95 % CI: exact Poisson
        (Garwood). Retracted AEs never count; grades are the worst over the AE's course;
        related: attributed {plan.related_means_at_least.value} or stronger.""",
    )
