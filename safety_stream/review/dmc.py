"""Every DMC table of one :class:`ReviewData`, by name: what the board's tables page, the API's
``/v1/tables``, their CSV and the DSMB report show.

``patient_level`` chooses the closed form (listings of discontinuations and deaths, per-site
rows of data currency and enrolment) over the open, pooled one. What a principal may see is
decided before: a site's :class:`ReviewData` holds its own patients only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from safety_stream.plan import MonitoringPlan
from safety_stream.review.currency import QUIET_DAYS, currency_table, enrolment_table
from safety_stream.review.dataset import ReviewData
from safety_stream.review.deaths import death_table
from safety_stream.review.exposure import exposure_table
from safety_stream.review.rates import rates_table
from safety_stream.review.table import DmcTable
from safety_stream.review.tables import (
    aesi_table,
    discontinuation_tables,
    incidence_table,
    overview_table,
)


@dataclass(frozen=True, slots=True)
class TableOptions:
    """What the tables are computed for: the as-of date of time-dependent figures, the closed
    (patient-level, per-site) or open (pooled) form, and the days without new data after which
    data currency counts a patient as quiet."""

    as_of: date
    patient_level: bool
    quiet_days: int = QUIET_DAYS


Builder = Callable[[ReviewData, MonitoringPlan, TableOptions], DmcTable]

BUILDERS: dict[str, Builder] = {
    "teae-overview": lambda d, p, o: overview_table(d, p),
    "incidence-all-causality": lambda d, p, o: incidence_table(d, p, "all"),
    "incidence-related": lambda d, p, o: incidence_table(d, p, "related"),
    "exposure": lambda d, p, o: exposure_table(d),
    "discontinuations": lambda d, p, o: discontinuation_tables(d, p, o.patient_level),
    "aesi": lambda d, p, o: aesi_table(d, p),
    "incidence-rates": lambda d, p, o: rates_table(d, p, o.as_of),
    "deaths": lambda d, p, o: death_table(d, p, o.patient_level),
    "data-currency": lambda d, p, o: currency_table(d, o.as_of, o.quiet_days, not o.patient_level),
    "enrolment": lambda d, p, o: enrolment_table(d, o.as_of, not o.patient_level),
}
TABLE_NAMES = tuple(BUILDERS)


class UnknownTable(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no table {name!r}: one of {', '.join(TABLE_NAMES)}")
        self.name = name


def dmc_table(
    name: str,
    data: ReviewData,
    plan: MonitoringPlan,
    as_of: date,
    patient_level: bool,
    quiet_days: int = QUIET_DAYS,
) -> DmcTable:
    """One table by name (``UnknownTable`` names the ones there are)."""
    builder = BUILDERS.get(name)
    if builder is None:
        raise UnknownTable(name)
    if quiet_days < 1:
        raise ValueError(f"quiet_days must be at least 1, got {quiet_days}")
    return builder(data, plan, TableOptions(as_of, patient_level, quiet_days))


def dmc_tables(
    data: ReviewData,
    plan: MonitoringPlan,
    as_of: date,
    patient_level: bool,
    quiet_days: int = QUIET_DAYS,
) -> list[DmcTable]:
    """Every table, in the order a DMC reads them."""
    return [dmc_table(n, data, plan, as_of, patient_level, quiet_days) for n in TABLE_NAMES]
