"""A site's own view on the board: what it must fix and how timely it has been.

For a site credential only, from what the role-scoped reads give that site (its own AEs,
report clocks and dead letters; nothing trial-wide): its expedited-report clocks (hours left,
or hours late), the serious AEs it sent more than 24 h after recording them, its patients and
AEs, and its to-do list: overdue reports and dead letters to fix and resend.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from safety_stream.monitoring.status import ReportClockOut
from safety_stream.projections.state import AeState

HOUR = 3600.0


def hours_text(hours: float) -> str:
    """Whole hours (rounded down) as "5 h", or "2 d 3 h" from two days on."""
    whole = int(hours)
    if whole < 48:
        return f"{whole} h"
    return f"{whole // 24} d {whole % 24} h"


@dataclass(frozen=True, slots=True)
class ClockDue:
    """A running clock: hours left until it is due, or (overdue) hours since."""

    clock: ReportClockOut
    hours: float

    @property
    def overdue(self) -> bool:
        return self.clock.state == "overdue"

    @property
    def span(self) -> str:
        """The hours as people read them: "5 h", "2 d 3 h"."""
        return hours_text(self.hours)


@dataclass(frozen=True, slots=True)
class LateReport:
    """A serious AE the site sent more than 24 h after it recorded it."""

    ae_id: str
    ctcae_term: str
    grade: int
    recorded_at: datetime  # by the site
    received_at: datetime | None  # by the server (None: not in the review data yet)

    @property
    def hours_late(self) -> float | None:
        """Hours from recording to receipt (None when the receipt time is not known)."""
        if self.received_at is None:
            return None
        return (self.received_at - self.recorded_at).total_seconds() / HOUR

    @property
    def late_text(self) -> str:
        """How long after recording it arrived, as people read it ("" when not known)."""
        return "" if self.hours_late is None else hours_text(self.hours_late)


@dataclass(frozen=True, slots=True)
class SiteOwn:
    """Everything of the site's own view that the general panels do not already show."""

    site_id: str
    patients: int
    aes: int  # not retracted
    clocks: list[ClockDue]  # running clocks: overdue first (most late first), then by due
    late: list[LateReport]  # oldest recording first
    dead_letters: int  # rejected records still listed (kept in the dead-letter store)

    @property
    def overdue(self) -> list[ClockDue]:
        return [c for c in self.clocks if c.overdue]

    @property
    def to_fix(self) -> int:
        """How many things the site must act on: overdue reports and dead letters."""
        return len(self.overdue) + self.dead_letters


def site_own(
    site_id: str,
    patients: int,
    aes: Mapping[UUID, AeState],
    clocks: Iterable[ReportClockOut],
    late_aes: Iterable[UUID],
    received: Mapping[str, datetime],
    dead_letters: int,
    now: datetime,
) -> SiteOwn:
    """The site's own view (pure): ``aes`` and ``clocks`` are already the site's alone;
    ``received`` maps an AE id to when the server first stored it; ``now`` is the server's
    clock (hours left or late are counted to it)."""
    running = [
        ClockDue(c, max(0.0, (now - c.due if c.state == "overdue" else c.due - now).total_seconds())
                 / HOUR)
        for c in clocks
        if c.state in ("open", "overdue") and c.site_id == site_id
    ]  # fmt: skip
    running.sort(key=lambda c: (not c.overdue, -c.hours if c.overdue else c.hours))
    late = [
        LateReport(
            str(a), aes[a].ctcae_term, aes[a].worst, aes[a].reported_at, received.get(str(a))
        )
        for a in late_aes
        if a in aes and aes[a].site_id == site_id
    ]
    late.sort(key=lambda r: r.recorded_at)
    shown = sum(1 for a in aes.values() if a.site_id == site_id and a.status != "retracted")
    return SiteOwn(site_id, patients, shown, running, late, dead_letters)
