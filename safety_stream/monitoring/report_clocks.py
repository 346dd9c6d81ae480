"""Expedited IND safety reports (21 CFR 312.32(c), ICH E2A): one clock per qualifying case.

A case qualifies when an AE is serious, unexpected and suspected (attribution at least the
rule's ``min_attribution``) to one of the plan's suspected products (radiotherapy alone does
not make a SUSAR when only the drugs are investigational). Day 0 is the sponsor's awareness:
the server's receipt time of the information that made the case qualify. The report is due at
the end of calendar day 7 (fatal or life-threatening) or 15 in the trial's time zone.

A clock closes when a report is submitted (on time or late), when the AE is retracted, or as
"no longer reportable" when a correction removes seriousness, unexpectedness or the suspected
relation (with the reason). New significant information after a report (the case became fatal
or life-threatening) opens a follow-up clock on the same timelines; a 7-day initial report is
followed by a complete report due on calendar day 15.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from safety_stream.events import ATTRIBUTION_RANK
from safety_stream.events.derived import DerivedEvent, DerivedKind, derive
from safety_stream.monitoring.states import ClockState, TimerKind
from safety_stream.plan import ExpeditedReportRule
from safety_stream.projections.state import AeState
from safety_stream.timemath import later_day

SITE_DEADLINE = timedelta(hours=24)  # 21 CFR 312.64(b): an SAE to the sponsor immediately
JUST_AFTER = timedelta(microseconds=1)  # a report is overdue once the clock is past its due time
Schedule = Callable[[datetime, TimerKind, Any], None]


@dataclass
class ReportClock:
    ae_id: UUID
    site_id: str
    opened_at: datetime  # day 0: the server received what made the case (or follow-up) due
    due: datetime
    severe: bool  # fatal or life-threatening: the short clock
    state: ClockState = ClockState.OPEN
    dues: int = 0  # report.due events emitted for this case (shortened, follow-ups)
    closes: int = 0  # report.closed events emitted for this case
    stage: str = "initial"  # initial | complete | follow-up
    reason: str | None = None  # why it closed: submitted | retracted | no longer reportable: ...
    submitted: int = 0  # reports submitted on this case


def calendar_due(aware: datetime, days: int, zone: ZoneInfo) -> datetime:
    """The end of calendar day ``days`` after the day of ``aware`` in the trial's time zone."""
    local_day = later_day(aware.astimezone(zone).date(), days + 1)
    return datetime.combine(local_day, time.min, zone).astimezone(UTC) - JUST_AFTER


def qualifies(ae: AeState, rule: ExpeditedReportRule) -> tuple[bool, int] | str:
    """(fatal or life-threatening, days) for a serious, unexpected, suspected reaction to a
    suspected product; else why not (a reason to close an open clock with)."""
    if ae.status == "retracted":
        return "retracted"
    if not ae.seriousness:
        return "no longer reportable: not serious"
    if ae.expectedness != "unexpected":
        return "no longer reportable: expected (listed in the reference safety information)"
    products = (
        [str(m) for m in rule.suspected_products] if rule.suspected_products else ae.attribution
    )
    threshold = ATTRIBUTION_RANK[rule.min_attribution]
    if not any(ATTRIBUTION_RANK[ae.attribution[m]] >= threshold for m in products):
        return "no longer reportable: not suspected to be related to a suspected product"
    severe = "death" in ae.seriousness or "life_threatening" in ae.seriousness
    return severe, rule.fatal_or_life_threatening_days if severe else rule.other_serious_days


