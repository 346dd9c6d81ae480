"""The AE listing's query: the filters a reviewer gives (the API's query parameters, the board's
form fields, the same names), checked, and turned into the review's :class:`AeFilter`.

A bad value is a :class:`FilterError` naming the parameter and what is allowed; the API
answers it with a 422, the board shows it above the form.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from safety_stream.application.reads import Reads, sees_trial_wide
from safety_stream.auth import Principal
from safety_stream.events import Attribution, Modality
from safety_stream.plan import MonitoringPlan
from safety_stream.review.listing import STATUSES, AeFilter

LISTING_PARAMETERS = (
    "site", "patient", "modality", "attribution", "grade", "worst_grade", "soc", "term",
    "serious", "irae", "status", "onset_from", "onset_to", "changed_since", "rule",
    "treatment_emergent", "patient_worst_grade",
)  # fmt: skip
"""The listing's filters, as the API's query parameters and the board's form fields name them."""


class FilterError(ValueError):
    """A filter's value is not allowed: which parameter, and what is."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter, self.message = parameter, message


def parse_changed_since(
    text: str | None, principal: Principal
) -> tuple[int | None, datetime | None]:
    """``changed_since``: a log position (readers only) or an ISO 8601 time with an offset."""
    if text is None or not text.strip():
        return None, None
    text = text.strip()
    if text.isascii() and text.isdigit():
        if not sees_trial_wide(principal):
            raise FilterError(
                "changed_since",
                "a site filters by time (ISO 8601 with an offset, e.g. 2026-03-01T00:00:00Z): "
                "log positions are trial-wide",
            )
        if len(text) > 18:
            raise FilterError("changed_since", "a log position is at most 18 digits")
        return int(text), None
    try:
        moment: datetime | None = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment is not None and moment.tzinfo is not None:
            moment = moment.astimezone(UTC)  # past the calendar's end in UTC: refused below
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise FilterError(
            "changed_since",
            f"{text[:40]!r} is neither a log position (a whole number) nor an ISO 8601 time "
            "with a UTC offset (e.g. 2026-03-01T00:00:00Z)",
        )
    return None, moment


@dataclass(frozen=True)
class ListingQuery:
    """What a reviewer asked the listing for (the API's query, the board's form), unchecked
    against the data: :meth:`to_filter` checks it and resolves a rule to its counted AEs."""

    site: str | None = None
    patient: str | None = None
    modality: Modality | None = None
    attribution: Attribution | None = None
    grade: int | None = None
    worst_grade: int | None = None
    soc: str | None = None
    term: str | None = None
    serious: bool | None = None
    irae: bool | None = None
    status: str | None = None
    onset_from: date | None = None
    onset_to: date | None = None
    changed_since: str | None = None
    rule: str | None = None
    treatment_emergent: bool | None = None
    patient_worst_grade: int | None = None

    def to_filter(self, plan: MonitoringPlan, principal: Principal, reads: Reads) -> AeFilter:
        if self.onset_from and self.onset_to and self.onset_from > self.onset_to:
            raise FilterError("onset_to", "onset_to must not be before onset_from")
        position, moment = parse_changed_since(self.changed_since, principal)
        attribution = self.attribution
        if self.modality is not None and attribution is None:
            attribution = plan.related_means_at_least  # "related" as the plan means it
        return AeFilter(
            site=self.site or None,
            patient_id=self.patient or None,
            modality=None if self.modality is None else self.modality.value,
            attribution=attribution,
            min_grade=self.grade,
            min_worst_grade=self.worst_grade,
            soc=self.soc or None,
            term=self.term or None,
            serious=self.serious,
            immune_related=self.irae,
            status=self.status,
            onset_from=self.onset_from,
            onset_to=self.onset_to,
            changed_since_position=position,
            changed_since_time=moment,
            ae_ids=rule_filter(reads, principal, self.rule) if self.rule else None,
            treatment_emergent=self.treatment_emergent,
            patient_worst_grade=self.patient_worst_grade,
        )

    def parameters(self) -> dict[str, str]:
        """The query as query-string parameters (only those given)."""
        out = {}
        for name in LISTING_PARAMETERS:
            value = getattr(self, name)
            if value is None or value == "":
                continue
            out[name] = str(value).lower() if isinstance(value, bool) else str(value)
        return out


def rule_filter(reads: Reads, principal: Principal, rule_id: str) -> frozenset[UUID]:
    """The AEs behind one rule: those a counting rule counted (the evidence behind its x), or
    those that raised an AE sentinel. A site sees no rules: FilterError, as for a wrong id."""
    monitor = reads.monitoring(principal)
    found = monitor.counted_ae_ids(rule_id)
    if found is None:
        known = sorted({c.rule_id for c in monitor.counting} | set(monitor.raised))
        allowed = ", ".join(known) if known else "none (rules are not shown to sites)"
        raise FilterError("rule", f"no rule {rule_id[:80]!r} (allowed: {allowed})")
    ids = set()
    for text in found:  # "composite:<name>" entries and lab events are not AEs
        try:
            ids.add(uuid.UUID(text))
        except ValueError:
            continue
    return frozenset(ids)


def _choice(values: tuple[str, ...], make: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if text not in values:
            raise ValueError(f"one of {', '.join(values)}")
        return make(text)

    return parse


def _grade(text: str) -> int:
    if text not in ("1", "2", "3", "4", "5"):
        raise ValueError("a CTCAE grade, 1 to 5")
    return int(text)


def _flag(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError("true or false")
    return text == "true"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError("a date as YYYY-MM-DD") from None


def _text(text: str) -> str:
    if len(text) > 200:
        raise ValueError("at most 200 characters")
    return text


_PARSERS: dict[str, Callable[[str], Any]] = {
    "modality": _choice(tuple(m.value for m in Modality), Modality),
    "attribution": _choice(tuple(a.value for a in Attribution), Attribution),
    "grade": _grade,
    "worst_grade": _grade,
    "serious": _flag,
    "irae": _flag,
    "treatment_emergent": _flag,
    "patient_worst_grade": _grade,
    "status": _choice(STATUSES, str),
    "onset_from": _day,
    "onset_to": _day,
}


def query_from_strings(given: Mapping[str, str]) -> ListingQuery:
    """The query from a form's fields (blank ones: not given); FilterError on a bad value."""
    values: dict[str, Any] = {}
    for name in LISTING_PARAMETERS:
        text = (given.get(name) or "").strip()
        if not text:
            continue
        try:
            values[name] = _PARSERS.get(name, _text)(text)
        except ValueError as error:
            raise FilterError(name, f"{text[:40]!r} is not allowed: {error}") from None
    return ListingQuery(**values)
