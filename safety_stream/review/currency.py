"""Data currency per site and enrolment over time.

Data currency: how late sites enter AEs and which patients have gone quiet.

- Onset-to-entry lag of an AE: the (UTC) date the server first stored its report minus its
  onset date, in days; per site the number of AEs, median, quartiles (linear interpolation
  between order statistics: ``statistics.quantiles(method="inclusive")``, R's type 7) and
  maximum. Retracted AEs never count.
- Patients without new data: patients still on study whose latest clinical date (of any event
  of theirs: an AE onset or end, a dose, a lab draw, ...) is more than ``quiet_days`` days
  before the as-of date, or who have none.

Enrolment: patients per calendar month of enrolment (registration date, UTC; the consent date
if none), per site and all sites, with the running total, from the first enrolment's month to
the as-of date's month.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from safety_stream.review.dataset import ReviewData
from safety_stream.review.table import DmcTable, table_of

ALL_SITES = "All sites"
QUIET_DAYS = 30


@dataclass(frozen=True, slots=True)
class CurrencyRow:
    site_id: str
    aes: int
    lag_median_days: float | None
    lag_q1_days: float | None
    lag_q3_days: float | None
    lag_max_days: int | None
    patients_on_study: int
    patients_without_recent_data: int


def entry_lags(data: ReviewData) -> dict[str, list[int]]:
    """Each site's onset-to-entry lags in days, in AE order."""
    lags: dict[str, list[int]] = defaultdict(list)
    for ae, detail in data.aes():
        lags[ae.site_id].append((detail.first_stored_at.date() - ae.onset_date).days)
    return lags


def quartiles(values: list[int]) -> tuple[float, float, float] | None:
    """(Q1, median, Q3) by linear interpolation (one value: itself thrice; none: None)."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0]), float(values[0]), float(values[0])
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def _row(site: str, lags: list[int], on_study: int, quiet: int) -> CurrencyRow:
    found = quartiles(lags)
    q1, median, q3 = found if found is not None else (None, None, None)
    return CurrencyRow(
        site, len(lags), median, q1, q3, max(lags) if lags else None, on_study, quiet
    )


def data_currency(
    data: ReviewData, as_of: date, quiet_days: int = QUIET_DAYS, pooled_only: bool = False
) -> list[CurrencyRow]:
    """One row per site (by site id), then all sites together (only that with
    ``pooled_only``)."""
    lags = entry_lags(data)
    on_study: dict[str, int] = defaultdict(int)
    quiet: dict[str, int] = defaultdict(int)
    for patient, detail in data.patients():
        if patient.status != "on_study":
            continue
        on_study[patient.site_id] += 1
        last = detail.last_data_on
        quiet[patient.site_id] += last is None or (as_of - last).days > quiet_days
    sites = sorted(set(lags) | {p.site_id for p in data.state.patients.values()})
    rows = [] if pooled_only else [_row(s, lags[s], on_study[s], quiet[s]) for s in sites]
    every = [lag for s in sites for lag in lags[s]]
    rows.append(_row(ALL_SITES, every, sum(on_study.values()), sum(quiet.values())))
    return rows


def currency_table(
    data: ReviewData, as_of: date, quiet_days: int = QUIET_DAYS, pooled_only: bool = False
) -> DmcTable:
    return table_of(
        "data-currency",
        f"Data currency per site (as of {as_of.isoformat()})",
        CurrencyRow,
        data_currency(data, as_of, quiet_days, pooled_only),
        f"""Lag: the date the server first stored an AE's report minus its onset date, in days
        (median, quartiles by linear interpolation, maximum; retracted AEs excluded). Patients
        without recent data: on study, with no clinical date of any of their events in the
        {quiet_days} days before {as_of.isoformat()}.""",
    )


@dataclass(frozen=True, slots=True)
class EnrolmentRow:
    site_id: str
    month: str  # YYYY-MM
    enrolled: int
    cumulative: int


def _month(day: date) -> tuple[int, int]:
    return day.year, day.month


def _months(first: tuple[int, int], last: tuple[int, int]) -> list[tuple[int, int]]:
    months = []
    year, month = first
    while (year, month) <= last:
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def enrolment(data: ReviewData, as_of: date, pooled_only: bool = False) -> list[EnrolmentRow]:
    """All sites first, then each site by id; months in order, with the running total."""
    by_site: dict[str, dict[tuple[int, int], int]] = defaultdict(lambda: defaultdict(int))
    for patient, detail in data.patients():
        day = patient.enrolled_at.date() if patient.enrolled_at else detail.consent_date
        if day is None:
            continue
        by_site[ALL_SITES][_month(day)] += 1
        by_site[patient.site_id][_month(day)] += 1
    if not by_site:
        return []
    first = min(by_site[ALL_SITES])
    months = _months(first, max(_month(as_of), max(by_site[ALL_SITES])))
    sites = [ALL_SITES] + ([] if pooled_only else sorted(s for s in by_site if s != ALL_SITES))
    rows = []
    for site in sites:
        total = 0
        for year, month in months:
            count = by_site[site].get((year, month), 0)
            total += count
            rows.append(EnrolmentRow(site, f"{year:04d}-{month:02d}", count, total))
    return rows


def enrolment_table(data: ReviewData, as_of: date, pooled_only: bool = False) -> DmcTable:
    return table_of(
        "enrolment",
        "Enrolment over time, by month",
        EnrolmentRow,
        enrolment(data, as_of, pooled_only),
        f"""Patients by calendar month of registration (UTC; the consent date if none), from
        the first enrolment's month to {as_of.isoformat()}'s, with the running total.""",
    )
