"""The board's alert rows: each alert with its triage, the reader's review mark, and the
steps the reader may take next; open (not closed) alerts apart from closed ones, the most
severe first and the newest first within a severity (pure; the board's view builds them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from safety_stream.alerts.outbox import AlertView, severity_key
from safety_stream.alerts.triage import ACTIONS, CLOSED, LABELS, NOTE_REQUIRED, AlertTriage
from safety_stream.events.derived import DerivedEvent
from safety_stream.review.marks import ReviewStatus, review_status


@dataclass(frozen=True, slots=True)
class TriageAction:
    """A step the reader may take: the state it leads to and what its button says."""

    to_state: str
    label: str
    needs_note: bool
    closes: bool


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert as the board shows it to one reader."""

    view: AlertView
    triage: AlertTriage
    review: ReviewStatus | None  # "new" / "changed" since this reader's mark, None: reviewed
    last_position: int  # the alert's last change in the log (its cause, or its latest step)

    @property
    def alert(self) -> DerivedEvent:
        return self.view.alert

    @property
    def number(self) -> int:
        return self.view.number

    @property
    def raised_at(self) -> datetime:
        return self.view.raised_at

    @property
    def escalated_at(self) -> datetime | None:
        return self.view.escalated_at

    @property
    def state(self) -> str:
        return self.triage.state.value

    @property
    def state_label(self) -> str:
        return LABELS[self.triage.state]

    @property
    def actions(self) -> list[TriageAction]:
        current = self.triage.state
        return [
            TriageAction(
                to.value,
                ACTIONS[(current, to)],
                to in NOTE_REQUIRED or current == CLOSED,
                to == CLOSED,
            )
            for to in self.triage.allowed()
        ]

    @property
    def closing(self) -> bool:
        """Whether one of the next steps closes it (the form then offers the dispositions)."""
        return any(a.closes for a in self.actions)


def alert_rows(
    alerts: Sequence[AlertView],
    triage: Mapping[UUID, AlertTriage],
    marks: Mapping[tuple[str, str], int],
) -> tuple[list[AlertRow], list[AlertRow]]:
    """(open alerts, closed alerts), each most severe first, then newest first."""
    rows = []
    for view in sorted(alerts, key=lambda v: severity_key(v.alert.severity, v.number)):
        found = triage.get(view.alert.derived_id) or AlertTriage()
        first = view.alert.caused_by
        last = max(first, found.last_position)
        mark = marks.get(("alert", str(view.alert.derived_id)))
        rows.append(AlertRow(view, found, review_status(mark, first, last), last))
    return (
        [r for r in rows if r.triage.state != CLOSED],
        [r for r in rows if r.triage.state == CLOSED],
    )
