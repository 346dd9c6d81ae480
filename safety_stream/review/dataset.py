"""The review dataset: the projection's current picture and the history behind it, folded
together from one log prefix, as one principal may see it.

Everything the review workspace shows (the AE listing, patient profiles, DMC tables, liver
safety, exports) is a pure function of a :class:`ReviewData`. The board and API fold it live
(``application.review``); the DSMB report folds it with its snapshot (``report.snapshot``), so
a table on the board and the same table in a report at the same position are equal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from safety_stream.events import EventBase, decode_json
from safety_stream.projections.state import AeState, PatientState, TrialState, apply
from safety_stream.review.details import AeDetail, PatientDetail, ReviewDetails, fold_details


@dataclass
class ReviewData:
    """The trial at one log position: state (what rules count) and details (the history)."""

    state: TrialState = field(default_factory=TrialState)
    details: ReviewDetails = field(default_factory=ReviewDetails)
    chain_head: str = ""  # the chain hash of the last event folded ("" before any)
    last_stored_at: datetime | None = None

    @property
    def position(self) -> int:
        return self.state.position

    def fold(self, event: EventBase, position: int, stored_at: datetime, chain: str) -> None:
        """Fold one stored event (in log order)."""
        apply(self.state, event, position)
        fold_details(self.details, event, position, stored_at)
        self.chain_head, self.last_stored_at = chain, stored_at

    def fold_payloads(self, stored: Iterable[tuple[int, str, datetime, str]]) -> None:
        """Fold (position, canonical JSON, stored at, chain hash) rows, in log order."""
        for position, payload, stored_at, chain in stored:
            self.fold(decode_json(payload), position, stored_at, chain)

    # -- reading -------------------------------------------------------------------------

    def aes(self, *, include_retracted: bool = False) -> list[tuple[AeState, AeDetail]]:
        """Every AE with its detail, in report order (retracted ones only when asked)."""
        out = []
        for ae_id, ae in self.state.aes.items():
            if ae.status == "retracted" and not include_retracted:
                continue
            out.append((ae, self.details.aes[ae_id]))
        return out

    def patients(self) -> list[tuple[PatientState, PatientDetail]]:
        """Every patient with its detail, in enrolment (log) order."""
        return [(p, self.details.patients[pid]) for pid, p in self.state.patients.items()]

    def ae(self, ae_id: UUID) -> tuple[AeState, AeDetail] | None:
        found = self.state.aes.get(ae_id)
        return None if found is None else (found, self.details.aes[ae_id])

    def patient(self, patient_id: str) -> tuple[PatientState, PatientDetail] | None:
        found = self.state.patients.get(patient_id)
        return None if found is None else (found, self.details.patients[patient_id])

    def for_site(self, site_id: str | None) -> ReviewData:
        """What one site may see (``None``: everything, returned as is). The trial-wide chain
        head and position are not a site's to see: they are blanked."""
        if site_id is None:
            return self
        state = TrialState(
            0,
            {k: p for k, p in self.state.patients.items() if p.site_id == site_id},
            {k: a for k, a in self.state.aes.items() if a.site_id == site_id},
        )
        details = ReviewDetails(
            0,
            {k: self.details.patients[k] for k in state.patients},
            {k: self.details.aes[k] for k in state.aes},
        )
        return ReviewData(state, details, "", None)
