"""Fold one trial history in memory, as the server would, with nothing stored.

Records go through the same validation (structure, CTCAE, references within the history),
projection (``apply``) and monitor as on ingest; rejected records are counted and kept with
their problems. The monitoring clock then advances to ``now`` (default: the latest time in the
history), so windows that have elapsed by then are complete. Used by ``safety-stream monitor``
and by the operating-characteristics simulation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from safety_stream.ctcae import CtcaeDictionary, ctcae_dictionary
from safety_stream.events.derived import DerivedEvent
from safety_stream.monitoring.monitor import Monitor
from safety_stream.plan import MonitoringPlan
from safety_stream.projections.state import TrialState, apply
from safety_stream.validation.problems import Problem
from safety_stream.validation.records import RawRecord
from safety_stream.validation.validator import Validator


@dataclass
class Folded:
    monitor: Monitor
    state: TrialState
    stored: int = 0
    rejected: int = 0
    problems: list[tuple[str, Problem]] = field(default_factory=list)
    derived: list[DerivedEvent] = field(default_factory=list)


def fold(
    plan: MonitoringPlan,
    records: Iterable[RawRecord],
    *,
    now: datetime | None = None,
    csv: bool = False,
    ctcae: CtcaeDictionary | None = None,
) -> Folded:
    """The monitor after every valid record of one history, and the clock at ``now``."""
    folded = Folded(Monitor(plan), TrialState())
    validator = Validator(ctcae or ctcae_dictionary())
    for result in validator.validate(records, csv_paths=csv):
        if result.event is None or result.problems:
            folded.rejected += 1
            folded.problems += [(result.location, p) for p in result.problems]
            continue
        if result.duplicate_of is not None:
            continue
        folded.stored += 1
        apply(folded.state, result.event, folded.stored)
        folded.derived += folded.monitor.observe(folded.state, result.event, folded.stored)
    if now is not None:
        folded.derived += folded.monitor.advance(folded.state, now, folded.stored)
    return folded