class ReportClocks:
    """The clocks of one plan's expedited-report rule, driven by the monitor."""

    def __init__(self, rule: ExpeditedReportRule | None, zone: ZoneInfo, version: str) -> None:
        self.rule = rule
        self.zone = zone
        self.version = version
        self.clocks: dict[UUID, ReportClock] = {}
        self.site_late_aes: set[UUID] = set()

    def on_ae(
        self, ae: AeState, aware: datetime, now: datetime, position: int, schedule: Schedule
    ) -> list[DerivedEvent]:
        """An AE was reported or amended (``aware``: when the server received it)."""
        rule = self.rule
        if rule is None:
            return []
        out: list[DerivedEvent] = []
        clock = self.clocks.get(ae.ae_id)
        verdict = qualifies(ae, rule)
        if isinstance(verdict, str):
            if clock is not None and clock.state != ClockState.CLOSED:
                clock.state, clock.reason = ClockState.CLOSED, verdict
                out.append(self._closed(clock, now, position))
            return out
        severe, days = verdict
        if clock is None:
            clock = ReportClock(ae.ae_id, ae.site_id, aware, calendar_due(aware, days, self.zone),
                                severe)  # fmt: skip
            self.clocks[ae.ae_id] = clock
            self._open(clock, now, position, schedule, out)
        elif clock.state == ClockState.CLOSED and (clock.reason or "").startswith("no longer"):
            # a later correction made the case reportable again: a new clock from now
            clock.state, clock.reason, clock.severe = ClockState.OPEN, None, severe
            clock.opened_at, clock.due = aware, calendar_due(aware, days, self.zone)
            self._open(clock, now, position, schedule, out)
        elif severe and not clock.severe:  # became fatal or life-threatening
            clock.severe = True
            shorter = calendar_due(aware, days, self.zone)
            if clock.state != ClockState.CLOSED and shorter < clock.due:  # the 7-day clock applies
                clock.due, clock.opened_at = shorter, aware
                self._open(clock, now, position, schedule, out)
            elif clock.state == ClockState.CLOSED and clock.reason == "submitted":
                # a follow-up report
                clock.state, clock.stage, clock.reason = ClockState.OPEN, "follow-up", None
                clock.opened_at, clock.due = aware, shorter
                self._open(clock, now, position, schedule, out)
        return out

    def site_late(
        self, ae: AeState, site_recorded: datetime, received: datetime, now: datetime,
        position: int,
    ) -> list[DerivedEvent]:  # fmt: skip
        """A serious AE (or one just made serious) that the server received more than 24 h
        after the site recorded it: the site's lateness, raised once per AE."""
        if self.rule is None or not ae.seriousness or ae.ae_id in self.site_late_aes:
            return []
        late = received - site_recorded
        if late <= SITE_DEADLINE:
            return []
        self.site_late_aes.add(ae.ae_id)
        hours = late.total_seconds() / 3600
        details = {
            "ae_id": str(ae.ae_id), "site_id": ae.site_id,
            "site_recorded_at": site_recorded.isoformat(), "received_at": received.isoformat(),
            "hours_late": round(hours, 1),
        }  # fmt: skip
        summary = (
            f"serious AE received {hours:.0f} h after site {ae.site_id} recorded it "
            f"(due to the sponsor within 24 h)"
        )
        return [
            derive("report.site_late", self.rule.id, self.version, str(ae.ae_id), now,
                   position, summary, details)
        ]  # fmt: skip

    def on_submitted(
        self, ae: AeState, submitted_at: datetime, now: datetime, position: int,
        schedule: Schedule,
    ) -> list[DerivedEvent]:  # fmt: skip
        """A safety report on the case was submitted (closes the clock in force)."""
        clock = self.clocks.get(ae.ae_id)
        if clock is None or clock.state == ClockState.CLOSED:
            return []
        out = []
        clock.submitted += 1
        on_time = submitted_at <= clock.due
        clock.state, clock.reason = ClockState.CLOSED, "submitted"
        details = {"submitted_at": submitted_at.isoformat(), "on_time": on_time}
        out.append(self._closed(clock, now, position, details))
        if clock.severe and clock.stage == "initial":  # then the complete report, by day 15
            assert self.rule is not None
            clock.state, clock.stage, clock.reason = ClockState.OPEN, "complete", None
            clock.due = calendar_due(clock.opened_at, self.rule.other_serious_days, self.zone)
            self._open(clock, now, position, schedule, out)
        return out

    def on_timer(self, ae_id: UUID, when: datetime, now: datetime, position: int) -> list[Any]:
        clock = self.clocks.get(ae_id)
        # a clock shortened, closed or reopened since this timer was set ignores it
        if clock is None or clock.state != ClockState.OPEN or when != clock.due + JUST_AFTER:
            return []
        clock.state = ClockState.OVERDUE
        return [self._event("report.overdue", clock, now, position, f"{ae_id}/{clock.dues}")]

    def _open(
        self, clock: ReportClock, now: datetime, position: int, schedule: Schedule,
        out: list[DerivedEvent],
    ) -> None:  # fmt: skip
        clock.dues += 1
        out.append(self._event("report.due", clock, now, position, f"{clock.ae_id}/{clock.dues}"))
        schedule(clock.due + JUST_AFTER, TimerKind.OVERDUE, clock.ae_id)

    def _closed(
        self, clock: ReportClock, now: datetime, position: int,
        extra: dict[str, Any] | None = None,
    ) -> DerivedEvent:  # fmt: skip
        clock.closes += 1
        key = str(clock.ae_id) if clock.closes == 1 else f"{clock.ae_id}/closed/{clock.closes}"
        return self._event("report.closed", clock, now, position, key, extra)

    def _event(
        self, kind: DerivedKind, clock: ReportClock, now: datetime, position: int, key: str,
        extra: dict[str, Any] | None = None,
    ) -> DerivedEvent:  # fmt: skip
        assert self.rule is not None
        details: dict[str, Any] = {
            "ae_id": str(clock.ae_id),
            "site_id": clock.site_id,
            "aware_at": clock.opened_at.isoformat(),
            "due": clock.due.isoformat(),
            "days": (clock.due - clock.opened_at).days,
            "fatal_or_life_threatening": clock.severe,
            "stage": clock.stage,
            **(extra or {}),
        }
        title = f"expedited report ({clock.stage})"
        if kind == "report.due":
            summary = f"{title} due by {clock.due:%Y-%m-%d %H:%M} UTC (site {clock.site_id})"
        elif kind == "report.overdue":
            summary = f"{title} overdue since {clock.due:%Y-%m-%d %H:%M} UTC (site {clock.site_id})"
        else:
            details["reason"] = clock.reason
            summary = f"{title} closed ({clock.reason}; site {clock.site_id})"
        return derive(kind, self.rule.id, self.version, key, now, position, summary, details)
