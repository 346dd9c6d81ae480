"""Date arithmetic that saturates instead of raising.

A stored event may carry any time pydantic accepts, up to 9999-12-31. Adding a window's days
to such a time would overflow ``datetime`` and stop the fold; a deadline or window end past the
end of the calendar is "never" for every practical purpose, so it is clamped to ``END_OF_TIME``
(a day short of the calendar's end, so converting it to any UTC offset still works).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

END_OF_TIME = datetime(9999, 12, 30, tzinfo=UTC)
LAST_DAY = END_OF_TIME.date()


def later(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta``, or ``END_OF_TIME`` (in ``moment``'s zone) when that is past it."""
    try:
        result = moment + delta
    except OverflowError:
        return END_OF_TIME.astimezone(moment.tzinfo) if moment.tzinfo else END_OF_TIME
    if result.tzinfo is not None and result > END_OF_TIME:
        return END_OF_TIME.astimezone(result.tzinfo)
    return result


def later_day(day: date, days: int) -> date:
    """``day`` plus ``days`` days, or ``LAST_DAY`` when that is past it."""
    try:
        return min(day + timedelta(days=days), LAST_DAY)
    except OverflowError:
        return LAST_DAY
