"""The DSMB report's DMC tables section: the TEAE overview, incidence by SOC and term,
exposure and dose intensity, discontinuations, AESI groups, exposure-adjusted rates, deaths
against the last dose, data currency and enrolment (``review.dmc``).

Built from the snapshot's review dataset; time-dependent figures run to the clinical cut-off
(else the snapshot's day). The *open* version is pooled: the discontinuation and death tables
are counts, data currency and enrolment have the all-sites rows only, and no table names a
patient or a site. The *closed* version lists discontinuations and deaths per patient and
gives per-site rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from safety_stream.report.snapshot import Snapshot
from safety_stream.review.dmc import dmc_tables
from safety_stream.review.table import MODALITY_LEGEND, DmcTable


@dataclass(frozen=True, slots=True)
class DmcSection:
    as_of: date
    closed: bool
    tables: tuple[DmcTable, ...]
    legend: str = MODALITY_LEGEND  # the modality abbreviations of the column headers


def dmc_section(snapshot: Snapshot, closed: bool) -> DmcSection:
    """Every DMC table at the snapshot (patient-level and per-site only when ``closed``)."""
    as_of = snapshot.cutoff or snapshot.moment.date()
    tables = dmc_tables(snapshot.review(), snapshot.monitor.plan, as_of, closed)
    if not closed:  # belt and braces: the open builders are pooled already
        tables = [t for t in tables if not t.patient_level]
    return DmcSection(as_of, closed, tuple(tables))
