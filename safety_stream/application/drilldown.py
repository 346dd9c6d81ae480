"""Drill-down reads: the AE listing, one AE with every version, one patient's profile.

Each is computed by ``ReviewReads.read`` on what the principal may see (a site: its own
patients and AEs; another site's id is simply not found, so the caller answers 404 and never
confirms that it exists), at one log position, and returned as read models that keep no
reference into the review data. Log positions are trial-wide: a site gets None for every one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from safety_stream.application.read_models import AeRead
from safety_stream.application.reads import sees_trial_wide
from safety_stream.application.review import ReviewReads
from safety_stream.auth import Principal
from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import Administration, ChildPughScore, Exit, LabValue
from safety_stream.review.listing import AeFilter, ListedAe, numbered, page, select


@dataclass(frozen=True, slots=True)
class AeListingRow:
    """One AE in a listing: its current version and what the review adds to it."""

    number: int  # its place among the AEs the principal sees, first reported first: the cursor
    ae: AeRead
    meddra_code: int
    verbatim_term: str | None
    action_taken: str
    first_stored_at: datetime
    last_changed_at: datetime  # when its last version was stored
    last_changed_position: int | None  # the log position of that version (None for a site)
    amendments: int  # versions after the report (updates, resolution, retraction, report sent)

    @classmethod
    def of(cls, listed: ListedAe, positions: bool) -> AeListingRow:
        detail, last = listed.detail, listed.detail.history[-1]
        return cls(
            number=listed.number,
            ae=AeRead.of(listed.ae),
            meddra_code=detail.meddra_code,
            verbatim_term=detail.verbatim_term,
            action_taken=detail.action_taken,
            first_stored_at=detail.first_stored_at,
            last_changed_at=last.stored_at,
            last_changed_position=last.position if positions else None,
            amendments=len(detail.history) - 1,
        )

    def fields(self) -> dict[str, Any]:
        """Flat: the AE's fields and the review's (what the API and the CSV show)."""
        extra = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "ae"}
        return self.ae.fields() | extra


@dataclass(frozen=True, slots=True)
class AeVersionRead:
    """One version of an AE: who recorded it and when, what it set, and why."""

    position: int | None  # None for a site
    event_type: str
    event_id: str
    reporter: str
    recorded_at: datetime
    stored_at: datetime
    changes: dict[str, Any]
    reason: str | None


@dataclass(frozen=True, slots=True)
class AeHistoryRead:
    row: AeListingRow
    versions: tuple[AeVersionRead, ...]  # the report first, then every amendment in log order


@dataclass(frozen=True, slots=True)
class ListingPage:
    rows: tuple[AeListingRow, ...]
    matching: int  # how many AEs match the filters (on every page)
    more: bool  # more match after this page's last number
    position: int | None  # the log position read at (None for a site)
    chain_head: str | None  # the chain hash there (None for a site)


@dataclass(frozen=True, slots=True)
class PatientProfileRead:
    """Everything about one patient a safety review looks at, in time order."""

    patient_id: str
    site_id: str
    status: str
    enrolled_at: datetime | None
    consent_date: date | None
    planned_modalities: tuple[str, ...]
    administrations: tuple[Administration, ...]
    labs: tuple[LabValue, ...]
    child_pugh: tuple[ChildPughScore, ...]
    exit: Exit | None
    death: Exit | None
    last_data_on: date | None
    aes: tuple[AeListingRow, ...]  # every AE, retracted ones too, first reported first


def _trial_wide(principal: Principal, data: ReviewData) -> tuple[int | None, str | None]:
    if not sees_trial_wide(principal):
        return None, None
    return data.position, data.chain_head


def ae_listing(
    review: ReviewReads, principal: Principal, chosen: AeFilter, after: int, limit: int
) -> ListingPage:
    """One page of the AEs matching ``chosen``, numbered after ``after``."""
    positions = sees_trial_wide(principal)

    def compute(data: ReviewData) -> ListingPage:
        found = select(data, chosen)
        chosen_page = page(found, after, limit + 1)
        rows = tuple(AeListingRow.of(x, positions) for x in chosen_page[:limit])
        more = len(chosen_page) > limit
        return ListingPage(rows, len(found), more, *_trial_wide(principal, data))

    return review.read(principal, compute)


def _version_reads(listed: ListedAe, positions: bool) -> tuple[AeVersionRead, ...]:
    return tuple(
        AeVersionRead(
            position=v.position if positions else None,
            event_type=v.event_type,
            event_id=str(v.event_id),
            reporter=v.reporter,
            recorded_at=v.recorded_at,
            stored_at=v.stored_at,
            changes=dict(v.changes),
            reason=v.reason,
        )
        for v in listed.detail.history
    )


def ae_history(review: ReviewReads, principal: Principal, ae_id: UUID) -> AeHistoryRead | None:
    """One AE with every version; None when there is none the principal may see."""
    positions = sees_trial_wide(principal)

    def compute(data: ReviewData) -> AeHistoryRead | None:
        if data.ae(ae_id) is None:
            return None
        listed = next(x for x in numbered(data) if x.ae.ae_id == ae_id)
        return AeHistoryRead(AeListingRow.of(listed, positions), _version_reads(listed, positions))

    return review.read(principal, compute)


def patient_profile(
    review: ReviewReads, principal: Principal, patient_id: str
) -> PatientProfileRead | None:
    """One patient's profile; None when there is none the principal may see."""
    positions = sees_trial_wide(principal)

    def compute(data: ReviewData) -> PatientProfileRead | None:
        found = data.patient(patient_id)
        if found is None:
            return None
        state, detail = found
        aes = tuple(
            AeListingRow.of(x, positions) for x in numbered(data) if x.ae.patient_id == patient_id
        )
        return PatientProfileRead(
            patient_id=patient_id,
            site_id=state.site_id,
            status=state.status,
            enrolled_at=state.enrolled_at,
            consent_date=detail.consent_date,
            planned_modalities=tuple(detail.planned_modalities),
            administrations=tuple(detail.administrations),  # frozen records: shared safely
            labs=tuple(detail.labs),
            child_pugh=tuple(detail.child_pugh),
            exit=detail.exit,
            death=detail.death,
            last_data_on=detail.last_data_on,
            aes=aes,
        )

    return review.read(principal, compute)


def ae_ids_with_prefix(review: ReviewReads, principal: Principal, prefix: str) -> list[UUID]:
    """The visible AEs whose id starts with ``prefix`` (a whole id matches itself)."""
    wanted = prefix.strip().lower()
    return review.read(
        principal,
        lambda data: [x.ae.ae_id for x in numbered(data) if str(x.ae.ae_id).startswith(wanted)],
    )
