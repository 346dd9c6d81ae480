"""Recording a DSMB decision: written to the audit log directly (also in distributed mode),
then folded into the live projection and monitor."""

from __future__ import annotations

from safety_stream.ctcae import CtcaeDictionary
from safety_stream.events import DsmbDecision
from safety_stream.governance import record_decision
from safety_stream.ingest import IngestReport
from safety_stream.projections.projector import Projector
from safety_stream.store.base import EventStore


class DecisionLog:
    def __init__(self, store: EventStore, ctcae: CtcaeDictionary, projector: Projector) -> None:
        self._store = store
        self._ctcae = ctcae
        self._projector = projector

    def record(self, decision: DsmbDecision, source: str) -> IngestReport:
        """Store ``decision`` (blocking) and follow it: the monitor's latch is released by the
        time this returns."""
        report = record_decision(self._store, self._ctcae, decision, source)
        self._projector.follow(report.appended)
        return report
