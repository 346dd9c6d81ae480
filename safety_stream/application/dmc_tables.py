"""The DMC tables, live: computed from the review dataset as one principal may see it.

Readers (safety officer, DSMB, admin) get every site, the patient-level listings and per-site
rows, and may narrow to one site; a site gets its own patients only, and asking for another
site is refused as if it did not exist (``SiteNotVisible``: the API answers 404). The log
position and chain head are given to readers only (a site never sees the trial-wide
position). The as-of date of time-dependent tables (rates, data currency, enrolment) is the
UTC date of ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from safety_stream.application.reads import site_of
from safety_stream.application.review import ReviewReads
from safety_stream.auth import Principal
from safety_stream.plan import MonitoringPlan
from safety_stream.review.csv_export import stamp as export_stamp
from safety_stream.review.csv_export import write_csv
from safety_stream.review.currency import QUIET_DAYS
from safety_stream.review.dataset import ReviewData
from safety_stream.review.dmc import TABLE_NAMES, UnknownTable, dmc_table
from safety_stream.review.table import DmcTable


class SiteNotVisible(LookupError):
    """A site asked for another site's tables (or a reader for a site with no patients)."""


@dataclass(frozen=True, slots=True)
class TablesRead:
    tables: list[DmcTable]
    as_of: date
    taken_at: datetime
    site_id: str | None  # the one site shown (None: every site)
    position: int | None  # None for a site's principal
    chain_head: str | None
    sites: tuple[str, ...] = ()  # the sites a reader may narrow to (none for a site)

    def csv(self, table: DmcTable, excel_safe: bool) -> str:
        return write_csv(table.columns, table.rows, excel_safe)

    def stamp_headers(self) -> dict[str, str]:
        """X-Log-Position, X-Chain-Head (readers only) and X-As-Of for a download."""
        found = export_stamp(self.position, self.chain_head, self.taken_at, None)
        return found.headers()


def _scope(principal: Principal, site: str | None) -> str | None:
    own = site_of(principal)
    if own is not None and site is not None and site != own:
        raise SiteNotVisible(site)
    return own if own is not None else site


def read_tables(
    review: ReviewReads,
    plan: MonitoringPlan,
    principal: Principal,
    now: datetime,
    names: tuple[str, ...] = TABLE_NAMES,
    site: str | None = None,
    quiet_days: int = QUIET_DAYS,
) -> TablesRead:
    """The tables ``names`` (``UnknownTable`` for a name there is not) as ``principal`` may
    see them, narrowed to ``site`` (``SiteNotVisible`` when it may not see that site, or it
    has no patients)."""
    for name in names:
        if name not in TABLE_NAMES:
            raise UnknownTable(name)
    shown = _scope(principal, site)
    trial_wide = site_of(principal) is None

    def compute(data: ReviewData) -> TablesRead:
        scoped = data.for_site(shown) if trial_wide else data
        if site is not None and not scoped.state.patients:
            raise SiteNotVisible(site)
        tables = [dmc_table(n, scoped, plan, now.date(), True, quiet_days) for n in names]
        return TablesRead(
            tables,
            now.date(),
            now,
            shown,
            data.position if trial_wide else None,
            data.chain_head if trial_wide else None,
            tuple(sorted({p.site_id for p in data.state.patients.values()})) if trial_wide else (),
        )

    return review.read(principal, compute)
