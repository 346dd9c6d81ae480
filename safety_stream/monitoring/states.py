"""The monitor's closed vocabularies: what a timer waits for, and a report clock's state.

Both are ``StrEnum``: a member is its value ("overdue" == TimerKind.OVERDUE), so everything
that shows, stores or serves them (the API, the board, the metrics) sees the same strings.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args


class TimerKind(StrEnum):
    """What a timer in the monitor's heap fires for."""

    EVALUABLE = "evaluable"  # a patient's window has been followed: judge them again
    OVERDUE = "overdue"  # an expedited report's due time has passed


class ClockState(StrEnum):
    """The state of an expedited-report clock."""

    OPEN = "open"
    OVERDUE = "overdue"
    CLOSED = "closed"


ClockStateName = Literal["open", "overdue", "closed"]
"""A clock state as the API, the board and the metrics show it (``ClockState(...).value``)."""

assert set(get_args(ClockStateName)) == {s.value for s in ClockState}
