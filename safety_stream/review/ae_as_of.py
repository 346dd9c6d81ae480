"""An AE as it stood at a clinical cut-off, replayed from its history.

The live review data holds each AE's *current* version: a worsening, a new seriousness
criterion or attribution, a fatal resolution or a death dated after a cut-off is already in it.
The DSMB report and the ``export`` command fold the log at the cut-off instead
(``report.snapshot.snapshot_as_of``): an event whose clinical date is after the cut-off is
left out, whenever it was stored. :func:`ae_as_of` gives that same picture from the AE's
history (``AeDetail.history``), so an export from the live data (the API) equals the command's
for the same log and cut-off, and replaying a snapshot's history changes nothing.

The clinical date of each version is the one ``report.snapshot.clinical_date`` gives:

- the report: its onset date (an AE with onset after the cut-off is not exported at all);
- a resolution: its end date;
- an update that changes the AE's course (``worsened``/``improved``): the UTC date it
  happened (``occurred_at``), not the day it was recorded: a worsening on day 4 recorded on
  day 12 is in a day-10 cut-off;
- any other update (a correction, or one that does not say), a retraction, a safety report:
  none; it applies whenever it was recorded, so it is always kept.

Each kept version is applied as the projection applies it (``projections.state``): a worsening
or an improvement appends its grade to the course, any other grade replaces the course's last;
attribution, seriousness and immune-relatedness are replaced when given; a resolution sets the
status, outcome and end date. The AE is fatal when it was resolved as fatal, or when the
patient's death dated on or before the cut-off cites it (``death``, already cut by the
caller); the worst grade is then 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from safety_stream.projections.state import AeState
from safety_stream.review.details import AeDetail, AeVersion, Exit

COURSE_CHANGES = ("worsened", "improved")


@dataclass(slots=True)
class AeAsOf:
    """What the AE dataset reads of an AE, as of a cut-off (or now)."""

    course: list[int]
    attribution: dict[str, str]
    seriousness: list[str]
    immune_related: bool
    status: str = "open"
    outcome: str | None = None
    end_date: date | None = None
    fatal: bool = False

    @property
    def worst(self) -> int:
        """The worst grade over the course as of the cut-off (5 once fatal)."""
        return 5 if self.fatal else max(self.course)


def now(ae: AeState) -> AeAsOf:
    """The AE as the projection holds it now (no cut-off)."""
    return AeAsOf(
        course=list(ae.course) or [ae.grade],
        attribution=dict(ae.attribution),
        seriousness=list(ae.seriousness),
        immune_related=ae.immune_related,
        status=ae.status,
        outcome=ae.outcome,
        end_date=ae.end_date,
        fatal=ae.fatal,
    )


def version_date(version: AeVersion) -> date | None:
    """A version's clinical date (None: it applies whenever it was recorded)."""
    changes = version.changes
    if version.event_type == "ae.reported":
        return date.fromisoformat(str(changes["onset_date"]))
    if version.event_type == "ae.resolved":
        return date.fromisoformat(str(changes["end_date"]))
    if version.event_type == "ae.updated" and changes.get("grade_change") in COURSE_CHANGES:
        moment = version.occurred_at or version.recorded_at  # both UTC
        return moment.date()
    return None


def _seriousness(given: Any) -> list[str]:
    return sorted(str(s) for s in given)


def _apply(ae: AeAsOf, version: AeVersion) -> None:
    changes = version.changes
    if version.event_type == "ae.resolved":
        ae.status, ae.outcome = "resolved", str(changes["outcome"])
        ae.end_date = date.fromisoformat(str(changes["end_date"]))
        ae.fatal = ae.fatal or ae.outcome == "fatal"
    elif version.event_type == "ae.retracted":
        ae.status = "retracted"
    elif version.event_type == "ae.updated":
        if "grade" in changes:
            if changes.get("grade_change") in COURSE_CHANGES:
                ae.course.append(int(changes["grade"]))
            else:  # a correction (also an update that does not say)
                ae.course[-1] = int(changes["grade"])
        if "attribution" in changes:
            ae.attribution = {k: str(v) for k, v in changes["attribution"].items()}
        if "seriousness" in changes:
            ae.seriousness = _seriousness(changes["seriousness"])
        if "immune_related" in changes:
            ae.immune_related = bool(changes["immune_related"])


def ae_as_of(ae: AeState, detail: AeDetail, death: Exit | None, cutoff: date | None) -> AeAsOf:
    """``ae`` as of ``cutoff`` (None: as it is now), from its history; ``death`` is the
    patient's death if dated on or before the cut-off."""
    if cutoff is None:
        return now(ae)
    first = detail.history[0].changes
    found = AeAsOf(
        course=[int(first["grade"])],
        attribution={k: str(v) for k, v in first["attribution"].items()},
        seriousness=_seriousness(first.get("seriousness", ())),
        immune_related=bool(first.get("immune_related", False)),
    )
    for version in detail.history[1:]:
        day = version_date(version)
        if day is None or day <= cutoff:
            _apply(found, version)
    cited = death is not None and death.on <= cutoff and death.related_ae_id == ae.ae_id
    found.fatal = found.fatal or cited
    return found
