"""Every DMC table of one :class:`ReviewData`, by name: what the board's tables page, the API's
``/v1/tables``, their CSV and the DSMB report show.

``patient_level`` chooses the closed form (listings of discontinuations and deaths, per-site
rows of data currency and enrolment) over the open, pooled one. What a principal may see is
decided before: a site's :class:`ReviewData` holds its own patients only.
"""

from __future__ import annotations

from collections.abc import Callable
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

Builder = Callable[[ReviewData, MonitoringPlan, date, bool], DmcTable]

BUILDERS: dict[str, Builder] = {
    "teae-overview": lambda d, p, day, full: overview_table(d, p),
    "incidence-all-causality": lambda d, p, day, full: incidence_table(d, p, "all"),
    "incidence-related": lambda d, p, day, full: incidence_table(d, p, "related"),
    "exposure": lambda d, p, day, full: exposure_table(d),
    "discontinuations": lambda d, p, day, full: discontinuation_tables(d, p, full),
    "aesi": lambda d, p, day, full: aesi_table(d, p),
    "incidence-rates": lambda d, p, day, full: rates_table(d, p, day),
    "deaths": lambda d, p, day, full: death_table(d, p, full),
    "data-currency": lambda d, p, day, full: currency_table(d, day, QUIET_DAYS, not full),
    "enrolment": lambda d, p, day, full: enrolment_table(d, day, not full),
}
TABLE_NAMES = tuple(BUILDERS)


class UnknownTable(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no table {name!r}: one of {', '.join(TABLE_NAMES)}")
        self.name = name


def dmc_table(
    name: str, data: ReviewData, plan: MonitoringPlan, as_of: date, patient_level: bool
) -> DmcTable:
    """One table by name (``UnknownTable`` names the ones there are)."""
    builder = BUILDERS.get(name)
    if builder is None:
        raise UnknownTable(name)
    return builder(data, plan, as_of, patient_level)


def dmc_tables(
    data: ReviewData, plan: MonitoringPlan, as_of: date, patient_level: bool
) -> list[DmcTable]:
    """Every table, in the order a DMC reads them."""
    return [dmc_table(n, data, plan, as_of, patient_level) for n in TABLE_NAMES]
