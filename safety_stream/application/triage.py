"""Triaging alerts: one path for the API and the board.

A step (start review, escalate to the DSMB, close with a disposition, reopen) is checked
against the alert's current state (the pure rules of :mod:`safety_stream.alerts.triage`),
then appended to the log as an ``alert.triaged`` event through ingest (validated,
hash-chained, ``verify``-able; only this path may record one) and followed by the live
projection, as DSMB decisions are. The triage state is the fold of the trial's triage stream,
so a restart or a replay shows the same states. Starting a review also acknowledges the alert
(a person has seen it: its escalation stops), if nobody had; any step marks the alert reviewed
by the reader who took it (their "new / changed" mark moves to the step).

Only readers (safety officers, DSMB members, administrators) triage; a site never does and
never sees an alert. Steps are taken under one lock per process: two readers stepping the same
alert at once are serialised, and the second is checked against the first one's result.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from safety_stream.alerts.outbox import Outbox, UnknownAlert
from safety_stream.alerts.triage import (
    UNDER_REVIEW,
    AlertTriage,
    check_step,
    fold_step,
    fold_triage,
)
from safety_stream.application.review_marks import ReviewMarksService
from safety_stream.auth import Principal
from safety_stream.ctcae import CtcaeDictionary
from safety_stream.events import DSMB_STREAM, TRIAGE_STREAM, AlertTriaged, decode_json, encode_json
from safety_stream.ingest import ingest
from safety_stream.projections.projector import Projector
from safety_stream.store.base import EventStore
from safety_stream.validation.records import InputFormat, RawRecord

__all__ = ["AlertTriageService", "TriageForbidden", "TriageRecorded", "UnknownAlert"]

SITES_DO_NOT_TRIAGE = (
    "sites see only their own data: alerts are triaged by safety officers and the DSMB"
)


def triage_in_log(store: EventStore, trial_id: str) -> dict[uuid.UUID, AlertTriage]:
    """Every triaged alert's state and steps, folded from the trial's triage stream (for a
    process without the runtime, such as ``safety-stream alerts``)."""
    steps = []
    for stored in store.stream(trial_id, TRIAGE_STREAM):
        event = decode_json(stored.payload)
        if isinstance(event, AlertTriaged):
            steps.append((stored.position, event))
    return fold_triage(steps)


class TriageForbidden(PermissionError):
    """The caller may not triage (a site credential)."""


@dataclass(frozen=True, slots=True)
class TriageRecorded:
    """A step taken: its log position and the alert's triage afterwards."""

    position: int
    event: AlertTriaged
    triage: AlertTriage


class AlertTriageService:
    """The triage of every alert, folded from the log, and the one way to take a step."""

    def __init__(
        self,
        store: EventStore,
        ctcae: CtcaeDictionary,
        projector: Projector,
        outbox: Outbox,
        trial_id: str,
        marks: ReviewMarksService | None = None,
    ) -> None:
        self._store = store
        self._ctcae = ctcae
        self._projector = projector
        self._outbox = outbox
        self._trial_id = trial_id
        self._marks = marks
        self._lock = threading.RLock()
        self._folded: dict[uuid.UUID, AlertTriage] = {}
        self._seen = 0  # stream version folded so far

    def _catch_up(self) -> None:
        """Fold the triage steps stored since the last look (caller holds the lock)."""
        for stored in self._store.stream(self._trial_id, TRIAGE_STREAM):
            if stored.stream_version <= self._seen:
                continue
            event = decode_json(stored.payload)
            if isinstance(event, AlertTriaged):
                fold_step(self._folded, event, stored.position)
            self._seen = stored.stream_version

    def states(self, principal: Principal) -> Mapping[uuid.UUID, AlertTriage]:
        """Every triaged alert's state and steps (an alert absent here is ``new``); copies."""
        self._refuse_sites(principal)
        with self._lock:
            self._catch_up()
            return {
                alert_id: AlertTriage(t.state, list(t.steps))
                for alert_id, t in self._folded.items()
            }

    def of(self, principal: Principal, alert_id: uuid.UUID) -> AlertTriage:
        """One alert's triage (``new`` with no steps when nobody has triaged it)."""
        return self.states(principal).get(alert_id) or AlertTriage()

    def step(
        self,
        principal: Principal,
        alert_id: uuid.UUID,
        to_state: str,
        disposition: str | None = None,
        note: str | None = None,
    ) -> TriageRecorded:
        """Take one step; raises TriageForbidden (a site), UnknownAlert, or
        :class:`~safety_stream.alerts.triage.TriageError` (a step not allowed from the alert's
        state, a missing note or disposition: the message says which and what is allowed)."""
        self._refuse_sites(principal)
        if not self._outbox.alerts(derived_id=alert_id, limit=1):
            raise UnknownAlert(str(alert_id))
        with self._lock:
            self._catch_up()
            current = self._folded.get(alert_id) or AlertTriage()
            to, chosen, text = check_step(current.state, to_state, disposition, note)
            now = self._store.now()
            event = AlertTriaged.model_validate(
                {
                    "event_type": "alert.triaged", "schema_version": 1,
                    "event_id": str(uuid.uuid4()), "trial_id": self._trial_id,
                    "site_id": DSMB_STREAM, "patient_id": TRIAGE_STREAM,
                    "reporter": principal.name, "occurred_at": now.isoformat(),
                    "recorded_at": now.isoformat(), "alert_id": str(alert_id),
                    "from_state": current.state.value, "to_state": to.value,
                    "disposition": None if chosen is None else chosen.value,
                    "note": text, "triaged_by": principal.name,
                }
            )  # fmt: skip
            record = RawRecord("triage", encode_json(event).encode())
            report = ingest(
                self._store, [record], InputFormat.NDJSON, self._ctcae,
                f"triage:{principal.name}", None, may_triage=True, trial_id=self._trial_id,
            )  # fmt: skip
            (outcome,) = report.outcomes
            if outcome.status != "stored" or outcome.position is None:
                raise RuntimeError("; ".join(p.message for p in outcome.problems))
            self._catch_up()
            triage = self._folded[alert_id]
            result = TriageRecorded(
                outcome.position, event, AlertTriage(triage.state, list(triage.steps))
            )
        self._projector.follow(report.appended)  # the monitor's clock moves on with the log
        if to == UNDER_REVIEW:  # a person has seen it: stop its escalation (the first stands)
            self._outbox.acknowledge(alert_id, principal.name, text, now)
        if self._marks is not None:  # whoever took the step has reviewed it as it now stands
            self._marks.mark(principal, "alert", [str(alert_id)], result.position)
        return result

    @staticmethod
    def _refuse_sites(principal: Principal) -> None:
        if principal.sees_site is not None:
            raise TriageForbidden(SITES_DO_NOT_TRIAGE)
