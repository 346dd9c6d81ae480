"""Follow-up windows of one patient: the span a plan's window covers, and who left early.

Shared by the toxicity tables and the monitor, so that both count a window the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from safety_stream.plan import Window
from safety_stream.projections.state import PatientState
from safety_stream.timemath import later

LEFT_STATUSES = frozenset({"withdrawn", "died", "lost_to_follow_up"})
"""Statuses of a patient who left follow-up (at ``status_at``)."""


@dataclass(frozen=True, slots=True)
class Span:
    """A closed time range a window covers for one patient."""

    start: datetime
    end: datetime

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end

    def holds_date(self, day: date) -> bool:
        return self.start.date() <= day <= self.end.date()

    def dates(self) -> tuple[date, date]:
        return self.start.date(), self.end.date()


def window_span(patient: PatientState, window: Window) -> Span | None:
    """From enrolment (or first exposure) to ``days`` after the window's anchor."""
    if window.anchor == "enrolment":
        anchor = start = patient.enrolled_at
    else:
        assert window.modality is not None
        exposure = patient.exposure.get(window.modality)  # a StrEnum keys as its value
        if exposure is None:
            return None
        start = exposure.first
        anchor = exposure.first if window.anchor == "first_exposure" else exposure.last
    if anchor is None or start is None:
        return None
    return Span(start, later(anchor, timedelta(days=window.days)))


def left_at(patient: PatientState) -> datetime | None:
    """When the patient left follow-up (died, withdrew, was lost), else None."""
    return patient.status_at if patient.status in LEFT_STATUSES else None
