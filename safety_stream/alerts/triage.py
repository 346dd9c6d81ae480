"""Alert triage as pure rules: which steps are allowed, and the fold of the steps taken.

An alert is ``new`` until a reader starts reviewing it. From review it is escalated to the
DSMB or closed; an escalated alert is closed (usually ``addressed_by_dsmb_decision``); a
closed alert may be reopened for review (a wrong closure is corrected by a new step, never by
editing the log). Closing names a disposition from a fixed list and a note saying why;
reopening and escalating say why too. Each step is an ``alert.triaged`` event in the log
(:class:`safety_stream.events.AlertTriaged`), so the triage state is a fold of the log and a
replay gives the same states.

    new --> under_review --> escalated_to_dsmb --> closed
                 |                                  ^  |
                 +----------------------------------+  |
                 ^-------------- reopened -------------+
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from safety_stream.events import AlertTriaged, Disposition, TriageState
from safety_stream.events.base import TEXT_PATTERN

NEW, UNDER_REVIEW = TriageState.NEW, TriageState.UNDER_REVIEW
ESCALATED, CLOSED = TriageState.ESCALATED_TO_DSMB, TriageState.CLOSED

ALLOWED: Mapping[TriageState, tuple[TriageState, ...]] = {
    NEW: (UNDER_REVIEW,),
    UNDER_REVIEW: (ESCALATED, CLOSED),
    ESCALATED: (CLOSED,),
    CLOSED: (UNDER_REVIEW,),
}
"""The steps a reader may take from each state (every other step is refused)."""

NOTE_REQUIRED = frozenset({ESCALATED, CLOSED})
"""Steps into these states must say why (escalating, closing); so must reopening."""

NOTE_LIMIT = 2000

LABELS: Mapping[TriageState, str] = {
    NEW: "New",
    UNDER_REVIEW: "Under review",
    ESCALATED: "Escalated to DSMB",
    CLOSED: "Closed",
}
ACTIONS: Mapping[tuple[TriageState, TriageState], str] = {
    (NEW, UNDER_REVIEW): "Start review",
    (UNDER_REVIEW, ESCALATED): "Escalate to DSMB",
    (UNDER_REVIEW, CLOSED): "Close",
    (ESCALATED, CLOSED): "Close",
    (CLOSED, UNDER_REVIEW): "Reopen",
}
"""What the button for each allowed step says."""


class TriageError(ValueError):
    """A step that is not allowed, or one given without what it needs (a clear message)."""


class StepNotAllowed(TriageError):
    """The step does not lead on from the alert's current state."""


def _names(states: Iterable[TriageState]) -> str:
    return ", ".join(s.value for s in states) or "none"


def check_step(
    current: TriageState, target: str, disposition: str | None, note: str | None
) -> tuple[TriageState, Disposition | None, str | None]:
    """The step from ``current`` to ``target`` with its disposition and note, checked.

    Raises :class:`TriageError` naming the state, the allowed steps and what is missing.
    """
    states = [s.value for s in TriageState]
    if target not in states:
        raise TriageError(f"to_state {target!r} is not a triage state (one of {', '.join(states)})")
    to = TriageState(target)
    allowed = ALLOWED[current]
    if to not in allowed:
        raise StepNotAllowed(
            f"the alert is {current.value}: it may go to {_names(allowed)}, not {to.value}"
        )
    text = (note or "").strip() or None
    if text is not None and len(text) > NOTE_LIMIT:
        raise TriageError(f"note: at most {NOTE_LIMIT} characters (got {len(text)})")
    if text is not None and not re.fullmatch(TEXT_PATTERN, text):
        raise TriageError("note: printable text only (tabs and line breaks are allowed)")
    if text is None and (to in NOTE_REQUIRED or current == CLOSED):
        why = "reopening" if current == CLOSED else f"going to {to.value}"
        raise TriageError(f"note: say why ({why} needs a note)")
    return to, _disposition(to, disposition), text


def _disposition(to: TriageState, disposition: str | None) -> Disposition | None:
    given = (disposition or "").strip() or None
    choices = ", ".join(d.value for d in Disposition)
    if to != CLOSED:
        if given is not None:
            raise TriageError(f"disposition is given only when closing (to_state {to.value})")
        return None
    if given is None:
        raise TriageError(f"disposition: closing needs one of {choices}")
    if given not in {d.value for d in Disposition}:
        raise TriageError(f"disposition {given!r} is not one of {choices}")
    return Disposition(given)


@dataclass(frozen=True, slots=True)
class TriageStep:
    """One step as recorded: the log position of its event, who, when, and why."""

    position: int
    event_id: UUID
    from_state: TriageState
    to_state: TriageState
    disposition: Disposition | None
    note: str | None
    by: str
    at: datetime


@dataclass(slots=True)
class AlertTriage:
    """One alert's triage: its state and every step taken, oldest first."""

    state: TriageState = NEW
    steps: list[TriageStep] = field(default_factory=list)

    @property
    def last_position(self) -> int:
        """The log position of the latest step (0: none yet)."""
        return self.steps[-1].position if self.steps else 0

    @property
    def disposition(self) -> Disposition | None:
        return self.steps[-1].disposition if self.state == CLOSED and self.steps else None

    def allowed(self) -> tuple[TriageState, ...]:
        return ALLOWED[self.state]


def fold_step(triage: dict[UUID, AlertTriage], event: AlertTriaged, position: int) -> AlertTriage:
    """Apply one recorded step. The recorded ``to_state`` is the alert's state afterwards:
    the service checked the step against the state before it was stored, so the log is the
    authority (a replay gives exactly the states the live system showed)."""
    current = triage.setdefault(event.alert_id, AlertTriage())
    current.steps.append(
        TriageStep(
            position,
            event.event_id,
            event.from_state,
            event.to_state,
            event.disposition,
            event.note,
            event.triaged_by,
            event.recorded_at,
        )
    )
    current.state = event.to_state
    return current


def fold_triage(steps: Iterable[tuple[int, AlertTriaged]]) -> dict[UUID, AlertTriage]:
    """Every alert's triage from its recorded steps ``(position, event)`` in log order;
    an alert with no step is ``new`` (absent from the mapping)."""
    triage: dict[UUID, AlertTriage] = {}
    for position, event in steps:
        fold_step(triage, event, position)
    return triage
