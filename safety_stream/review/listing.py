"""The AE listing: which AEs of a :class:`ReviewData` match a reviewer's filters (pure).

Every AE the principal may see gets a ``number``: its place (1, 2, ...) among the visible AEs
in the order they were first reported. A new AE is always numbered after every AE before it,
so the number is a stable paging cursor; for a site it counts the site's own AEs only, so it
never shows how much other sites reported (a log position would).

Filters combine with AND; a filter left as None does not restrict:

- ``modality`` with ``attribution``: attributed to that modality at least that strongly;
  ``modality`` alone means the plan's "related" (the caller passes its threshold);
  ``attribution`` alone: to any modality at least that strongly;
- ``min_grade`` (the current grade) and ``min_worst_grade`` (the worst over the AE's course,
  5 if fatal: what the rules count);
- ``soc`` and ``term``: the CTCAE system organ class and term, compared without case;
- ``serious`` (any ICH seriousness criterion), ``immune_related``;
- ``status``: open, resolved or retracted; without it open and resolved (an AE retracted as
  entered in error is listed only when asked for);
- ``onset_from`` / ``onset_to``: the onset date, both ends included;
- ``changed_since_position`` / ``changed_since_time``: the AE's last version was stored after
  that log position or that time;
- ``ae_ids``: only these AEs (e.g. the AEs a rule counted); ``patient_id``, ``site``;
- ``treatment_emergent``: onset on or after the patient's first dose of any study treatment
  (True) or not (False: before it, or the patient was never dosed), as the DMC tables count
  (``review.tables.is_treatment_emergent``);
- ``patient_worst_grade``: of the AEs passing every other filter, those of grade (worst over
  the course) n of the patients whose worst grade among them is n: their distinct patients are
  exactly those a DMC table's grade-n column counts for the same filters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from safety_stream.events import ATTRIBUTION_RANK, Attribution
from safety_stream.projections.state import AeState
from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import AeDetail
from safety_stream.review.tables import first_dose_dates, is_treatment_emergent

STATUSES = ("open", "resolved", "retracted")


@dataclass(frozen=True, slots=True)
class AeFilter:
    """What a reviewer asked for (None: no restriction)."""

    site: str | None = None
    patient_id: str | None = None
    modality: str | None = None
    attribution: Attribution | None = None
    min_grade: int | None = None
    min_worst_grade: int | None = None
    soc: str | None = None
    term: str | None = None
    serious: bool | None = None
    immune_related: bool | None = None
    status: str | None = None
    onset_from: date | None = None
    onset_to: date | None = None
    changed_since_position: int | None = None
    changed_since_time: datetime | None = None
    ae_ids: frozenset[UUID] | None = None
    treatment_emergent: bool | None = None
    patient_worst_grade: int | None = None


@dataclass(frozen=True, slots=True)
class ListedAe:
    """One AE that matched, with its number (references into the data: read under its lock)."""

    number: int
    ae: AeState
    detail: AeDetail


def numbered(data: ReviewData) -> Iterator[ListedAe]:
    """Every AE of ``data`` (retracted ones too) with its number, in the order first reported."""
    pairs = data.aes(include_retracted=True)
    pairs.sort(key=lambda pair: pair[1].history[0].position)
    for number, (ae, detail) in enumerate(pairs, 1):
        yield ListedAe(number, ae, detail)


def _attributed(ae: AeState, modality: str | None, attribution: Attribution | None) -> bool:
    if attribution is None:
        return True
    rank = ATTRIBUTION_RANK[attribution]
    given = [ae.attribution.get(modality)] if modality is not None else ae.attribution.values()
    return any(a is not None and ATTRIBUTION_RANK[a] >= rank for a in given)


def _same(wanted: str | None, value: str) -> bool:
    return wanted is None or wanted.casefold() == value.casefold()


def _clinical(ae: AeState, chosen: AeFilter) -> bool:
    """The filters on the AE's current version."""
    return (
        (chosen.site is None or ae.site_id == chosen.site)
        and (chosen.patient_id is None or ae.patient_id == chosen.patient_id)
        and _attributed(ae, chosen.modality, chosen.attribution)
        and (chosen.min_grade is None or ae.grade >= chosen.min_grade)
        and (chosen.min_worst_grade is None or ae.worst >= chosen.min_worst_grade)
        and _same(chosen.soc, ae.soc)
        and _same(chosen.term, ae.ctcae_term)
        and (chosen.serious is None or bool(ae.seriousness) == chosen.serious)
        and (chosen.immune_related is None or ae.immune_related == chosen.immune_related)
        and (ae.status == chosen.status if chosen.status else ae.status != "retracted")
        and (chosen.onset_from is None or ae.onset_date >= chosen.onset_from)
        and (chosen.onset_to is None or ae.onset_date <= chosen.onset_to)
    )


def _changed(detail: AeDetail, chosen: AeFilter) -> bool:
    last = detail.history[-1]
    return (
        chosen.changed_since_position is None or last.position > chosen.changed_since_position
    ) and (chosen.changed_since_time is None or last.stored_at > chosen.changed_since_time)


def matches(listed: ListedAe, chosen: AeFilter) -> bool:
    """Whether one AE passes every filter of ``chosen``."""
    if chosen.ae_ids is not None and listed.ae.ae_id not in chosen.ae_ids:
        return False
    return _clinical(listed.ae, chosen) and _changed(listed.detail, chosen)


def _emergence(data: ReviewData, found: list[ListedAe], wanted: bool) -> list[ListedAe]:
    first = first_dose_dates(data)
    return [x for x in found if is_treatment_emergent(x.ae, first) == wanted]


def _at_patient_worst(found: list[ListedAe], grade: int) -> list[ListedAe]:
    """The AEs of worst grade ``grade`` of the patients whose worst among ``found`` is it."""
    worst: dict[str, int] = {}
    for x in found:
        worst[x.ae.patient_id] = max(worst.get(x.ae.patient_id, 0), x.ae.worst)
    return [x for x in found if x.ae.worst == grade == worst[x.ae.patient_id]]


def select(data: ReviewData, chosen: AeFilter) -> list[ListedAe]:
    """The AEs of ``data`` that pass ``chosen``, numbered, in the order first reported."""
    found = [listed for listed in numbered(data) if matches(listed, chosen)]
    if chosen.treatment_emergent is not None:
        found = _emergence(data, found, chosen.treatment_emergent)
    if chosen.patient_worst_grade is not None:  # last: it compares the AEs every filter kept
        found = _at_patient_worst(found, chosen.patient_worst_grade)
    return found


def page(found: list[ListedAe], after: int, limit: int) -> list[ListedAe]:
    """At most ``limit`` of ``found`` numbered after ``after`` (the cursor)."""
    return [listed for listed in found if listed.number > after][:limit]
